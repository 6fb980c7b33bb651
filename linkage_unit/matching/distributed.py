"""Scale-out of the comparison work: on a Dask cluster, or locally.

Two kinds of work are split into tasks:

* **Blocked** comparison (:func:`blocked_on_dask`, what linkage at scale runs): the
  blocking's hash tables are split into ranges, one task per range. A pair is emitted by
  the first table whose keys agree, wherever that table runs, so the tasks find disjoint
  sets of pairs and their union, sorted, is exactly the single-process result
  (:func:`~linkage_unit.matching.blocking.candidate_pairs`), row for row and score for
  score. The encodings are not sent through the scheduler: every task opens the two files
  (``.plk`` or ``.npy``, memory-mapped) from storage the workers share, and returns only
  its candidate pairs. A worker holds the two files' words while a task runs (about 2.5
  times their size), whatever the number of tasks.
* **Exhaustive** comparison (:func:`compare_in_chunks`): chunks of rows of A, each
  compared with the whole of B by ``dice_candidates`` (B is broadcast once); without a
  scheduler the chunks run here one after the other. Chunks are reassembled in order, so
  the result is identical to one ``dice_candidates`` call.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from encoder.fileformat import read_encodings
from linkage_unit.matching.bitarrays import check_bits
from linkage_unit.matching.blocking import (
    BlockingConfig,
    BlockingStats,
    bit_frequencies,
    candidate_pairs_and_stats,
)
from linkage_unit.matching.candidates import Candidates
from linkage_unit.matching.similarity import CandidateLimitExceeded, dice_candidates

__all__ = ["DEFAULT_CHUNK_ROWS", "blocked_on_dask", "compare_in_chunks", "open_bits"]

DEFAULT_CHUNK_ROWS = 50_000


def _compare_chunk(
    a_chunk: NDArray[np.uint8], b_bits: NDArray[np.uint8], threshold: float, first_row: int,
    max_candidates: int | None,
) -> Candidates:  # fmt: skip
    """One chunk's candidates, with A's row numbers made global (runs on a worker)."""
    i, j, score = dice_candidates(a_chunk, b_bits, threshold, max_candidates=max_candidates)
    return Candidates(i + first_row, j, score)


def compare_in_chunks(
    a_bits: NDArray[np.uint8],
    b_bits: NDArray[np.uint8],
    threshold: float,
    *,
    chunk_rows: int = DEFAULT_CHUNK_ROWS,
    scheduler: str | Any | None = None,
    max_candidates: int | None = 200_000_000,
    progress: Callable[[int, int], None] | None = None,
) -> Candidates:
    """Every pair with Dice >= threshold, computed chunk by chunk, locally or on Dask.

    Args:
        a_bits: Packed filters of A, as for `dice_candidates`.
        b_bits: Packed filters of B, the same width.
        threshold: Keep pairs with Dice >= threshold.
        chunk_rows: Rows of A per chunk (task).
        scheduler: A Dask scheduler address ("tcp://host:8786"), a `distributed.Client`, or
            None to run locally.
        max_candidates: Cap on the total number of candidates, as in `dice_candidates`.
        progress: Called with (chunks done, chunks in all) as chunks complete.

    Returns:
        `(i, j, score)` sorted by (i, j): the same arrays as `dice_candidates(a, b, t)`.

    Raises:
        CandidateLimitExceeded: More candidates than `max_candidates`.
    """
    if chunk_rows < 1:
        raise ValueError("chunk_rows must be at least 1")
    starts = list(range(0, a_bits.shape[0], chunk_rows)) or [0]
    parts: list[Candidates] = []
    found = 0

    def collect(part: Candidates) -> None:
        nonlocal found
        found += part[0].size
        if max_candidates is not None and found > max_candidates:
            raise CandidateLimitExceeded(
                f"more than {max_candidates:,} candidate pairs at threshold {threshold} "
                f"({found:,} found after {len(parts) + 1} of {len(starts)} chunks); raise the "
                "threshold or use blocking"
            )
        parts.append(part)
        if progress is not None:
            progress(len(parts), len(starts))

    if scheduler is None:
        for start in starts:
            collect(
                _compare_chunk(
                    a_bits[start : start + chunk_rows], b_bits, threshold, start, max_candidates
                )
            )
    else:
        with _client(scheduler) as client:
            # hash=False: a key of its own. The default key is the data's hash, so comparing
            # the same side again (the next job, or another client) reuses the key while the
            # previous call's future is being released, and the scheduler can drop the data
            # under the new tasks ("lost dependencies"; seen once in the test suite).
            b_future = client.scatter(np.ascontiguousarray(b_bits), broadcast=True, hash=False)
            futures = [
                client.submit(
                    _compare_chunk,
                    np.ascontiguousarray(a_bits[start : start + chunk_rows]),
                    b_future,
                    threshold,
                    start,
                    max_candidates,
                    pure=False,
                )
                for start in starts
            ]
            for future in futures:  # in order: the result keeps dice_candidates' order
                collect(future.result())
    return Candidates.concatenate(parts)


def open_bits(path: str | Path) -> NDArray[np.uint8]:
    """The packed filters of a ``.plk`` file or of a 2-d ``uint8`` ``.npy``, memory-mapped."""
    path = Path(path)
    if path.suffix == ".plk":
        return np.asarray(read_encodings(path).bits)
    bits: NDArray[np.uint8] = np.load(path, mmap_mode="r", allow_pickle=False)
    check_bits(path.name, bits)
    return bits  # the memory map itself, never a copy


def _block_tables(
    a_path: str, b_path: str, threshold: float, config: BlockingConfig, tables: tuple[int, int],
    frequencies: NDArray[np.float64] | None, threads: int | None,
) -> tuple[Candidates, BlockingStats]:  # fmt: skip
    """One range of tables over the two files (runs on a worker)."""
    a, b = open_bits(a_path), open_bits(b_path)
    return candidate_pairs_and_stats(a, b, threshold, config, workers=threads,
                                     frequencies=frequencies, tables=tables)  # fmt: skip


@contextmanager
def _client(scheduler: str | Any) -> Iterator[Any]:
    """The given client, or one connected to the address for the block (then closed)."""
    from distributed import Client  # noqa: PLC0415 - imported only when a cluster is used

    make_client: Any = Client  # distributed is untyped
    if isinstance(scheduler, Client):
        yield scheduler
        return
    client = make_client(scheduler)
    try:
        yield client
    finally:
        client.close()


def blocked_on_dask(
    a_path: str | Path,
    b_path: str | Path,
    threshold: float,
    config: BlockingConfig,
    *,
    scheduler: str | Any,
    tasks: int | None = None,
    threads_per_task: int | None = 1,
    frequencies: NDArray[np.float64] | None = None,
    progress: Callable[[int, int, int], None] | None = None,
) -> tuple[Candidates, BlockingStats]:
    """Blocked candidate pairs of two files, the tables split over a Dask cluster's workers.

    Args:
        a_path: ``.plk`` or ``.npy`` file every worker can open (shared storage).
        b_path: The other file, likewise.
        threshold: Keep pairs with Dice >= threshold.
        config: The blocking (not exhaustive for these sizes).
        scheduler: A Dask scheduler address (``tcp://host:8786``) or a ``Client``.
        tasks: Ranges of tables (default: one per thread of the cluster, at most one per
            table). Tables cost about the same, so one range per thread balances the work;
            every task packs the two files' words again, so more tasks cost more.
        threads_per_task: numba threads a task uses (default 1: the cluster's threads are
            the parallelism); None: all of the worker's cores.
        frequencies: The files' bit frequencies (default: measured here on both files).
        progress: Called with (tasks done, tasks, candidates so far) as tasks complete.

    Returns:
        ``((i, j, score), stats)``: exactly :func:`~linkage_unit.matching.blocking.
        candidate_pairs_and_stats` of the two files.
    """
    a, b = open_bits(a_path), open_bits(b_path)
    if config.compares_all(a.shape[0], b.shape[0]):
        raise ValueError("these files are compared exhaustively: use compare_in_chunks")
    if frequencies is None and config.selection == "balanced":
        frequencies = bit_frequencies(a, b)
    with _client(scheduler) as client:
        if tasks is None:
            tasks = max(1, sum(client.nthreads().values()))
        tasks = max(1, min(tasks, config.tables))
        bounds = np.linspace(0, config.tables, tasks + 1).round().astype(int).tolist()
        futures = [
            client.submit(_block_tables, str(a_path), str(b_path), threshold, config,
                          (start, end), frequencies, threads_per_task, pure=False)
            for start, end in itertools.pairwise(bounds)
            if end > start
        ]  # fmt: skip
        from distributed import as_completed  # noqa: PLC0415 - as above, cluster only

        in_turn: Any = as_completed  # distributed is untyped
        parts: list[tuple[Candidates, BlockingStats]] = []
        found = 0
        for future in in_turn(futures):
            part = future.result()
            parts.append(part)
            found += part[0][0].size
            if progress is not None:
                progress(len(parts), len(futures), found)
    pairs = Candidates.concatenate([p[0] for p in parts]).sorted_unique(b.shape[0])
    comparisons = sum(p[1].comparisons for p in parts)
    exhaustive = a.shape[0] * b.shape[0]
    stats = BlockingStats(
        comparisons=comparisons, exhaustive_comparisons=exhaustive,
        reduction_ratio=1.0 - comparisons / exhaustive,
        largest_block_pairs=max((p[1].largest_block_pairs for p in parts), default=0),
    )  # fmt: skip
    return pairs, stats
