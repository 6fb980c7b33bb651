"""Known-pairs (anchor) attack: an attacker who knows who some encoded records are.

A colluding partner's leak, a published case or a data subject who reveals their own record
gives the attacker k plaintext-encoding pairs. Encodings preserve similarity (that is what
linkage needs), so every encoding's Dice similarities to the k known encodings form a
fingerprint; the attacker computes the same fingerprint for every register entry from the
plaintext token sets, maps plaintext similarity to encoding similarity with a curve fitted on
the known pairs among themselves, and matches fingerprints one to one. Confident matches then
join the anchors and the attack runs again (a few rounds), which is how a patient attacker
would use them.

The attacker knows the schema (partners agree it openly), so when the schema salts records
with one of their fields it compares a register entry only with the known records of the same
salt, and expects the random baseline from the others: the attack is not naive about the
hardening it faces.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import scipy.sparse as sp  # type: ignore[import-untyped]
from numpy.typing import NDArray
from scipy.optimize import linear_sum_assignment  # type: ignore[import-untyped]

from benchmarks.privacy.population import AttackData, dice_profile

__all__ = ["anchor_attack", "known_pairs"]

_CHUNK = 2048
_EXACT = 2500  # leftovers assigned exactly (Hungarian) below this many
_BINS = 24


def known_pairs(data: AttackData, k: int, seed: int = 0) -> NDArray[np.int64]:
    """The k pairs the attacker is assumed to know: ``(k, 2)`` of (encoding, register row).

    Drawn at random among the encodings whose person is in the register (the setting gives
    the attacker this knowledge; the attack itself never reads the truth).
    """
    rng = np.random.default_rng(seed)
    present = np.flatnonzero(data.truth >= 0)
    chosen = rng.choice(present, size=min(k, present.size), replace=False)
    return np.column_stack([chosen, data.truth[chosen]]).astype(np.int64)


def anchor_attack(
    data: AttackData,
    anchors: NDArray[np.int64],
    *,
    rounds: int = 3,
    max_anchors: int = 1000,
    dims: int = 256,
    progress: Callable[[str], None] | None = None,
) -> NDArray[np.int64]:
    """Re-identify encodings from k known pairs.

    Args:
        data: The encodings and the attacker's register.
        anchors: ``(k, 2)`` known (encoding, register row) pairs.
        rounds: Rounds of matching; after each, the most confident matches (mutual best,
            clear margin) become anchors too, up to ``max_anchors``.
        max_anchors: Cap on anchors used in a round (the fingerprints' length).
        dims: Fingerprints are projected on their first principal axes so that matching
            100,000 against 100,000 stays a few matrix products.
        progress: Called with a line of progress.

    Returns:
        One register row per encoding (-1: no guess), one to one; known pairs included.
    """
    say = progress or (lambda _line: None)
    plain = _token_rows(data)
    salts_plain = _salts(data)
    known = anchors.copy()
    guesses = np.full(data.encodings.shape[0], -1, dtype=np.int64)
    for round_ in range(rounds):
        use = known[:max_anchors]
        enc_fp = dice_profile(data.encodings, data.encodings[use[:, 0]])
        plain_fp = _dice_sparse(plain, plain[use[:, 1]])
        anchor_enc = enc_fp[use[:, 0]]
        anchor_plain = plain_fp[use[:, 1]]
        curve = _calibration(
            anchor_plain, anchor_enc, None if salts_plain is None else salts_plain[use[:, 1]]
        )
        expected = np.interp(plain_fp, curve[0], curve[1])
        if salts_plain is not None:
            # Across salts the encodings are unrelated: the attacker expects the baseline.
            other = salts_plain[:, None] != salts_plain[use[:, 1]][None, :]
            expected[other] = curve[2]
        guesses, confident = _match(enc_fp, expected, dims)
        guesses[known[:, 0]] = -1
        taken = np.isin(guesses, known[:, 1])
        guesses[taken] = -1
        guesses[known[:, 0]] = known[:, 1]
        say(
            f"round {round_ + 1}: {use.shape[0]} anchors, "
            f"{int((guesses >= 0).sum())} guesses, {int(confident.sum())} confident"
        )
        if known.shape[0] >= max_anchors:
            break  # another round would use the same anchors and find the same matches
        if round_ + 1 < rounds:
            extra = np.flatnonzero(confident & ~np.isin(np.arange(guesses.size), known[:, 0]))
            known = np.concatenate([known, np.column_stack([extra, guesses[extra]])])
    return guesses


def _token_rows(data: AttackData) -> sp.csr_matrix:
    """The register's token sets as a sparse 0/1 matrix (rows: records, columns: tokens)."""
    index = {t: i for i, t in enumerate(data.vocab)}
    indptr = np.zeros(len(data.tokens) + 1, dtype=np.int64)
    cols: list[int] = []
    for row, toks in enumerate(data.tokens):
        cols.extend(index[t] for t in toks)
        indptr[row + 1] = len(cols)
    values = np.ones(len(cols), dtype=np.float32)
    return sp.csr_matrix(
        (values, np.asarray(cols, np.int64), indptr), (len(data.tokens), len(index))
    )


def _dice_sparse(rows: sp.csr_matrix, anchors: sp.csr_matrix) -> NDArray[np.float32]:
    both: NDArray[np.float32] = (rows @ anchors.T).toarray().astype(np.float32)
    counts = np.asarray(rows.sum(axis=1), dtype=np.float32)
    a_counts = np.asarray(anchors.sum(axis=1), dtype=np.float32).ravel()
    total = counts + a_counts[None, :]
    dice: NDArray[np.float32] = np.divide(2 * both, total, where=total > 0, out=np.zeros_like(both))
    return dice


def _salts(data: AttackData) -> NDArray[np.str_] | None:
    """Each register entry's record salt, as the public schema defines it (None: unsalted)."""
    hardening = getattr(data.schema, "hardening", None)
    salt = getattr(hardening, "record_salt", None) if hardening is not None else None
    if salt is None:
        return None
    feature = next(f for f in data.schema.hashed_features if f.name == salt.feature)
    prefix = f"{feature.index}:"
    # The salt is a slice of the feature's formatted value; the attacker rebuilds that value
    # from its own plaintext tokens only when the feature is tokenised positionally (dates);
    # otherwise it falls back to the feature's tokens joined in order.
    values: list[str] = []
    for toks in data.tokens:
        own = sorted(t[len(prefix) :] for t in toks if t.startswith(prefix))
        text = _positional_value(own)
        values.append(text[salt.start : salt.end] if text else "")
    return np.asarray(values)


def _positional_value(tokens: list[str]) -> str:
    """Rebuild a value from clkhash's positional unigrams (``"1 9"`` style: position, char)."""
    parts: list[tuple[int, str]] = []
    for token in tokens:
        position, _, char = token.partition(" ")
        if not position.isdigit() or len(char) != 1:
            return "".join(tokens)
        parts.append((int(position), char))
    return "".join(c for _, c in sorted(parts))


def _calibration(
    plain: NDArray[np.float32], enc: NDArray[np.float32], salts: NDArray[np.str_] | None
) -> tuple[NDArray[np.float64], NDArray[np.float64], float]:
    """Encoding Dice as a monotone function of plaintext Dice, fitted on the known pairs.

    Returns the curve's knots (plaintext, encoding) and the baseline expected between
    records of different salts.
    """
    k = plain.shape[0]
    upper = np.triu_indices(k, 1)
    x = plain[upper].astype(np.float64)
    y = enc[upper].astype(np.float64)
    baseline = float(y.mean()) if y.size else 0.0
    if salts is not None:
        same = salts[upper[0]] == salts[upper[1]]
        if (~same).any():
            baseline = float(y[~same].mean())
        x, y = x[same], y[same]
    if x.size < 3:
        return np.array([0.0, 1.0]), np.array([baseline, 1.0]), baseline
    edges = np.unique(np.quantile(x, np.linspace(0, 1, _BINS + 1)))
    which = np.clip(np.searchsorted(edges, x, side="right") - 1, 0, max(edges.size - 2, 0))
    knots_x = np.array([x[which == b].mean() for b in np.unique(which)])
    knots_y = np.array([y[which == b].mean() for b in np.unique(which)])
    knots_y = np.maximum.accumulate(knots_y)  # monotone: more shared tokens, more shared bits
    return (
        np.concatenate([[0.0], knots_x, [1.0]]),
        np.concatenate([[min(baseline, knots_y[0])], knots_y, [1.0]]),
        baseline,
    )


def _match(
    enc_fp: NDArray[np.float32], expected: NDArray[np.float64], dims: int
) -> tuple[NDArray[np.int64], NDArray[np.bool_]]:
    """One to one nearest fingerprints; also which matches are confident (mutual, clear)."""
    both = np.vstack([enc_fp, expected.astype(np.float32)])
    mean = both.mean(axis=0)
    if both.shape[1] > dims:
        sample = both[:: max(1, both.shape[0] // 20_000)] - mean
        _, _, vt = np.linalg.svd(sample, full_matrices=False)
        basis = vt[:dims].T
    else:
        basis = np.eye(both.shape[1], dtype=np.float32)
    e = ((enc_fp - mean) @ basis).astype(np.float32)
    p = ((expected.astype(np.float32) - mean) @ basis).astype(np.float32)
    p_norm = (p * p).sum(axis=1)
    top = 5
    cand_i: list[NDArray[np.int64]] = []
    cand_j: list[NDArray[np.int64]] = []
    cand_d: list[NDArray[np.float32]] = []
    best_of_plain = np.full(p.shape[0], np.inf, dtype=np.float32)
    best_enc_of_plain = np.full(p.shape[0], -1, dtype=np.int64)
    margin = np.zeros(e.shape[0], dtype=np.float32)
    for start in range(0, e.shape[0], _CHUNK):
        block = e[start : start + _CHUNK]
        d = (block * block).sum(axis=1)[:, None] + p_norm[None, :] - 2 * block @ p.T
        kk = min(top, d.shape[1])
        part = np.argpartition(d, kk - 1, axis=1)[:, :kk]
        dist = np.take_along_axis(d, part, axis=1)
        order = np.argsort(dist, axis=1)
        part = np.take_along_axis(part, order, axis=1)
        dist = np.take_along_axis(dist, order, axis=1)
        rows = np.arange(start, start + block.shape[0])
        cand_i.append(np.repeat(rows, kk))
        cand_j.append(part.ravel().astype(np.int64))
        cand_d.append(dist.ravel())
        if kk > 1:
            margin[rows] = dist[:, 1] - dist[:, 0]
        col_best = d.argmin(axis=0)
        col_val = d[col_best, np.arange(d.shape[1])]
        better = col_val < best_of_plain
        best_of_plain[better] = col_val[better]
        best_enc_of_plain[better] = rows[col_best[better]]
    i = np.concatenate(cand_i)
    j = np.concatenate(cand_j)
    dist = np.concatenate(cand_d)
    guesses = np.full(e.shape[0], -1, dtype=np.int64)
    used = np.zeros(p.shape[0], dtype=bool)
    for idx in np.argsort(dist, kind="stable"):
        a, b = int(i[idx]), int(j[idx])
        if guesses[a] < 0 and not used[b]:
            guesses[a] = b
            used[b] = True
    # Encodings whose few nearest entries were all taken: greedy again among the leftovers
    # while they are many, then one exact assignment (cubic, so only for a few thousand).
    for _ in range(20):
        rest_e = np.flatnonzero(guesses < 0)
        rest_p = np.flatnonzero(~used)
        if not rest_e.size or not rest_p.size:
            break
        if rest_e.size <= _EXACT or rest_p.size <= _EXACT:
            rows, cols = linear_sum_assignment(_distances(e[rest_e], p[rest_p]))
            guesses[rest_e[rows]] = rest_p[cols]
            break
        for start in range(0, rest_e.size, _CHUNK):
            block = rest_e[start : start + _CHUNK]
            best = rest_p[_distances(e[block], p[rest_p]).argmin(axis=1)]
            for a, b in zip(block.tolist(), best.tolist(), strict=True):
                if not used[b]:
                    guesses[a] = b
                    used[b] = True
    mutual = np.zeros(e.shape[0], dtype=bool)
    has = guesses >= 0
    mutual[has] = best_enc_of_plain[guesses[has]] == np.flatnonzero(has)
    first = np.zeros(e.shape[0], dtype=bool)
    best_first = j.reshape(e.shape[0], -1)[:, 0] if e.shape[0] else j
    first[has] = best_first[has] == guesses[has]
    spread = float(np.median(margin[margin > 0])) if (margin > 0).any() else 0.0
    confident = mutual & first & (margin > spread)
    return guesses, confident


def _distances(a: NDArray[np.float32], b: NDArray[np.float32]) -> NDArray[np.float32]:
    """Squared Euclidean distances between the rows of a and of b."""
    d: NDArray[np.float32] = (
        (a * a).sum(axis=1)[:, None] + (b * b).sum(axis=1)[None, :] - 2 * a @ b.T
    )
    return d
