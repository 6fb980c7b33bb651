"""Matching two sides' feature vectors: best candidates per row, resolved one to one."""

from __future__ import annotations

import numpy as np
from numba import njit, prange

from benchmarks.privacy.similarity_graph import F32, F64, I64

__all__ = [
    "best_candidates",
    "chunk_rows",
    "pair_dots",
    "resolve_one_to_one",
]


def chunk_rows(columns: int, budget: int = 1 << 25) -> int:
    """Rows per chunk so that a chunk of scores holds about ``budget`` floats."""
    return max(16, budget // max(columns, 1))


@njit(cache=True, nogil=True, parallel=True)
def _top_per_row(scores: F32, count: int) -> tuple[I64, F32]:  # pragma: no cover - compiled
    """The ``count`` largest entries of each row, best first (one pass, an insertion list)."""
    rows, cols = scores.shape
    out_j = np.empty((rows, count), dtype=np.int64)
    out_s = np.empty((rows, count), dtype=np.float32)
    for r in prange(rows):
        best_s = np.full(count, -np.inf, dtype=np.float32)
        best_j = np.full(count, -1, dtype=np.int64)
        for c in range(cols):
            s = scores[r, c]
            if s <= best_s[count - 1]:
                continue
            at = count - 1
            while at > 0 and best_s[at - 1] < s:
                best_s[at] = best_s[at - 1]
                best_j[at] = best_j[at - 1]
                at -= 1
            best_s[at] = s
            best_j[at] = c
        out_j[r] = best_j
        out_s[r] = best_s
    return out_j, out_s


def best_candidates(x: F32, y: F32, bias_x: F32, bias_y: F32, count: int) -> tuple[I64, F32]:
    """The ``count`` best columns of each row of ``x @ y.T + bias_x[:, None] + bias_y``.

    Computed a chunk of rows at a time, so memory stays bounded for any number of rows.

    Returns:
        ``(n_x, count)`` column indices and their scores, best first.
    """
    count = min(count, y.shape[0])
    out_j = np.empty((x.shape[0], count), dtype=np.int64)
    out_s = np.empty((x.shape[0], count), dtype=np.float32)
    step = chunk_rows(y.shape[0])
    y_t = np.ascontiguousarray(y.T)
    for start in range(0, x.shape[0], step):
        stop = min(start + step, x.shape[0])
        scores = x[start:stop] @ y_t
        scores += bias_y[None, :]
        scores += bias_x[start:stop, None]
        out_j[start:stop], out_s[start:stop] = _top_per_row(scores, count)
    return out_j, out_s


@njit(cache=True, nogil=True, parallel=True)
def pair_dots(x: F32, y: F32, js: I64) -> F32:  # pragma: no cover - compiled
    """``x[i] . y[js[i, k]]`` for every row ``i`` and candidate ``k``."""
    out = np.empty(js.shape, dtype=np.float32)
    for i in prange(js.shape[0]):
        for k in range(js.shape[1]):
            out[i, k] = np.dot(x[i], y[js[i, k]])
    return out


@njit(cache=True, nogil=True)
def _greedy(rows: I64, cols: I64, n_rows: int, n_cols: int) -> I64:  # pragma: no cover
    """One to one: take pairs in the order given, skipping any whose row or column is used."""
    guesses = np.full(n_rows, -1, dtype=np.int64)
    used = np.zeros(n_cols, dtype=np.bool_)
    for t in range(rows.shape[0]):
        r = rows[t]
        c = cols[t]
        if guesses[r] < 0 and not used[c]:
            guesses[r] = c
            used[c] = True
    return guesses


def resolve_one_to_one(cand_j: I64, cand_s: F32, n_cols: int) -> tuple[I64, F64]:
    """Candidate pairs resolved one to one, most similar first, and each match's margin.

    The margin of a match is its score less the best score of any competing pair (the row's
    other candidates, or other rows' candidates for the same column); confident matches
    have large margins. Rows left without a match get -1 and margin -inf.
    """
    n, c = cand_j.shape
    rows = np.repeat(np.arange(n, dtype=np.int64), c)
    cols = cand_j.ravel()
    scores = cand_s.ravel().astype(np.float64)
    listed = cols >= 0
    rows, cols, scores = rows[listed], cols[listed], scores[listed]
    order = np.argsort(-scores, kind="stable")
    guesses = _greedy(rows[order], cols[order], n, n_cols)
    # The two best scores per column, over every row's candidates.
    by_col = np.lexsort((-scores, cols))
    col_sorted = cols[by_col]
    first = np.searchsorted(col_sorted, col_sorted, side="left")
    rank = np.arange(col_sorted.shape[0]) - first
    col_best = np.full((n_cols, 2), -np.inf)
    pick = rank < 2
    col_best[col_sorted[pick], rank[pick]] = scores[by_col][pick]
    col_row = np.full(n_cols, -1, dtype=np.int64)
    col_row[col_sorted[rank == 0]] = rows[by_col][rank == 0]
    own = cand_j == guesses[:, None]
    matched = own.any(axis=1)
    score = np.where(own, cand_s, -np.inf).max(axis=1).astype(np.float64)
    row_rival = np.where(own, -np.inf, cand_s).max(axis=1).astype(np.float64)
    safe = np.where(matched, guesses, 0)
    col_rival = np.where(col_row[safe] == np.arange(n), col_best[safe, 1], col_best[safe, 0])
    margin = np.where(matched, score - np.maximum(row_rival, col_rival), -np.inf)
    return guesses, margin
