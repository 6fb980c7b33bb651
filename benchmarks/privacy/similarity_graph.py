"""Similarity graphs of records (encodings or plaintext) and the node features they preserve."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
from numba import njit
from numpy.typing import NDArray

from linkage_unit.matching import iter_dice_candidates

__all__ = [
    "F32",
    "F64",
    "I64",
    "U8",
    "Calibration",
    "Scales",
    "SimilarityGraph",
    "node_features",
    "similarity_graph",
    "similarity_scales",
]

F32 = NDArray[np.float32]
F64 = NDArray[np.float64]
I64 = NDArray[np.int64]
U8 = NDArray[np.uint8]


@dataclass(frozen=True)
class SimilarityGraph:
    """A thresholded similarity graph, each node's strongest edges kept.

    Attributes:
        neighbours: ``(n, k)`` the ``k`` most similar other nodes, best first (-1 pads).
        scores: ``(n, k)`` their similarities (0 pads).
        counts: ``(n, len(levels))`` how many other nodes reach each level (the degree at
            that threshold); ``counts[:, 0]`` is the degree in the graph.
        levels: The similarity levels counted, ascending; ``levels[0]`` is the threshold.
    """

    neighbours: I64
    scores: F32
    counts: I64
    levels: F64


def _accumulate(
    graph_n: I64, graph_s: F32, counts: I64, levels: F64, chunk: tuple[I64, I64, F64],
    score_map: Callable[[F64], F64] | None,
) -> None:  # fmt: skip
    """Fold one tile of candidate pairs into the top-k lists and level counts."""
    i, j, s = chunk
    keep = i != j
    i, j, s = i[keep], j[keep], s[keep]
    if score_map is not None:
        s = score_map(s)
    # Every pair returned is an edge; the higher levels are counted on the common scale.
    counts[:, 0] += np.bincount(i, minlength=counts.shape[0])
    for level_index in range(1, levels.shape[0]):
        counts[:, level_index] += np.bincount(
            i[s >= levels[level_index]], minlength=counts.shape[0]
        )
    order = np.lexsort((-s, i))
    i, j, s = i[order], j[order], s[order]
    rank = np.arange(i.shape[0]) - np.searchsorted(i, i, side="left")
    top = rank < graph_n.shape[1]
    graph_n[i[top], rank[top]] = j[top]
    graph_s[i[top], rank[top]] = s[top]


def similarity_graph(
    bits: U8,
    threshold: float,
    *,
    neighbours: int,
    levels: Sequence[float] = (),
    score_map: Callable[[F64], F64] | None = None,
) -> SimilarityGraph:
    """Every pair of rows of ``bits`` whose Dice reaches ``threshold``, the top ones kept.

    Args:
        bits: Packed rows (encodings, or token sets packed one bit per token).
        threshold: Dice an edge needs, on the scale of ``bits``.
        neighbours: Edges kept per node, strongest first.
        levels: Further thresholds, above the graph's, at which degrees are counted; on
            the scale ``score_map`` gives (the scale of ``bits`` without one).
        score_map: Maps Dice on ``bits`` to the scale the graphs are compared on (a
            monotone calibration); the returned scores are mapped.
    """
    n = bits.shape[0]
    base = float(threshold) if score_map is None else float(score_map(np.array([threshold]))[0])
    all_levels = np.array([base, *levels], dtype=np.float64)
    graph_n = np.full((n, neighbours), -1, dtype=np.int64)
    graph_s = np.zeros((n, neighbours), dtype=np.float32)
    counts = np.zeros((n, all_levels.shape[0]), dtype=np.int64)
    for chunk in iter_dice_candidates(bits, bits, threshold):
        _accumulate(graph_n, graph_s, counts, all_levels, chunk, score_map)
    return SimilarityGraph(graph_n, graph_s, counts, all_levels)


@njit(cache=True, nogil=True)
def _egonet(neighbours: I64) -> tuple[F64, F64]:  # pragma: no cover - compiled
    """Egonet density and two-hop size of each node.

    Density of each node's neighbourhood (directed top-k edges among its neighbours, out
    of those possible) and its two-hop size (distinct nodes two steps away).
    """
    n, k = neighbours.shape
    mark = np.full(n, -1, dtype=np.int64)
    seen = np.full(n, -1, dtype=np.int64)
    density = np.zeros(n)
    two_hop = np.zeros(n)
    for u in range(n):
        m = 0
        for a in range(k):
            v = neighbours[u, a]
            if v >= 0:
                mark[v] = u
                m += 1
        mark[u] = u
        links = 0
        reach = 0
        for a in range(k):
            v = neighbours[u, a]
            if v < 0:
                continue
            for b in range(k):
                w = neighbours[v, b]
                if w < 0:
                    continue
                if mark[w] == u and w != u:
                    links += 1
                elif mark[w] != u and seen[w] != u:
                    seen[w] = u
                    reach += 1
        if m > 1:
            density[u] = links / (m * (m - 1))
        two_hop[u] = reach
    return density, two_hop


def node_features(graph: SimilarityGraph, popcount: F64, *, top: int = 10) -> F32:
    """The paper's node feature vector, from what a similarity graph preserves, standardised.

    Per node: filter popcount; log-degree at every counted level (a cumulative histogram of
    its edge similarities); its ``top`` highest similarities; mean and spread of its kept
    edges; mean, spread and maximum log-degree of its neighbours and their mean popcount;
    egonet density and log two-hop size.

    Args:
        graph: The similarity graph.
        popcount: Bits set per node (expected bits set, for token sets).
        top: Individual edge similarities included.

    Returns:
        ``(n, d)`` features, each centred and scaled to unit variance over the nodes.
    """
    valid = graph.neighbours >= 0
    safe = np.where(valid, graph.neighbours, 0)
    k_valid = np.maximum(valid.sum(axis=1), 1)
    log_degree = np.log1p(graph.counts.astype(np.float64))
    scores = np.where(valid, graph.scores, graph.levels[0]).astype(np.float64)
    mean_s = np.where(valid, graph.scores, 0).sum(axis=1) / k_valid
    std_s = np.sqrt(np.where(valid, (graph.scores - mean_s[:, None]) ** 2, 0).sum(axis=1) / k_valid)
    nb_deg = np.where(valid, log_degree[safe, 0], 0.0)
    nb_mean = nb_deg.sum(axis=1) / k_valid
    nb_std = np.sqrt(np.where(valid, (nb_deg - nb_mean[:, None]) ** 2, 0).sum(axis=1) / k_valid)
    nb_pop = np.where(valid, popcount[safe], 0).sum(axis=1) / k_valid
    density, two_hop = _egonet(graph.neighbours)
    columns = [
        popcount[:, None],
        log_degree,
        scores[:, :top],
        mean_s[:, None],
        std_s[:, None],
        nb_mean[:, None],
        nb_std[:, None],
        nb_deg.max(axis=1)[:, None],
        nb_pop[:, None],
        density[:, None],
        np.log1p(two_hop)[:, None],
    ]
    features = np.hstack(columns)
    std = features.std(axis=0)
    standardised: F32 = ((features - features.mean(axis=0)) / np.where(std > 0, std, 1)).astype(
        np.float32
    )
    return standardised


# --- similarity scales --------------------------------------------------------------------------


def _tail_scores(bits: U8, rows: I64, floor: float) -> F64:
    """The highest Dice of sampled rows with the other rows.

    Dice of the sampled ``rows`` with every other row, those reaching ``floor``, highest
    first.
    """
    parts = []
    for i, j, s in iter_dice_candidates(bits[rows], bits, floor):
        parts.append(s[rows[i] != j])
    scores = np.concatenate(parts) if parts else np.zeros(0)
    return np.sort(scores)[::-1]


def _sample_rows(n: int, size: int, rng: np.random.Generator) -> I64:
    return np.sort(rng.choice(n, size=min(n, size), replace=False)).astype(np.int64)


def _tail(bits: U8, rows: I64, wanted: float) -> F64:
    """At least ``wanted`` of the highest similarities of ``rows``, highest first.

    At least ``wanted`` of the highest similarities of ``rows`` with the other rows (all
    that are above 0 if there are fewer), highest first.
    """
    for floor in (0.8, 0.7, 0.6, 0.5, 0.4, 0.3, 0.2, 0.1, 1e-9):
        scores = _tail_scores(bits, rows, floor)
        if scores.shape[0] >= wanted:
            break
    return scores


@dataclass(frozen=True)
class Calibration:
    """A monotone map of the register side's Dice onto the encodings' scale."""

    plain: F64
    encoded: F64

    def __call__(self, scores: F64) -> F64:
        """Plaintext similarities on the encodings' scale."""
        return np.interp(scores, self.plain, self.encoded)

    def inverse(self, scores: F64) -> F64:
        """Encoding similarities on the plaintext scale."""
        return np.interp(scores, self.encoded, self.plain)


@dataclass(frozen=True)
class Scales:
    """Where the graphs and profiles cut, and how the two sides' similarities compare."""

    threshold: float  # graph edges, on the encodings' Dice
    floor: float  # anchor profiles, on the encodings' Dice
    calibration: Calibration


def similarity_scales(
    encodings: U8,
    plain: U8,
    mean_degree: float,
    profile_share: float,
    sample: int,
    rng: np.random.Generator,
) -> Scales:
    """Graph thresholds and the calibration of the two sides' similarities.

    Thresholds from a sample of rows, and quantile matching of the two sides' pair
    similarities over the upper part of their distributions (graphs and profiles use no
    more).

    Even between two encodings of the same records the similarity distribution shifts with
    the key (how the frequent tokens' bits happen to collide), so the sides are put on one
    scale by rank, not by value; for token sets the map is the whole calibration.
    """
    enc_rows = _sample_rows(encodings.shape[0], sample, rng)
    plain_rows = _sample_rows(plain.shape[0], sample, rng)
    enc_pairs = enc_rows.shape[0] * (encodings.shape[0] - 1)
    plain_pairs = plain_rows.shape[0] * (plain.shape[0] - 1)
    degree_share = mean_degree / max(encodings.shape[0] - 1, 1)
    tail = min(1.0, max(4 * degree_share, profile_share))
    enc = _tail(encodings, enc_rows, tail * enc_pairs)
    plain_scores = _tail(plain, plain_rows, tail * plain_pairs)
    if not enc.shape[0] or not plain_scores.shape[0]:
        identity = np.array([0.0, 1.0])
        return Scales(1.0, 1.0, Calibration(identity, identity))

    def at(scores: F64, pairs: int, share: F64) -> F64:
        # Pairs beyond the scores found (below the lowest floor) score 0.
        rank = np.floor(share * pairs).astype(np.int64)
        return np.where(rank < scores.shape[0], scores[np.minimum(rank, scores.shape[0] - 1)], 0)

    # Quantiles spaced geometrically: the graph lives in the top fraction of a percent.
    shares = np.geomspace(1 / max(min(enc_pairs, plain_pairs), 1), tail, 600)
    enc_q = at(enc, enc_pairs, shares)
    plain_q = at(plain_scores, plain_pairs, shares)
    # Ascending plain scores; ties (token Dice is a ratio of small counts) averaged.
    plain_levels, inverse = np.unique(plain_q, return_inverse=True)
    encoded = np.maximum.accumulate(np.bincount(inverse, weights=enc_q) / np.bincount(inverse))
    threshold = float(at(enc, enc_pairs, np.array([degree_share]))[0])
    floor = float(at(enc, enc_pairs, np.array([profile_share]))[0])
    return Scales(threshold, floor, Calibration(plain_levels, encoded))
