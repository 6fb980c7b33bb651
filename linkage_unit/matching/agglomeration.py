"""Greedy agglomeration of records into entities: visiting order, party sets and union-find.

Both :func:`linkage_unit.matching.solving.cluster` (one linkage of N parties) and
:meth:`linkage_unit.matching.entities.EntityIndex.add_records` (new records against a
persistent index) visit candidate pairs by descending score and join the two sides' entities
unless a party constraint forbids it; this module is that shared machinery.  Nodes are
records or entities, numbered by the caller; each carries its party set as a bit mask of
``ceil(n_parties / 64)`` words, so the constraint check costs a few word operations.
"""

from __future__ import annotations

from typing import Final

import numpy as np
from numba import njit
from numpy.typing import NDArray

__all__ = [
    "greedy_union",
    "labels_by_first_appearance",
    "order_by_score",
    "party_masks",
]

_MASK_BITS: Final = 64
#: Hash-table sizes (log2) tried by the counting sort of scores, smallest first.
_TABLE_BITS: Final = (12, 15, 18, 21, 24)


def order_by_score(score: NDArray[np.float64], key: NDArray[np.int64]) -> NDArray[np.int64]:
    """Permutation visiting pairs by descending ``score``, ties by ascending ``key``.

    A stable sort by key (skipped when the pairs already come sorted by key, as
    :func:`dice_candidates` returns them), then a stable counting sort by score rank: the
    distinct scores are found with a hash table, which is much faster than a comparison
    sort because similarity scores take few distinct values.  Falls back to numpy's stable
    sort when there are too many distinct scores.
    """
    n = len(score)
    by_key: NDArray[np.int64] | None = None
    if n > 1 and not bool(np.all(key[1:] >= key[:-1])):
        by_key = np.argsort(key, kind="stable").astype(np.int64, copy=False)
        score = score[by_key]
    order = np.zeros(0, dtype=np.int64)
    if n:
        for table_bits in _TABLE_BITS:
            order = _rank_order(score, table_bits)
            if len(order) == n:
                break
        else:
            order = np.argsort(-score, kind="stable").astype(np.int64, copy=False)
    return order if by_key is None else by_key[order]


@njit(cache=True, nogil=True)
def _rank_order(
    score: NDArray[np.float64], table_bits: int
) -> NDArray[np.int64]:  # pragma: no cover
    """Stable sort of finite ``score`` descending; an empty result if too many distinct values.

    Each score is mapped to a uint64 key whose ascending order is descending score order
    (the IEEE bit pattern, flipped).  Distinct keys go into an open-addressing hash table
    of ``2 ** table_bits`` slots (at most half full), are ranked, and the positions are
    scattered by rank (a counting sort).
    """
    n = len(score)
    sign = np.uint64(1) << np.uint64(63)
    cap = 1 << table_bits
    empty = np.uint64(0xFFFFFFFFFFFFFFFF)  # ~0 is the key of no finite double
    table = np.full(cap, empty, dtype=np.uint64)
    slot = np.empty(n, dtype=np.int32)
    mult = np.uint64(0x9E3779B97F4A7C15)
    shift = np.uint64(64 - table_bits)
    wrap = np.uint64(cap - 1)
    distinct = 0
    for t in range(n):
        bits = np.float64(score[t] + 0.0).view(np.uint64)  # + 0.0 turns -0.0 into +0.0
        k = bits if bits & sign else ~(bits | sign)
        h = (k * mult) >> shift
        while True:
            current = table[h]
            if current == k:
                break
            if current == empty:
                table[h] = k
                distinct += 1
                if distinct * 2 > cap:
                    return np.empty(0, dtype=np.int64)
                break
            h = (h + np.uint64(1)) & wrap
        slot[t] = h
    used = np.nonzero(table != empty)[0]
    by_value = np.argsort(table[used])
    rank = np.empty(cap, dtype=np.int32)
    for r in range(len(by_value)):
        rank[used[by_value[r]]] = r
    start = np.zeros(len(by_value) + 1, dtype=np.int64)
    for t in range(n):
        r = rank[slot[t]]
        slot[t] = r
        start[r + 1] += 1
    for r in range(len(by_value)):
        start[r + 1] += start[r]
    out = np.empty(n, dtype=np.int64)
    for t in range(n):
        r = slot[t]
        out[start[r]] = t
        start[r] += 1
    return out


@njit(cache=True, nogil=True)
def _find(parent: NDArray[np.int64], x: int) -> int:  # pragma: no cover - compiled
    root = x
    while parent[root] != root:
        root = parent[root]
    while parent[x] != root:
        nxt = parent[x]
        parent[x] = root
        x = nxt
    return root


@njit(cache=True, nogil=True)
def greedy_union(
    u: NDArray[np.int64],
    v: NDArray[np.int64],
    order: NDArray[np.int64],
    masks: NDArray[np.uint64],
    anchored: NDArray[np.bool_],
    forbid: bool,
    allow_anchor_merge: bool,
    own: NDArray[np.int64],
) -> tuple[NDArray[np.int64], NDArray[np.bool_]]:  # pragma: no cover - compiled
    """Greedy agglomeration of nodes along edges ``(u[e], v[e])`` visited in ``order``.

    ``masks`` (nodes x words) holds each node's party set and ``anchored`` whether it is
    an existing entity; both are updated in place for the roots.  An edge is refused when
    ``forbid`` and the two components share a party, or when both are anchored and
    ``allow_anchor_merge`` is false.  A within-party edge of party ``own[e] >= 0`` (a
    duplicate pair, ``duplicates="linked"``) may join components that share that party and
    no other.  Returns every node's root (fully compressed) and which edges were accepted.
    """
    n = masks.shape[0]
    words = masks.shape[1]
    parent = np.arange(n, dtype=np.int64)
    size = np.ones(n, dtype=np.int64)
    accepted = np.zeros(len(u), dtype=np.bool_)
    for t in range(len(order)):
        e = order[t]
        ru = _find(parent, u[e])
        rv = _find(parent, v[e])
        if ru == rv:
            continue
        if forbid:
            clash = False
            p = own[e]
            for w in range(words):
                shared = masks[ru, w] & masks[rv, w]
                if shared:
                    if p >= 0 and w == p // 64 and shared == np.uint64(1) << np.uint64(p % 64):
                        continue  # a duplicate pair may share its own party, nothing else
                    clash = True
                    break
            if clash:
                continue
        if not allow_anchor_merge and anchored[ru] and anchored[rv]:
            continue
        if size[ru] < size[rv] or (size[ru] == size[rv] and rv < ru):
            ru, rv = rv, ru
        parent[rv] = ru
        size[ru] += size[rv]
        for w in range(words):
            masks[ru, w] |= masks[rv, w]
        anchored[ru] = anchored[ru] or anchored[rv]
        accepted[e] = True
    for x in range(n):
        parent[x] = _find(parent, x)
    return parent, accepted


def party_masks(
    nodes: NDArray[np.int64], parties: NDArray[np.int64], n_nodes: int, n_parties: int
) -> NDArray[np.uint64]:
    """Party set of every node, as ``ceil(n_parties / 64)`` words (at least one).

    ``masks[n]`` has bit ``p`` for each record ``k`` with ``nodes[k] == n`` and
    ``parties[k] == p``.
    """
    words = max(1, -(-n_parties // _MASK_BITS))
    masks = np.zeros((n_nodes, words), dtype=np.uint64)
    bit = np.left_shift(np.uint64(1), (parties % _MASK_BITS).astype(np.uint64))
    np.bitwise_or.at(masks, (nodes, parties // _MASK_BITS), bit)
    return masks


def labels_by_first_appearance(roots: NDArray[np.int64]) -> NDArray[np.int64]:
    """Relabel root ids as ``0..k-1`` in order of their first occurrence."""
    if not len(roots):
        return np.zeros(0, dtype=np.int64)
    _, first, inverse = np.unique(roots, return_index=True, return_inverse=True)
    rank = np.empty(len(first), dtype=np.int64)
    rank[np.argsort(first, kind="stable")] = np.arange(len(first), dtype=np.int64)
    return rank[inverse.reshape(-1)]
