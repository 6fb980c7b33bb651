"""Scale-out: chunked and blocked comparison, locally and on a real 2-worker Dask LocalCluster."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from distributed import Client, LocalCluster

from linkage_unit.matching.blocking import (
    BlockingConfig,
    bit_frequencies,
    candidate_pairs_and_stats,
)
from linkage_unit.matching.distributed import blocked_on_dask, compare_in_chunks
from linkage_unit.matching.similarity import CandidateLimitExceeded, dice_candidates


def _encodings(seed: int, n: int, m: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    a = (rng.random((n, 1024)) < 0.3).astype(np.uint8)
    b = (rng.random((m, 1024)) < 0.3).astype(np.uint8)
    # near-duplicates so there are candidates
    b[: n // 4] = a[: n // 4] ^ (rng.random((n // 4, 1024)) < 0.05)
    return np.packbits(a, axis=1), np.packbits(b, axis=1)


@pytest.fixture(scope="module")
def client() -> Iterator[Client]:
    with (
        LocalCluster(
            n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None,
            host="127.0.0.1",
        ) as cluster,
        Client(cluster) as dask_client,
    ):  # fmt: skip
        yield dask_client


def test_local_chunks_equal_one_call() -> None:
    a, b = _encodings(1, 900, 700)
    expected = dice_candidates(a, b, 0.7)
    assert expected[0].size > 100
    for chunk_rows in (1, 64, 333, 5000):
        got = compare_in_chunks(a, b, 0.7, chunk_rows=chunk_rows)
        for x, y in zip(got, expected, strict=True):
            assert np.array_equal(x, y)


def test_dask_cluster_result_equals_local(client: Client) -> None:
    a, b = _encodings(2, 1200, 1000)
    local = compare_in_chunks(a, b, 0.75, chunk_rows=250)
    seen: list[tuple[int, int]] = []
    remote = compare_in_chunks(
        a, b, 0.75, chunk_rows=250, scheduler=client, progress=lambda d, t: seen.append((d, t))
    )
    assert local[0].size > 100
    for x, y in zip(remote, local, strict=True):
        assert np.array_equal(x, y)
    assert seen[-1] == (5, 5)
    # the scheduler can also be given by address
    by_address = compare_in_chunks(a, b, 0.75, chunk_rows=500, scheduler=client.scheduler.address)
    for x, y in zip(by_address, local, strict=True):
        assert np.array_equal(x, y)


def test_cap_applies_across_chunks() -> None:
    a, b = _encodings(3, 400, 400)
    with pytest.raises(CandidateLimitExceeded, match="raise the threshold"):
        compare_in_chunks(a, b, 0.1, chunk_rows=50, max_candidates=1000)


def test_empty_inputs() -> None:
    a, b = _encodings(4, 10, 10)
    i, j, score = compare_in_chunks(a[:0], b, 0.8)
    assert i.size == j.size == score.size == 0


def _blocked_files(tmp_path: Path, seed: int, n: int, m: int) -> tuple[Path, Path]:
    a, b = _encodings(seed, n, m)
    np.save(tmp_path / "a.npy", a)
    np.save(tmp_path / "b.npy", b)
    return tmp_path / "a.npy", tmp_path / "b.npy"


BLOCKED = BlockingConfig(tables=24, bits_per_table=12, exhaustive_up_to=0)


def test_table_ranges_partition_the_blocked_pairs(tmp_path: Path) -> None:
    """Passes over a partition of the tables find disjoint pairs whose union is the pass."""
    a_path, b_path = _blocked_files(tmp_path, 5, 1500, 1300)
    a, b = np.load(a_path), np.load(b_path)
    whole, stats = candidate_pairs_and_stats(a, b, 0.7, BLOCKED)
    assert whole[0].size > 200
    freq = bit_frequencies(a, b)
    parts = [candidate_pairs_and_stats(a, b, 0.7, BLOCKED, frequencies=freq, tables=r)
             for r in ((0, 5), (5, 6), (6, 24))]  # fmt: skip
    codes = [set((p[0][0] * b.shape[0] + p[0][1]).tolist()) for p in parts]
    assert sum(len(c) for c in codes) == len(set().union(*codes))  # disjoint
    assert set().union(*codes) == set((whole[0] * b.shape[0] + whole[1]).tolist())
    assert sum(p[1].comparisons for p in parts) == stats.comparisons
    with pytest.raises(ValueError, match="not within"):
        candidate_pairs_and_stats(a, b, 0.7, BLOCKED, tables=(3, 25))


def test_blocked_on_dask_equals_the_single_pass(client: Client, tmp_path: Path) -> None:
    a_path, b_path = _blocked_files(tmp_path, 6, 2000, 1800)
    a, b = np.load(a_path), np.load(b_path)
    local, local_stats = candidate_pairs_and_stats(a, b, 0.7, BLOCKED)
    seen: list[tuple[int, int, int]] = []
    for tasks in (None, 1, 7, 24):
        remote, stats = blocked_on_dask(
            a_path,
            b_path,
            0.7,
            BLOCKED,
            scheduler=client,
            tasks=tasks,
            progress=lambda *p: seen.append(p),
        )
        for x, y in zip(remote, local, strict=True):
            assert np.array_equal(x, y)
        assert stats == local_stats
    assert seen[-1][:2] == (24, 24) and seen[-1][2] >= local[0].size
    # By address, and from a .plk file: the same pairs.
    by_address, _ = blocked_on_dask(a_path, b_path, 0.7, BLOCKED,
                                    scheduler=client.scheduler.address)  # fmt: skip
    assert np.array_equal(by_address[2], local[2])
    with pytest.raises(ValueError, match="exhaustively"):
        blocked_on_dask(a_path, b_path, 0.7, BlockingConfig(exhaustive=True), scheduler=client)
