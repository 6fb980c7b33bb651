"""Field-aware scoring of candidate pairs: a Fellegi-Sunter model fitted without labels.

A record-level Dice coefficient folds every field into one number, so a pair that agrees
on name and date of birth but not on postcode (someone who moved) and a pair that half
agrees everywhere can score alike.  When each field group is hashed into its own *segment*
of the filter (names, date of birth, sex, postcode …, concatenated), the linkage unit can
compute one Dice per segment and weigh the fields separately, as Splink does on plain text.

The model
---------
For a candidate pair, each segment's Dice ``d_f`` is discretised into a *comparison level*
``l_f`` (level 0 is the best agreement, the last level is "disagrees"; thresholds per field
type in :data:`linkage_unit.matching.segments.FIELD_LEVELS`, computed by
:func:`linkage_unit.matching.segments.comparison_levels`).  A segment whose bits are all
zero on either side is a *missing* field: its level is ``-1``.  Fellegi and Sunter (1969)
model the levels of a match and of a non-match as independent across fields given the
match status::

    m_f[l] = P(l_f = l | match)        u_f[l] = P(l_f = l | non-match)
    lambda = P(match) among the candidate pairs

and score a pair by its match weight, the log2 Bayes factor summed over the fields it has::

    w = log2(lambda / (1 - lambda)) + sum over non-missing f of log2(m_f[l_f] / u_f[l_f])
    P(match | levels) = 1 / (1 + 2 ** -w)

A missing field contributes nothing (Bayes factor 1): a partner that does not hold a field
is neither rewarded nor penalised for it, unlike record-level Dice, where an absent field
lowers every score of that partner's records.

Estimation, without labels (as Splink does):

* ``u`` from random pairs (:func:`random_pairs`): nearly every random pair is a non-match,
  so the level frequencies among them estimate ``u`` (:func:`estimate_u`; add-one smoothed,
  so that no level has probability zero).
* ``m`` and ``lambda`` by EM on the candidate pairs, with ``u`` held fixed
  (:func:`fit_em`), started from several priors, keeping the most likely fit.  The E step
  computes each pair's posterior match probability; the M step sets ``m_f[l]`` to the
  posterior-weighted share of level ``l`` among the pairs where field ``f`` is present, and
  ``lambda`` to the mean posterior.  Pairs are first reduced to their distinct comparison
  vectors with counts (a few hundred at most), so an iteration costs microseconds whatever
  the number of pairs.
* :func:`fit_sessions` trains as Splink does, m per field from sessions that block on
  another field (see there); it resists relatives posing as matches, which the plain EM
  on all candidates, on the synthetic scenarios, did not.

Estimated quality (:func:`estimated_quality`, :func:`best_posterior_threshold`): the
posteriors themselves say how many of a set of pairs are expected to be matches.  Keeping the
pairs with posterior ``>= t``: expected true positives ``TP = sum of kept posteriors``,
precision ``TP / kept``, recall ``TP / sum of all posteriors``.  Recall is relative to the
matches among the pairs given (pairs never proposed by blocking are not counted); the
estimate is only as good as the model (field independence given match status is rarely
exact: correlated errors make the model over-confident).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final

import numpy as np
from numpy.typing import ArrayLike, NDArray

__all__ = [
    "START_PRIORS",
    "FellegiSunterModel",
    "best_posterior_threshold",
    "estimate_u",
    "estimated_quality",
    "fit_em",
    "fit_sessions",
    "random_pairs",
]

F64 = NDArray[np.float64]
I64 = NDArray[np.int64]
I8 = NDArray[np.int8]


def random_pairs(n_a: int, n_b: int, count: int, seed: int = 0) -> tuple[I64, I64]:
    """``count`` pairs drawn uniformly (with replacement) from ``n_a x n_b``, reproducibly.

    Within one party (``a_bits is b_bits``) drop the pairs with ``i == j`` before use.
    """
    if n_a <= 0 or n_b <= 0 or count <= 0:
        raise ValueError(
            f"random pairs need rows on both sides and a positive count, got "
            f"n_a={n_a}, n_b={n_b}, count={count}"
        )
    rng = np.random.default_rng(seed)
    return rng.integers(0, n_a, count, dtype=np.int64), rng.integers(0, n_b, count, dtype=np.int64)


def _check_levels(levels: ArrayLike, n_levels: Sequence[int]) -> I8:
    lv = np.asarray(levels)
    if lv.ndim != 2 or lv.shape[1] != len(n_levels):
        raise ValueError(
            f"levels must have one column per field ({len(n_levels)}), got shape {lv.shape}"
        )
    if lv.size and not np.issubdtype(lv.dtype, np.integer):
        raise ValueError("levels must be integers")
    for f, k in enumerate(n_levels):
        col = lv[:, f]
        if col.size and (col.min() < -1 or col.max() >= k):
            raise ValueError(f"field {f}: a level outside [-1, {k}) (-1 is missing)")
    return lv.astype(np.int8, copy=False)


def estimate_u(levels: ArrayLike, n_levels: Sequence[int]) -> tuple[F64, ...]:
    """u-probabilities from the levels of random (almost all non-matching) pairs.

    Add-one smoothed, ``(count + 1) / (present + n_levels)``: a level never seen among the
    random pairs still gets a small probability, so that its Bayes factor stays finite.
    """
    lv = _check_levels(levels, n_levels)
    out = []
    for f, k in enumerate(n_levels):
        col = lv[:, f]
        counts = np.bincount(col[col >= 0], minlength=k).astype(np.float64)
        out.append((counts + 1.0) / (counts.sum() + k))
    return tuple(out)


@dataclass(frozen=True, eq=False)
class FellegiSunterModel:
    """A fitted model: per-field m and u over the comparison levels, and the match prior.

    Attributes:
        m: Per field, ``P(level | match)`` (level 0 is the best agreement).
        u: Per field, ``P(level | non-match)``.
        prior: ``lambda``, the share of matches among the pairs it was fitted on.
        iterations: EM iterations run.
        converged: Whether EM met its tolerance.
        log_likelihood: Natural log-likelihood of the pairs it was fitted on.
    """

    m: tuple[F64, ...]
    u: tuple[F64, ...]
    prior: float
    iterations: int = 0
    converged: bool = True
    log_likelihood: float = float("nan")

    @property
    def n_levels(self) -> tuple[int, ...]:
        """Comparison levels per field."""
        return tuple(len(x) for x in self.m)

    def bayes_factors(self) -> tuple[F64, ...]:
        """Per field, ``log2(m / u)`` of every level."""
        return tuple(np.log2(m) - np.log2(u) for m, u in zip(self.m, self.u, strict=True))

    def match_weights(self, levels: ArrayLike) -> F64:
        """Each pair's match weight: log2 prior odds plus its fields' log2 Bayes factors.

        A missing field (level -1) adds nothing.
        """
        lv = _check_levels(levels, self.n_levels)
        w = np.full(lv.shape[0], math.log2(self.prior / (1.0 - self.prior)), np.float64)
        for f, bf in enumerate(self.bayes_factors()):
            col = lv[:, f].astype(np.int64)
            w += np.where(col >= 0, bf[np.maximum(col, 0)], 0.0)
        return w

    def posteriors(self, levels: ArrayLike) -> F64:
        """Each pair's posterior match probability, ``1 / (1 + 2 ** -weight)``."""
        w = self.match_weights(levels)
        out: F64 = 1.0 / (1.0 + np.exp2(-np.clip(w, -1000.0, 1000.0)))
        return out


def _m_init(k: int) -> F64:
    # Matches mostly agree exactly; the rest spread over the lower levels.
    m = np.full(k, 0.1 / (k - 1) if k > 1 else 0.0)
    m[0] = 0.9 if k > 1 else 1.0
    return m


@dataclass
class _Patterns:
    """Distinct comparison vectors, their counts, and their log-probability as non-matches."""

    cols: I64
    present: NDArray[np.bool_]
    counts: F64
    log_u: F64

    def log_p(self, probs: Sequence[F64]) -> F64:
        out = np.zeros(self.cols.shape[0])
        for f, x in enumerate(probs):
            out += np.where(self.present[:, f], np.log(x)[np.maximum(self.cols[:, f], 0)], 0.0)
        return out


def _em_from(
    pat: _Patterns,
    n_levels: Sequence[int],
    prior: float,
    max_iter: int,
    tol: float,
    floor: float,
    fixed_m: Sequence[F64] | None,
) -> tuple[list[F64], float, int, bool, float]:
    """One EM run from ``prior``: m, lambda, iterations, converged, log-likelihood."""
    m = [_m_init(k) for k in n_levels] if fixed_m is None else list(fixed_m)
    lam = prior
    iterations, converged = 0, False
    for iterations in range(1, max_iter + 1):  # noqa: B007 - reported after the loop
        a = math.log(lam) + pat.log_p(m)
        b = math.log1p(-lam) + pat.log_u
        wpost = np.exp(a - np.logaddexp(a, b)) * pat.counts
        new_m = [] if fixed_m is None else m
        for f, k in enumerate(n_levels if fixed_m is None else ()):
            here = pat.present[:, f]
            mass = np.bincount(pat.cols[here, f], weights=wpost[here], minlength=k)
            x = mass / mass.sum() if mass.sum() > 0 else m[f].copy()
            x = np.maximum(x, floor)
            new_m.append(x / x.sum())
        new_lam = float(np.clip(wpost.sum() / pat.counts.sum(), 1e-9, 1 - 1e-9))
        change = max(
            abs(new_lam - lam), *(float(np.abs(x - y).max()) for x, y in zip(new_m, m, strict=True))
        )
        m, lam = new_m, new_lam
        if change < tol:
            converged = True
            break
    a = math.log(lam) + pat.log_p(m)
    b = math.log1p(-lam) + pat.log_u
    return m, lam, iterations, converged, float((pat.counts * np.logaddexp(a, b)).sum())


#: EM's starting values of lambda: the best fit of the runs is kept.
START_PRIORS: Final = (0.5, 0.1, 0.01, 0.001)


def _probabilities(what: str, probs: Sequence[F64]) -> tuple[F64, ...]:
    out = tuple(np.asarray(x, np.float64) for x in probs)
    for f, x in enumerate(out):
        if x.ndim != 1 or x.size < 1 or np.any(x <= 0) or not np.isclose(x.sum(), 1.0):
            raise ValueError(f"{what} of field {f} must be positive probabilities summing to 1")
    return out


def fit_em(
    levels: ArrayLike,
    u: Sequence[F64],
    *,
    priors: Sequence[float] = START_PRIORS,
    m: Sequence[F64] | None = None,
    max_iter: int = 500,
    tol: float = 1e-8,
    floor: float = 1e-6,
) -> FellegiSunterModel:
    """Estimate m and the match prior by EM on candidate pairs' levels, u held fixed.

    The likelihood has several local maxima when matches are rare among the candidates: a
    start at lambda = 0.5 can settle on a "match" class of look-alikes (same surname and
    address, other given name and date of birth: relatives).  EM is therefore run from each
    of ``priors`` and the run with the highest likelihood is kept (deterministically: the
    first of equal ones).

    Args:
        levels: ``(pairs, fields)`` comparison levels of the candidate pairs (-1: missing).
        u: Per field, the u-probabilities (:func:`estimate_u`); their lengths give the
            number of levels per field.
        priors: Starting values of lambda, each in (0, 1); m starts with 0.9 on exact
            agreement.
        m: Per field, m-probabilities to hold fixed (only lambda is then estimated), as
            :func:`fit_sessions` does after its sessions.
        max_iter: Most EM iterations per run.
        tol: A run stops when no parameter moves by more than this.
        floor: Least probability of any m level (keeps every Bayes factor finite).

    Returns:
        The fitted model of the best run.

    Raises:
        ValueError: Bad levels or u, a prior outside (0, 1), or no pairs.
    """
    if not priors or any(not 0.0 < p < 1.0 for p in priors):
        raise ValueError(f"starting priors must be in (0, 1), got {list(priors)!r}")
    uu = _probabilities("u", u)
    n_levels = [x.size for x in uu]
    mm = None if m is None else _probabilities("m", m)
    if mm is not None and [x.size for x in mm] != n_levels:
        raise ValueError("m and u differ in their numbers of fields or levels")
    lv = _check_levels(levels, n_levels)
    if lv.shape[0] == 0:
        raise ValueError("EM needs at least one candidate pair")
    # Distinct comparison vectors and how many pairs have each: EM is exact on them.
    patterns, counts = np.unique(lv, axis=0, return_counts=True)
    cols = patterns.astype(np.int64)
    pat = _Patterns(cols, cols >= 0, counts.astype(np.float64), np.zeros(cols.shape[0]))
    pat.log_u = pat.log_p(uu)
    best: tuple[list[F64], float, int, bool, float] | None = None
    for prior in priors:
        run = _em_from(pat, n_levels, prior, max_iter, tol, floor, mm)
        if best is None or run[4] > best[4]:
            best = run
    assert best is not None
    m, lam, iterations, converged, log_likelihood = best
    return FellegiSunterModel(tuple(m), uu, lam, iterations, converged, log_likelihood)


def fit_sessions(
    levels: ArrayLike, u: Sequence[F64], blocking_fields: Sequence[int]
) -> FellegiSunterModel:
    """Splink's way of training: m per field from sessions that block on another field.

    Relatives (same surname and address) are non-matches that agree on several fields at
    once; with field independence violated, EM on all candidates can take them for a
    "match" class.  Splink therefore estimates m in sessions, each on the pairs that agree
    exactly on one blocking field (same date of birth: relatives drop out; same name:
    namesakes rarely share a date of birth), where matches dominate.  A session estimates
    the m of every field except its blocking field (which is neutral there: agreement was
    forced); a field's m is the mean of its sessions' estimates.  Then lambda is estimated
    by EM on all the pairs with m and u fixed.

    Args:
        levels: ``(pairs, fields)`` comparison levels of the candidate pairs (-1: missing).
        u: Per field, the u-probabilities.
        blocking_fields: Column of each session's blocking field; every field must be
            estimated in at least one session (so at least two sessions are needed).

    Raises:
        ValueError: A field no session estimates, a bad column, or a session with no pairs.
    """
    uu = _probabilities("u", u)
    lv = _check_levels(levels, [x.size for x in uu])
    estimates: list[list[F64]] = [[] for _ in uu]
    for b in blocking_fields:
        if not 0 <= b < len(uu):
            raise ValueError(f"blocking field {b} is not a column of the levels")
        session = lv[lv[:, b] == 0].copy()
        if session.shape[0] == 0:
            raise ValueError(f"no pair agrees exactly on blocking field {b}")
        session[:, b] = -1  # agreement was forced: the field says nothing here
        model = fit_em(session, uu)
        for f, m in enumerate(model.m):
            if f != b:
                estimates[f].append(m)
    missing = [f for f, e in enumerate(estimates) if not e]
    if missing:
        raise ValueError(f"fields {missing} are estimated in no session (block on another field)")
    means = [np.mean(e, axis=0) for e in estimates]
    return fit_em(lv, uu, m=[x / x.sum() for x in means])


def _posteriors(posteriors: ArrayLike) -> F64:
    p = np.asarray(posteriors, np.float64).ravel()
    if np.any(~np.isfinite(p)) or np.any((p < 0) | (p > 1)):
        raise ValueError("posteriors must be probabilities in [0, 1]")
    return p


def estimated_quality(posteriors: ArrayLike, threshold: float) -> tuple[float, float, float]:
    """Estimated precision, recall and F1 of keeping the pairs with posterior ``>= threshold``.

    Expected true positives are the sum of the kept pairs' posteriors; expected matches the
    sum of all posteriors.  Precision is 1 when nothing is kept, recall 1 when no match is
    expected.
    """
    p = _posteriors(posteriors)
    if not 0.0 <= threshold <= 1.0:
        raise ValueError(f"threshold must be in [0, 1], got {threshold!r}")
    kept = p >= threshold
    tp, n_kept, matches = float(p[kept].sum()), int(kept.sum()), float(p.sum())
    precision = tp / n_kept if n_kept else 1.0
    recall = tp / matches if matches > 0 else 1.0
    f1 = 2 * tp / (n_kept + matches) if n_kept + matches > 0 else 0.0
    return precision, recall, f1


def best_posterior_threshold(posteriors: ArrayLike) -> tuple[float, float, float, float]:
    """The posterior threshold with the highest estimated F1, and its precision, recall, F1.

    Every distinct posterior is tried as the threshold (keeping the pairs at or above it).

    Raises:
        ValueError: No posteriors, or one outside [0, 1].
    """
    p = _posteriors(posteriors)
    if p.size == 0:
        raise ValueError("no posteriors to choose a threshold from")
    order = np.sort(p)[::-1]
    tp = np.cumsum(order)
    kept = np.arange(1, p.size + 1, dtype=np.float64)
    # The last of a run of equal posteriors: a threshold keeps all of them or none.
    last = np.r_[order[1:] != order[:-1], True]
    matches = float(tp[-1])
    f1 = 2 * tp / (kept + matches)
    best = int(np.flatnonzero(last)[np.argmax(f1[last])])
    precision = float(tp[best] / kept[best])
    recall = float(tp[best] / matches) if matches > 0 else 1.0
    return float(order[best]), precision, recall, float(f1[best])
