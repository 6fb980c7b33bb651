"""Scale-out: chunked comparison, locally and on a real 2-worker Dask LocalCluster."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pytest
from distributed import Client, LocalCluster

from linkage_unit.matching.distributed import compare_in_chunks
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
