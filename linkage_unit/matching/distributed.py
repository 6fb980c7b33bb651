"""Scale-out of the comparison work: chunks of rows run on a Dask cluster, or locally.

The all-pairs comparison of two parties is split into chunks of rows of A; each chunk is
compared with the whole of B by `dice_candidates`. With a Dask distributed scheduler the
chunks run on its workers (B is broadcast once); without one they run here, one after the
other, each using this machine's cores. Chunks are reassembled in order, so the result is
identical to a single `dice_candidates` call, row for row and score for score.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
from numpy.typing import NDArray

from linkage_unit.matching.similarity import CandidateLimitExceeded, dice_candidates

__all__ = ["DEFAULT_CHUNK_ROWS", "compare_in_chunks"]

DEFAULT_CHUNK_ROWS = 50_000

Candidates = tuple[NDArray[np.int64], NDArray[np.int64], NDArray[np.float64]]


def _compare_chunk(
    a_chunk: NDArray[np.uint8], b_bits: NDArray[np.uint8], threshold: float, first_row: int,
    max_candidates: int | None,
) -> Candidates:  # fmt: skip
    """One chunk's candidates, with A's row numbers made global (runs on a worker)."""
    i, j, score = dice_candidates(a_chunk, b_bits, threshold, max_candidates=max_candidates)
    return i + first_row, j, score


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
        from distributed import Client  # imported only when a cluster is used

        # distributed is untyped; the client is used through a few well-known calls.
        make_client: Any = Client
        client: Any = scheduler if isinstance(scheduler, Client) else make_client(scheduler)
        try:
            b_future = client.scatter(np.ascontiguousarray(b_bits), broadcast=True)
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
        finally:
            if client is not scheduler:
                client.close()
    i = np.concatenate([p[0] for p in parts])
    j = np.concatenate([p[1] for p in parts])
    score = np.concatenate([p[2] for p in parts])
    return i, j, score
