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
from typing import Any, Final, Literal

import numpy as np
from numba import njit
from numpy.typing import NDArray

from benchmarks.privacy import encodings
from benchmarks.privacy.graph_matching import (
    best_candidates,
    chunk_rows,
    pair_dots,
    resolve_one_to_one,
)
from benchmarks.privacy.population import AttackData, attack_data, dice_profile, reidentified
from benchmarks.privacy.similarity_graph import (
    F32,
    F64,
    I64,
    U8,
    Calibration,
    Scales,
    SimilarityGraph,
    node_features,
    similarity_graph,
    similarity_scales,
)
from encoder.schema import LinkageSchema, load_schema, parse_schema

__all__ = [
    "PLAIN_CLK_BITS_PER_TOKEN",
    "graph_attack",
    "main",
    "plain_clk_schema",
    "reencode",
]

#: Bits per bigram in the validation setting: a plain 1024-bit CLK over the bigrams of names
#: and date of birth, the setting the attack was published and re-implemented on.
PLAIN_CLK_BITS_PER_TOKEN: Final = 20

Progress = Callable[[str], None]


def plain_clk_schema(bits_per_token: int = PLAIN_CLK_BITS_PER_TOKEN) -> dict[str, Any]:
    """A clkhash v3 schema document for the published setting.

    A clkhash v3 schema document for the published setting: a 1024-bit CLK of the bigrams
    of given name, surname and date of birth, ``bits_per_token`` bits each.
    """
    return encodings.weak_schema(bits_per_token)


# --- the attacker's own encoding of its register ----------------------------------------------


def _token_bits(data: AttackData) -> tuple[I64, I64, I64]:
    """Bits each of the register's tokens sets under the public schema.

    Bits each of the register's tokens sets under the public schema (a flattened ragged
    array: ``offsets`` per record, ``token_ids`` into ``data.vocab``, ``ks``).
    """
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


def _expected_popcount(data: AttackData) -> F64:
    """Bits a register record is expected to set: ``l (1 - (1 - 1/l)^h)`` for ``h`` hashes."""
    offsets, _, ks = _token_bits(data)
    hashes = np.add.reduceat(np.append(ks, 0), offsets[:-1]) * (offsets[1:] > offsets[:-1])
    length = data.schema.hash_length
    return length * (1 - (1 - 1 / length) ** hashes.astype(np.float64))


def _anchor_scores(
    enc_profile: F32, plain_profile: F32, floor: float, count: int, dims: int
) -> tuple[I64, F32]:
    """Candidates by the distance between anchor profiles.

    Candidates by the distance between anchor profiles: ``-|x - y|^2`` after centring
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
        return best_candidates(2 * x, y, -norm_x, -norm_y, count)
    _, vectors = np.linalg.eigh((x.T @ x + y.T @ y).astype(np.float64))
    basis = np.ascontiguousarray(vectors[:, -dims:].astype(np.float32))
    px, py = x @ basis, y @ basis
    js, _ = best_candidates(2 * px, py, -(px * px).sum(axis=1), -(py * py).sum(axis=1), count)
    scores = 2 * pair_dots(x, y, js) - norm_x[:, None] - norm_y[js]
    order = np.argsort(-scores, axis=1, kind="stable")
    return np.take_along_axis(js, order, axis=1), np.take_along_axis(scores, order, axis=1)


def _calibrated(calibration: Calibration, profile: F32) -> F32:
    """``profile`` mapped onto the encodings' scale, in place, a block of rows at a time."""
    step = chunk_rows(profile.shape[1], 1 << 22)
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
    cand_j, cand_s = best_candidates(enc_f, plain_f, zero_x, zero_y, candidates)
    return resolve_one_to_one(cand_j, cand_s, plain_f.shape[0])


def _anchor_match(
    encodings: U8,
    plain: U8,
    anchors: I64,
    guesses: I64,
    scales: Scales,
    candidates: int,
    dims: int,
) -> tuple[I64, F64]:
    """Match nodes by their similarity profiles to the anchors, one to one.

    Match nodes by their similarity profiles to the ``anchors`` (encoding rows, each
    paired with the register row ``guesses`` gives it), one to one.
    """
    enc_profile = dice_profile(encodings, encodings[anchors])
    plain_profile = _calibrated(scales.calibration, dice_profile(plain, plain[guesses[anchors]]))
    cand_j, cand_s = _anchor_scores(enc_profile, plain_profile, scales.floor, candidates, dims)
    return resolve_one_to_one(cand_j, cand_s, plain.shape[0])


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
    """Put the known pairs into the guesses, with the largest margin.

    The known pairs put into ``guesses`` (others that took their register rows lose
    them), with the largest margin.
    """
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
    scales = similarity_scales(encodings, plain, mean_degree, profile_share, sample, rng)
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
