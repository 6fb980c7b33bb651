"""Exhaustive Dice scoring on a CUDA GPU (optional): the contract of ``dice_candidates``.

Brute force is what a GPU does best: every pair of two files is scored, no blocking, so no
match is lost to blocking at any size. :func:`dice_candidates_gpu` returns the same
``(i, j, score)`` arrays as :func:`~linkage_unit.matching.similarity.dice_candidates`,
sorted by ``(i, j)``, with scores computed as there (``float(2 c) / float(|a| + |b|)``,
IEEE double division), so the same pairs pass the same ``>=`` test.

How it runs: filters are uploaded once as 64-bit words with their popcounts. A grid of
32 x 8 threads covers a tile of 8 rows of A by 32 rows of B; the tile's rows are staged in
shared memory (each word read from global memory once per tile, not once per pair), and
each thread ANDs and popcounts one pair's words. A pair reaching the threshold takes a
slot in the output through one atomic counter; when the output is full, the counting goes
on, and the chunk is run again with room for all of them. Rows of A go in chunks, so the
output of one chunk fits in the GPU's memory.

Nothing here is needed by the build or the tests: without a CUDA GPU (``available()`` is
False) ``pacelink link --device gpu`` refuses with a message, and the tests of this module
run the same kernel on numba's CUDA simulator (on the CPU) and, on a GPU, against the CPU
kernel.
"""

from __future__ import annotations

from typing import Any, Final

import numpy as np
from numba import cuda, float64, int64, uint64
from numpy.typing import NDArray

from linkage_unit.matching.bitarrays import (
    check_bits,
    check_same_width,
    check_threshold,
    row_popcounts,
    to_words,
)
from linkage_unit.matching.candidates import Candidates
from linkage_unit.matching.similarity import CandidateLimitExceeded

__all__ = ["DEFAULT_CHUNK_ROWS", "GpuUnavailable", "available", "dice_candidates_gpu"]

#: Rows of A per kernel launch.
DEFAULT_CHUNK_ROWS: Final = 65_536
_TILE_A: Final = 8
_TILE_B: Final = 32
_MAX_WORDS: Final = 64  # filters of up to 4096 bits


class GpuUnavailable(RuntimeError):
    """No CUDA GPU (or no CUDA driver) is available to numba."""


def available() -> bool:
    """Whether numba can use a CUDA GPU here."""
    try:
        return bool(cuda.is_available())
    except Exception:  # no driver, no toolkit: no GPU
        return False


# Compiled on first launch (defining a CUDA kernel needs no GPU; compiling one does).
@cuda.jit
def _dice_tile(a_words: Any, a_pop: Any, b_words: Any, b_pop: Any, n_words: int,
               threshold: float, out_i: Any, out_j: Any, out_s: Any,
               counter: Any) -> None:  # fmt: skip  # pragma: no cover - on the device
    sa = cuda.shared.array((_TILE_A, _MAX_WORDS), dtype=uint64)
    sb = cuda.shared.array((_TILE_B, _MAX_WORDS), dtype=uint64)
    tx, ty = cuda.threadIdx.x, cuda.threadIdx.y
    i = cuda.blockIdx.y * _TILE_A + ty
    j = cuda.blockIdx.x * _TILE_B + tx
    n_a, n_b = a_words.shape[0], b_words.shape[0]
    # Stage the tile: the 256 threads copy the 8 A rows' and 32 B rows' words.
    flat = ty * _TILE_B + tx
    for k in range(flat, _TILE_A * n_words, _TILE_A * _TILE_B):
        r, w = k // n_words, k % n_words
        row = cuda.blockIdx.y * _TILE_A + r
        sa[r, w] = a_words[row, w] if row < n_a else uint64(0)
    for k in range(flat, _TILE_B * n_words, _TILE_A * _TILE_B):
        r, w = k // n_words, k % n_words
        row = cuda.blockIdx.x * _TILE_B + r
        sb[r, w] = b_words[row, w] if row < n_b else uint64(0)
    cuda.syncthreads()
    if i >= n_a or j >= n_b:
        return
    d = a_pop[i] + b_pop[j]
    if d == 0:
        return
    c = int64(0)
    for w in range(n_words):
        c += cuda.popc(sa[ty, w] & sb[tx, w])
    score = float64(2 * c) / float64(d)
    if score >= threshold:
        slot = cuda.atomic.add(counter, 0, 1)
        if slot < out_i.shape[0]:
            out_i[slot] = i
            out_j[slot] = j
            out_s[slot] = score


def dice_candidates_gpu(
    a_bits: NDArray[np.uint8],
    b_bits: NDArray[np.uint8],
    threshold: float,
    *,
    max_candidates: int | None = 200_000_000,
    chunk_rows: int = DEFAULT_CHUNK_ROWS,
    capacity: int = 1 << 20,
) -> Candidates:
    """Every pair of rows with Dice >= ``threshold``, scored on the GPU.

    Arguments and result as :func:`~linkage_unit.matching.similarity.dice_candidates`.

    Raises:
        GpuUnavailable: numba finds no CUDA GPU.
        CandidateLimitExceeded: More candidates than ``max_candidates``.
    """
    a = check_bits("a_bits", a_bits)
    b = check_bits("b_bits", b_bits)
    check_same_width(a, b)
    t = check_threshold(threshold)
    if (a.shape[1] + 7) // 8 > _MAX_WORDS:
        raise ValueError(f"filters of at most {64 * _MAX_WORDS} bits")
    if not available():
        raise GpuUnavailable("no CUDA GPU is available to numba here")
    kernel: Any = _dice_tile
    a_words, b_words = to_words(a), to_words(b)
    n_words = a_words.shape[1]
    d_b = cuda.to_device(b_words)
    d_bpop = cuda.to_device(row_popcounts(b_words))
    out_parts: list[Candidates] = []
    found = 0
    for start in range(0, a.shape[0], chunk_rows):
        chunk = a_words[start : start + chunk_rows]
        d_a = cuda.to_device(chunk)
        d_apop = cuda.to_device(row_popcounts(chunk))
        grid = (-(-b.shape[0] // _TILE_B), -(-chunk.shape[0] // _TILE_A))
        while True:
            d_i = cuda.device_array(capacity, np.int64)
            d_j = cuda.device_array(capacity, np.int64)
            d_s = cuda.device_array(capacity, np.float64)
            d_n = cuda.to_device(np.zeros(1, np.int64))
            kernel[grid, (_TILE_B, _TILE_A)](d_a, d_apop, d_b, d_bpop, n_words, t,
                                             d_i, d_j, d_s, d_n)  # fmt: skip
            n = int(d_n.copy_to_host()[0])
            if n <= capacity:
                break
            capacity = n  # run the chunk again with room for every pair
        found += n
        if max_candidates is not None and found > max_candidates:
            raise CandidateLimitExceeded(
                f"more than {max_candidates:,} candidate pairs at threshold {threshold}; "
                "raise the threshold or use blocking"
            )
        i = d_i.copy_to_host()[:n] + start
        j = d_j.copy_to_host()[:n]
        s = d_s.copy_to_host()[:n]
        order = np.lexsort((j, i))  # the atomic slots come in no order
        out_parts.append(Candidates(i[order], j[order], s[order]))
    return Candidates.concatenate(out_parts)
