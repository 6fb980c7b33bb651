"""Re-identify Bloom-filter encodings by matching their similarity graph to the attacker's.

The attack of Vidanage, Ranbaduge, Christen and Schnell, "A graph matching attack on
privacy-preserving record linkage" (CIKM 2020), re-implemented from the paper. The attacker
holds the plaintext of a population (a register), sees the encodings, knows the schema (it is
agreed openly) but not the secret:

1. **Similarity scales.** Dice between two encodings depends on the keyed hashing only
   through bit collisions, so the attacker encodes its own register with the public schema
   and a key of its own (:func:`reencode`): the paper's similarity adjustment, done with
   the encoding parameters it assumes known. The two sides' pair similarities are then
   matched by quantiles (sampled rows against all rows), because even the same records
   under two keys shift the similarity distribution a little. With
   ``similarity="tokens"`` the register's token sets are compared directly and the quantile
   matching is the whole calibration: no knowledge of the hashing is used.
2. **Graphs.** Each side's similarity graph links records whose similarity reaches the
   threshold at which an encoding has ``mean_degree`` neighbours on average (the same
   quantile on both sides); the ``neighbours`` most similar of each are kept
   (:func:`similarity_graph`, on the linkage unit's Dice kernel).
3. **Node features** that the encoding preserves (:func:`node_features`): filter
   popcount, degree at several thresholds (a similarity histogram), the sorted similarities
   of the nearest neighbours and their mean and spread, the neighbours' degrees, egonet
   density and two-hop size, each standardised per side.
4. **Matching.** Encodings and register records are compared by the cosine of their feature
   vectors (chunked matrix products, ``candidates`` best per encoding), and the candidate
   pairs are resolved one to one, most similar first.
5. **Refinement with anchors.** The pairs matched with the largest margin over their
   runner-up become anchors (5% of the encodings, at most ``max_anchors``). Every record's
   Dice to the anchors of its own side is a long profile that is the same, up to collision
   noise, for an encoding and its plaintext whatever the key. Profiles are compared by
   squared distance (similarities below the median pair's raised to it, each anchor's
   column centred), candidates found on their principal components and rescored in full,
   and resolved one to one again. The next round's anchors are drawn from the best of the
   new matches, until the confident half of the matches stops changing.

The node features alone re-identify a minority (on the plain CLK, 10-30%), but a hundred
anchors that are mostly right are enough for the profiles to take over. Where the features
are too noisy to give such anchors - schemas with many features at fixed bit budgets, such
as ``pace-default``, whose filters are half full and whose pair similarities are dominated
by key-dependent collisions - the attack gets no foothold on its own; given some pairs it
already knows (``known_pairs``: a known-pair attack) the refinement alone still works
there. A record salt (``hardening.recordSalt``) makes records of different salts look
unrelated; this attack does not split the data by salt, so it cannot work across them.

The attack never reads :attr:`AttackData.truth`; it is scored by
:func:`~benchmarks.privacy.population.reidentified`.

Command line (``python -m benchmarks.privacy.graph --help``)::

    python -m benchmarks.privacy.graph --schema plain-clk --n 2000 10000 --overlap 1.0
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Final, Literal

import numpy as np
from numba import njit, prange
from numpy.typing import NDArray

from benchmarks.privacy import encodings
from benchmarks.privacy.population import AttackData, attack_data, dice_profile, reidentified
from encoder.schema import LinkageSchema, load_schema, parse_schema
from linkage_unit.matching import iter_dice_candidates

__all__ = [
    "PLAIN_CLK_BITS_PER_TOKEN",
    "SimilarityGraph",
    "graph_attack",
    "main",
    "node_features",
    "plain_clk_schema",
    "reencode",
    "similarity_graph",
]

#: Bits per bigram in the validation setting: a plain 1024-bit CLK over the bigrams of names
#: and date of birth, the setting the attack was published and re-implemented on.
PLAIN_CLK_BITS_PER_TOKEN: Final = 20

F32 = NDArray[np.float32]
F64 = NDArray[np.float64]
I64 = NDArray[np.int64]
U8 = NDArray[np.uint8]
Progress = Callable[[str], None]


def plain_clk_schema(bits_per_token: int = PLAIN_CLK_BITS_PER_TOKEN) -> dict[str, Any]:
    """A clkhash v3 schema document for the published setting: a 1024-bit CLK of the bigrams
    of given name, surname and date of birth, ``bits_per_token`` bits each."""
    return encodings.weak_schema(bits_per_token)


# --- the attacker's own encoding of its register ----------------------------------------------


def _token_bits(data: AttackData) -> tuple[I64, I64, I64]:
    """Bits each of the register's tokens sets under the public schema (a flattened ragged
    array: ``offsets`` per record, ``token_ids`` into ``data.vocab``, ``ks``)."""
    schema = data.schema
    raw = schema.raw["features"]
    fixed: dict[int, int] = {}
    per_feature: dict[int, int] = {}
    for feature in schema.hashed_features:
        strategy = raw[feature.index]["hashing"]["strategy"]
        if "bitsPerToken" in strategy:
            fixed[feature.index] = int(strategy["bitsPerToken"])
        else:
            per_feature[feature.index] = int(strategy["bitsPerFeature"])
    index = {token: i for i, token in enumerate(data.vocab)}
    token_feature = [int(token.split(":", 1)[0]) for token in data.vocab]
    offsets = np.zeros(len(data.tokens) + 1, dtype=np.int64)
    token_ids: list[int] = []
    ks: list[int] = []
    for row, tokens in enumerate(data.tokens):
        ids = sorted(index[t] for t in tokens)
        by_feature: dict[int, list[int]] = {}
        for t in ids:
            by_feature.setdefault(token_feature[t], []).append(t)
        for feature_index, members in by_feature.items():
            if feature_index in fixed:
                token_ids.extend(members)
                ks.extend([fixed[feature_index]] * len(members))
                continue
            # clkhash's bitsPerFeature split: the first (total mod count) tokens get one more.
            base, residue = divmod(per_feature[feature_index], len(members))
            token_ids.extend(members)
            ks.extend(base + (r < residue) for r in range(len(members)))
        offsets[row + 1] = len(token_ids)
    return offsets, np.asarray(token_ids, dtype=np.int64), np.asarray(ks, dtype=np.int64)


@njit(cache=True, nogil=True)
def _set_bits(
    offsets: I64, token_ids: I64, ks: I64, positions: NDArray[np.int32], out: U8
) -> None:  # pragma: no cover - compiled
    for row in range(offsets.shape[0] - 1):
        for t in range(offsets[row], offsets[row + 1]):
            tok = token_ids[t]
            for h in range(ks[t]):
                bit = positions[tok, h]
                out[row, bit >> 3] |= np.uint8(128 >> (bit & 7))


def reencode(data: AttackData, *, seed: int = 0) -> U8:
    """The register encoded with the public schema and a random key of the attacker's own.

    A keyed hash sends each token to bit positions that look uniformly random to anyone
    without the key, so drawing the positions at random gives encodings distributed as the
    partners' are - the same bits per token, the same collisions in law - without
    reproducing the hashing itself. Row ``i`` encodes ``data.tokens[i]``.

    Returns:
        ``(n_plain, l / 8)`` packed filters, the layout of ``data.encodings``.
    """
    schema = data.schema
    offsets, token_ids, ks = _token_bits(data)
    most = int(ks.max()) if ks.size else 1
    rng = np.random.default_rng(seed)
    positions = rng.integers(0, schema.hash_length, size=(len(data.vocab), most), dtype=np.int32)
    out = np.zeros((len(data.tokens), schema.hash_length // 8), dtype=np.uint8)
    _set_bits(offsets, token_ids, ks, positions, out)
    for _ in range(schema.xor_folds):
        half = out.shape[1] // 2
        out = np.bitwise_xor(out[:, :half], out[:, half:])
    return np.ascontiguousarray(out)


# --- similarity graphs --------------------------------------------------------------------------


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


def _tail_scores(bits: U8, rows: I64, floor: float) -> F64:
    """Dice of the sampled ``rows`` with every other row, those reaching ``floor``, highest
    first."""
    parts = []
    for i, j, s in iter_dice_candidates(bits[rows], bits, floor):
        parts.append(s[rows[i] != j])
    scores = np.concatenate(parts) if parts else np.zeros(0)
    return np.sort(scores)[::-1]


def _sample_rows(n: int, size: int, rng: np.random.Generator) -> I64:
    return np.sort(rng.choice(n, size=min(n, size), replace=False)).astype(np.int64)


def _tail(bits: U8, rows: I64, wanted: float) -> F64:
    """At least ``wanted`` of the highest similarities of ``rows`` with the other rows (all
    that are above 0 if there are fewer), highest first."""
    for floor in (0.8, 0.7, 0.6, 0.5, 0.4, 0.3, 0.2, 0.1, 1e-9):
        scores = _tail_scores(bits, rows, floor)
        if scores.shape[0] >= wanted:
            break
    return scores


@dataclass(frozen=True)
class _Calibration:
    """A monotone map of the register side's Dice onto the encodings' scale."""

    plain: F64
    encoded: F64

    def __call__(self, scores: F64) -> F64:
        return np.interp(scores, self.plain, self.encoded)

    def inverse(self, scores: F64) -> F64:
        return np.interp(scores, self.encoded, self.plain)


@dataclass(frozen=True)
class _Scales:
    """Where the graphs and profiles cut, and how the two sides' similarities compare."""

    threshold: float  # graph edges, on the encodings' Dice
    floor: float  # anchor profiles, on the encodings' Dice
    calibration: _Calibration


def _scales(
    encodings: U8,
    plain: U8,
    mean_degree: float,
    profile_share: float,
    sample: int,
    rng: np.random.Generator,
) -> _Scales:
    """Thresholds from a sample of rows, and quantile matching of the two sides' pair
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
        return _Scales(1.0, 1.0, _Calibration(identity, identity))

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
    return _Scales(threshold, floor, _Calibration(plain_levels, encoded))


# --- node features ------------------------------------------------------------------------------


@njit(cache=True, nogil=True)
def _egonet(neighbours: I64) -> tuple[F64, F64]:  # pragma: no cover - compiled
    """Density of each node's neighbourhood (directed top-k edges among its neighbours, out
    of those possible) and its two-hop size (distinct nodes two steps away)."""
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


# --- matching -----------------------------------------------------------------------------------


def _chunk_rows(columns: int, budget: int = 1 << 25) -> int:
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


def _best_candidates(x: F32, y: F32, bias_x: F32, bias_y: F32, count: int) -> tuple[I64, F32]:
    """The ``count`` best columns of each row of ``x @ y.T + bias_x[:, None] + bias_y``.

    Computed a chunk of rows at a time, so memory stays bounded for any number of rows.

    Returns:
        ``(n_x, count)`` column indices and their scores, best first.
    """
    count = min(count, y.shape[0])
    out_j = np.empty((x.shape[0], count), dtype=np.int64)
    out_s = np.empty((x.shape[0], count), dtype=np.float32)
    step = _chunk_rows(y.shape[0])
    y_t = np.ascontiguousarray(y.T)
    for start in range(0, x.shape[0], step):
        stop = min(start + step, x.shape[0])
        scores = x[start:stop] @ y_t
        scores += bias_y[None, :]
        scores += bias_x[start:stop, None]
        out_j[start:stop], out_s[start:stop] = _top_per_row(scores, count)
    return out_j, out_s


@njit(cache=True, nogil=True, parallel=True)
def _pair_dots(x: F32, y: F32, js: I64) -> F32:  # pragma: no cover - compiled
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


def _resolve(cand_j: I64, cand_s: F32, n_cols: int) -> tuple[I64, F64]:
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


def _expected_popcount(data: AttackData) -> F64:
    """Bits a register record is expected to set: ``l (1 - (1 - 1/l)^h)`` for ``h`` hashes."""
    offsets, _, ks = _token_bits(data)
    hashes = np.add.reduceat(np.append(ks, 0), offsets[:-1]) * (offsets[1:] > offsets[:-1])
    length = data.schema.hash_length
    return length * (1 - (1 - 1 / length) ** hashes.astype(np.float64))


def _anchor_scores(
    enc_profile: F32, plain_profile: F32, floor: float, count: int, dims: int
) -> tuple[I64, F32]:
    """Candidates by the distance between anchor profiles: ``-|x - y|^2`` after centring
    each anchor's column on each side. The profiles are overwritten.

    Similarities below ``floor`` are raised to it first: only similarities that stand out
    from the background carry the identity; below, a token set's Dice is mostly 0 and an
    encoding's varies with the key's collisions.

    With more anchors than ``dims``, candidates are found on the ``dims`` principal
    components of the profiles (pooled over both sides) and then scored on the whole
    profiles: the all-pairs product costs ``dims`` per pair instead of one per anchor.
    """
    x = np.maximum(enc_profile, np.float32(floor), out=enc_profile)
    x -= x.mean(axis=0)
    y = np.maximum(plain_profile, np.float32(floor), out=plain_profile)
    y -= y.mean(axis=0)
    norm_x = np.einsum("ij,ij->i", x, x)
    norm_y = np.einsum("ij,ij->i", y, y)
    if x.shape[1] <= dims:
        return _best_candidates(2 * x, y, -norm_x, -norm_y, count)
    _, vectors = np.linalg.eigh((x.T @ x + y.T @ y).astype(np.float64))
    basis = np.ascontiguousarray(vectors[:, -dims:].astype(np.float32))
    px, py = x @ basis, y @ basis
    js, _ = _best_candidates(2 * px, py, -(px * px).sum(axis=1), -(py * py).sum(axis=1), count)
    scores = 2 * _pair_dots(x, y, js) - norm_x[:, None] - norm_y[js]
    order = np.argsort(-scores, axis=1, kind="stable")
    return np.take_along_axis(js, order, axis=1), np.take_along_axis(scores, order, axis=1)


def _calibrated(calibration: _Calibration, profile: F32) -> F32:
    """``profile`` mapped onto the encodings' scale, in place, a block of rows at a time."""
    step = _chunk_rows(profile.shape[1], 1 << 22)
    for start in range(0, profile.shape[0], step):
        block = profile[start : start + step]
        block[...] = calibration(block.astype(np.float64))
    return profile


def _feature_match(
    enc_graph: SimilarityGraph,
    enc_pop: F64,
    plain_graph: SimilarityGraph,
    plain_pop: F64,
    candidates: int,
) -> tuple[I64, F64]:
    """Match nodes by the cosine of their feature vectors, one to one."""
    enc_f = node_features(enc_graph, enc_pop)
    plain_f = node_features(plain_graph, plain_pop)
    enc_f /= np.maximum(np.linalg.norm(enc_f, axis=1, keepdims=True), 1e-9)
    plain_f /= np.maximum(np.linalg.norm(plain_f, axis=1, keepdims=True), 1e-9)
    zero_x = np.zeros(enc_f.shape[0], dtype=np.float32)
    zero_y = np.zeros(plain_f.shape[0], dtype=np.float32)
    cand_j, cand_s = _best_candidates(enc_f, plain_f, zero_x, zero_y, candidates)
    return _resolve(cand_j, cand_s, plain_f.shape[0])


def _anchor_match(
    encodings: U8,
    plain: U8,
    anchors: I64,
    guesses: I64,
    scales: _Scales,
    candidates: int,
    dims: int,
) -> tuple[I64, F64]:
    """Match nodes by their similarity profiles to the ``anchors`` (encoding rows, each
    paired with the register row ``guesses`` gives it), one to one."""
    enc_profile = dice_profile(encodings, encodings[anchors])
    plain_profile = _calibrated(scales.calibration, dice_profile(plain, plain[guesses[anchors]]))
    cand_j, cand_s = _anchor_scores(enc_profile, plain_profile, scales.floor, candidates, dims)
    return _resolve(cand_j, cand_s, plain.shape[0])


#: Later rounds draw their anchors from this many times as many of the best matches.
_ANCHOR_POOL: Final = 4


def _checked_pairs(pairs: tuple[I64, I64], n_enc: int, n_plain: int) -> tuple[I64, I64]:
    rows = np.asarray(pairs[0], dtype=np.int64)
    cols = np.asarray(pairs[1], dtype=np.int64)
    if rows.ndim != 1 or rows.shape != cols.shape:
        raise ValueError("known_pairs must be two 1-d arrays of the same length")
    if rows.size and (rows.min() < 0 or rows.max() >= n_enc or cols.min() < 0):
        raise ValueError("known_pairs name rows that do not exist")
    if cols.size and cols.max() >= n_plain:
        raise ValueError("known_pairs name register rows that do not exist")
    if np.unique(rows).size != rows.size or np.unique(cols).size != cols.size:
        raise ValueError("known_pairs must be one to one")
    return rows, cols


def _impose(guesses: I64, margin: F64, known: tuple[I64, I64]) -> tuple[I64, F64]:
    """The known pairs put into ``guesses`` (others that took their register rows lose
    them), with the largest margin."""
    rows, cols = known
    guesses = np.where(np.isin(guesses, cols), -1, guesses)
    guesses[rows] = cols
    margin = np.where(guesses >= 0, margin, -np.inf)
    margin[rows] = np.inf
    return guesses, margin


def graph_attack(
    data: AttackData,
    *,
    seed: int = 0,
    progress: Progress | None = None,
    similarity: Literal["reencode", "tokens"] = "reencode",
    mean_degree: float = 20.0,
    neighbours: int = 20,
    candidates: int = 40,
    rounds: int = 8,
    first_anchors: float = 0.05,
    max_anchors: int = 1000,
    profile_share: float = 0.5,
    dims: int = 64,
    sample: int = 200,
    known_pairs: tuple[I64, I64] | None = None,
) -> I64:
    """Guess, one to one, which register record each encoding is.

    Args:
        data: The encodings and the attacker's register (``data.truth`` is not read).
        seed: Seeds the attacker's key and its samples.
        progress: Called with a line at each stage.
        similarity: ``"reencode"`` puts the register on the encodings' similarity scale by
            encoding it with the public schema and a key of the attacker's own;
            ``"tokens"`` compares token sets, knowing nothing of the hashing.
        mean_degree: Average degree the graph threshold is chosen for.
        neighbours: Strongest edges kept per node.
        candidates: Register records considered per encoding when resolving.
        rounds: Most refinement rounds with anchors (0: node features only).
        first_anchors: Share of encodings taken as anchors from the feature matching.
        max_anchors: Most anchors used in a refinement round.
        profile_share: Share of all pairs whose similarity counts in anchor profiles
            (the rest are raised to the background level).
        dims: Principal components of the anchor profiles on which candidates are found.
        sample: Rows sampled to choose the thresholds and calibrate the two sides.
        known_pairs: Encoding rows and the register rows the attacker already knows them
            to be (a known-pair attack: e.g. people it knows are in both). They replace
            the node-feature matching as the first anchors and are kept in every guess.

    Returns:
        One register row per encoding, or -1; no register row is guessed twice.

    Raises:
        ValueError: ``similarity`` is unknown, or ``known_pairs`` are not one to one
            pairs of existing rows.
    """
    say = progress or (lambda _: None)
    rng = np.random.default_rng(seed)
    started = time.perf_counter()

    def note(text: str) -> None:
        say(f"[{time.perf_counter() - started:6.1f} s] {text}")

    encodings = np.ascontiguousarray(data.encodings)
    n_enc, n_plain = encodings.shape[0], len(data.tokens)
    known = None if known_pairs is None else _checked_pairs(known_pairs, n_enc, n_plain)
    if n_enc == 0 or n_plain == 0:
        return np.full(n_enc, -1, dtype=np.int64)
    if similarity == "reencode":
        plain = reencode(data, seed=int(rng.integers(2**63)))
        plain_pop = np.unpackbits(plain, axis=1).sum(axis=1).astype(np.float64)
    elif similarity == "tokens":
        plain = np.ascontiguousarray(data.plaintext)
        plain_pop = _expected_popcount(data)
    else:
        raise ValueError(f"similarity must be 'reencode' or 'tokens', got {similarity!r}")
    scales = _scales(encodings, plain, mean_degree, profile_share, sample, rng)
    plain_threshold = float(scales.calibration.inverse(np.array([scales.threshold]))[0])
    levels = [t for t in scales.threshold + np.array([0.05, 0.1, 0.15, 0.2]) if t < 1]
    note(
        f"graph threshold {scales.threshold:.3f} (register side {plain_threshold:.3f}), "
        f"profile floor {scales.floor:.3f}"
    )
    if known is None:
        enc_graph = similarity_graph(
            encodings, scales.threshold, neighbours=neighbours, levels=levels
        )
        plain_graph = similarity_graph(
            plain, max(plain_threshold, 1e-9), neighbours=neighbours, levels=levels,
            score_map=scales.calibration,
        )  # fmt: skip
        note(
            f"graphs: mean degree {enc_graph.counts[:, 0].mean():.1f} (encodings), "
            f"{plain_graph.counts[:, 0].mean():.1f} (register)"
        )
    if known is not None:
        # A known-pair attack: the pairs the attacker knows are its first anchors.
        guesses = np.full(n_enc, -1, dtype=np.int64)
        margin = np.full(n_enc, -np.inf)
        guesses, margin = _impose(guesses, margin, known)
        note(f"{known[0].shape[0]} known pairs")
    else:
        enc_pop = np.unpackbits(encodings, axis=1).sum(axis=1).astype(np.float64)
        guesses, margin = _feature_match(enc_graph, enc_pop, plain_graph, plain_pop, candidates)
        note(f"node features: {int((guesses >= 0).sum())} matched")
    count = max(2, round(first_anchors * n_enc))
    for round_no in range(rounds):
        matched = np.flatnonzero(guesses >= 0)
        count = min(count, max_anchors, matched.shape[0])
        if count < 2:
            break
        ranked = matched[np.argsort(-margin[matched], kind="stable")]
        if round_no == 0:
            # From the node features only the very best matches are right often enough.
            anchors = ranked[:count]
        else:
            # Later, anchors drawn from among the confident matches: the matches of largest
            # margin are the most unusual records, whose profiles tell fewer others apart.
            pool = ranked[: max(count, min(ranked.shape[0] // 2, _ANCHOR_POOL * count))]
            anchors = np.sort(rng.choice(pool, size=count, replace=False))
        if known is not None:
            anchors = np.union1d(anchors, known[0])
        previous = guesses
        guesses, margin = _anchor_match(
            encodings, plain, anchors, guesses, scales, candidates, dims
        )
        if known is not None:
            guesses, margin = _impose(guesses, margin, known)
        # Settled when the confident half of the matches no longer moves (guesses for
        # people missing from the register may change forever, and do no harm).
        matched = np.flatnonzero(guesses >= 0)
        confident = (
            matched[margin[matched] >= np.median(margin[matched])] if matched.size else matched
        )
        changed = (
            float((guesses[confident] != previous[confident]).mean()) if confident.size else 0.0
        )
        note(
            f"round {round_no + 1}: {anchors.shape[0]} anchors, {matched.shape[0]} matched, "
            f"{changed:.2%} of the confident half changed"
        )
        if count >= min(max_anchors, n_enc // 2) and changed < 0.001:
            break  # another round with as many anchors would change next to nothing
        count = min(max_anchors, max(2 * count, n_enc // 2))
    return guesses


# --- command line -------------------------------------------------------------------------------


def _schema_named(name: str) -> LinkageSchema:
    if name == "plain-clk":
        return parse_schema(plain_clk_schema(), "plain-clk")
    return load_schema(name)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the attack on synthetic data and print the share re-identified per setting."""
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.privacy.graph", description=main.__doc__
    )
    parser.add_argument(
        "--schema",
        nargs="+",
        default=["plain-clk"],
        help="'plain-clk' (1024-bit CLK of name and date-of-birth bigrams), 'pace-default', "
        "or a schema file",
    )
    parser.add_argument("--n", type=int, nargs="+", default=[2000], help="records per side")
    parser.add_argument("--overlap", type=float, nargs="+", default=[1.0])
    parser.add_argument(
        "--similarity", nargs="+", default=["reencode"], choices=["reencode", "tokens"]
    )
    parser.add_argument("--seed", type=int, default=1, help="seed of the data (the attack uses 0)")
    parser.add_argument("--verbose", action="store_true", help="print the attack's progress")
    args = parser.parse_args(argv)
    print("schema        n  overlap  similarity  in register  re-identified  seconds")
    for schema_name in args.schema:
        schema = _schema_named(schema_name)
        for n in args.n:
            for overlap in args.overlap:
                data = attack_data(schema, n, overlap=overlap, seed=args.seed)
                for similarity in args.similarity:
                    started = time.perf_counter()
                    guesses = graph_attack(
                        data,
                        similarity=similarity,
                        progress=(lambda line: print("   ", line, flush=True))
                        if args.verbose
                        else None,
                    )
                    seconds = time.perf_counter() - started
                    share = reidentified(data, guesses)
                    in_register = data.in_register / n
                    print(
                        f"{schema_name:<12} {n:>7}  {overlap:>7.2f}  {similarity:<10}  "
                        f"{in_register:>11.1%}  {share:>13.2%}  {seconds:>7.1f}",
                        flush=True,
                    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
