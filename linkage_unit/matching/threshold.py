"""Label-free choice of the match threshold from the candidate scores alone.

Nobody at the linkage unit knows which pairs are true matches, so the threshold is
estimated from the shape of the score distribution: the scores are modelled as a mixture
of two components - non-matches (low) and matches (high) - fitted by EM, and the
threshold is the one that maximises the F1 score *the fitted mixture predicts*.  The same
fit gives estimated precision and recall at that threshold.

Which scores to pass
--------------------
The recommended input is the scores of the pairs kept by one-to-one greedy solving at a
low floor (Dice >= 0.5), together with the runner-up scores (:func:`runner_up_scores`)
of the candidate pairs before solving:

* Greedy solving takes pairs best first, so the greedy solution at threshold ``t`` is
  exactly the greedy solution at the floor restricted to scores ``>= t``.  Solving once at
  the floor and then thresholding is the same as solving at the threshold, so the
  threshold should be judged on the solved pairs: that is what it will cut.
* In the solved pairs a non-match survives only when neither record had a better partner;
  its score is like the *best* non-match score of a record.  The runner-up score of a
  record (its second-best candidate) is, under one-to-one linkage, the best score of a
  non-match, so the runner-ups sample the non-match component directly, label-free.
  When they are given, the non-match component takes its spread from them, and EM fits
  its location (while the solved scores hold at least ``min_scores`` of non-match weight;
  otherwise it stays at the runner-ups' mean), the mixing weight and the match component.
  The spread is measured from the runner-ups' upper tail (their 97.5 % quantile less
  their median, over 1.96), not their standard deviation: a record whose person appears
  twice in the other file has a true match as its runner-up, and the ~1 % of such
  runner-ups near 1 would otherwise widen the non-match component and raise the threshold.
  The location is not taken from the runner-ups because they are maxima over *all* the
  other side's records, and surviving non-matches over the *unclaimed* ones only: lower
  when most records match, higher when few do.  The fixed spread is what keeps the
  estimate right when nearly every solved pair is a match (then a free two-component fit
  would cut the match distribution in two).

Without runner-ups both components are fitted freely (the plain two-component EM); then a
clear bimodality is required, or a documented default is returned.

The model
---------
Scores ``s`` are mapped to ``z = logit(s)`` (clipped to ``[1e-6, 1 - 1e-3]``: identical
filters score exactly 1) and the ``z`` are modelled as a mixture of two normals
("logit-normal" components).  For a threshold ``t`` with ``N`` scores, weights
``pi0 + pi1 = 1`` and component survival functions ``S0``, ``S1``::

    TP(t) = N * pi1 * S1(t)   FP(t) = N * pi0 * S0(t)   matches = N * pi1
    precision = TP / (TP + FP)   recall = TP / matches   F1 = 2 TP / (TP + FP + matches)

and the threshold maximises F1 on a grid of ``grid_size`` points over ``[floor, 1]``.
Recall is relative to the matches among the scores given (pairs below the floor, or lost
by blocking, are not counted).

Scores of exactly 1 (identical filters: records without any error) are ``E`` matches kept
at every threshold, counted outside the mixture, which is fitted to the other scores:
``TP(t) = E + N pi1 S1(t)``, ``matches = E + N pi1``. In the fit they would pile up at the
clipped logit, widen the match component and fatten its lower tail, which the estimate
read as matches lost below the threshold (recall understated by 2 to 6 points on the
synthetic scenarios, 0.874 against 0.990 in the test of it).

Fallbacks (``method`` says which was used):

* ``"mixture-anchored"``: runner-ups given, fit succeeded.
* ``"mixture"``: free two-component fit, components well separated (Ashman's
  ``D >= min_separation``) and each weighing at least ``min_weight``.
* ``"default:<reason>"``: too few scores, no match component, no bimodality: the
  ``default`` threshold is returned, with NaN precision/recall unless a fit exists.

Longer than 500 lines because about 80 of them are this description of the model, and the
`Threshold` setting that every caller hands in lives beside the estimator that resolves it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Final, Literal

import numpy as np
from numba import njit
from numpy.typing import ArrayLike, NDArray

__all__ = [
    "DEFAULT_FLOOR",
    "DEFAULT_THRESHOLD",
    "MixtureParameters",
    "Threshold",
    "ThresholdError",
    "ThresholdEstimate",
    "estimate_threshold",
    "estimated_curve",
    "reweighted_estimate",
    "runner_up_scores",
]

#: Scores below this are ignored (they are not candidates in the two-party comparison).
DEFAULT_FLOOR: Final = 0.5
#: Threshold returned when no mixture can be fitted.
DEFAULT_THRESHOLD: Final = 0.8


class ThresholdError(ValueError):
    """A threshold that is neither a number in (0, 1] nor "auto"; the message says which."""


@dataclass(frozen=True)
class Threshold:
    """The match threshold a command, project or run asks for: a fixed Dice score, or auto.

    The one representation from the command line and the HTTP API through the worker to the
    linkage: parsed once (`parse`), stored and shown as `str(threshold)` ("auto" or the
    number), sent over HTTP as `to_json()`, and handed to `link_encodings` and
    `LinkSettings` as it is.

    Attributes:
        fixed: The Dice score in (0, 1]; None means "auto" (estimated from the scores).
    """

    fixed: float | None = None

    def __post_init__(self) -> None:
        """Refuse a fixed score outside (0, 1] (NaN included)."""
        if self.fixed is not None and not 0 < self.fixed <= 1:
            raise ThresholdError(f"{self.fixed}: must be in (0, 1]")

    @classmethod
    def parse(cls, value: str | float | Threshold) -> Threshold:
        """A threshold from its text ("auto", "0.8"), its JSON value, or itself.

        Raises:
            ThresholdError: Neither "auto" nor a number in (0, 1].
        """
        if isinstance(value, Threshold):
            return value
        if value == "auto":
            return cls()
        if isinstance(value, bool):  # JSON true is no score
            raise ThresholdError(f"{value!r}: expected a number in (0, 1] or 'auto'")
        try:
            number = float(value)
        except (TypeError, ValueError):
            raise ThresholdError(f"{value!r}: expected a number in (0, 1] or 'auto'") from None
        return cls(number)

    @property
    def is_auto(self) -> bool:
        """Whether the threshold is to be estimated from the scores."""
        return self.fixed is None

    def resolve(self, pinned: float | None) -> Threshold:
        """The threshold a run uses: "auto" becomes the score an earlier run pinned, if any.

        A project's first "auto" run pins the threshold it estimated, so that later runs
        keep it and linkage IDs stay stable; a fixed threshold is used as it is.
        """
        return Threshold(pinned) if self.is_auto and pinned is not None else self

    def to_json(self) -> float | Literal["auto"]:
        """The number or "auto": the HTTP API's form, and what `link_encodings` takes."""
        return "auto" if self.fixed is None else self.fixed

    def __str__(self) -> str:
        """The text "auto" or the number, as stored in the database and shown to the operator."""
        return "auto" if self.fixed is None else str(self.fixed)


_LOW_CLIP: Final = 1e-6
_HIGH_CLIP: Final = 1e-3
_MIN_SD: Final = 1e-3
#: Upper quantile of the runner-ups that measures the non-match spread, and its z-value.
_SPREAD_QUANTILE: Final = 0.975
_SPREAD_Z: Final = 1.959963984540054


@dataclass(frozen=True)
class MixtureParameters:
    """A two-component logit-normal mixture.

    Attributes:
        weight_nonmatch: Mixing weight of the non-match component (``pi0``).
        weight_match: Mixing weight of the match component (``pi1 = 1 - pi0``).
        mean_nonmatch, sd_nonmatch: Normal parameters of ``logit(score)`` for non-matches.
        mean_match, sd_match: The same for matches.
        log_likelihood: Log-likelihood of the fit (of the ``logit`` scores).
        iterations: EM iterations run.
        converged: Whether EM reached its tolerance.
    """

    weight_nonmatch: float
    weight_match: float
    mean_nonmatch: float
    sd_nonmatch: float
    mean_match: float
    sd_match: float
    log_likelihood: float
    iterations: int
    converged: bool

    @property
    def separation(self) -> float:
        """Ashman's D: ``sqrt(2) |mu1 - mu0| / sqrt(sd0**2 + sd1**2)``; > 2 is bimodal."""
        spread = math.hypot(self.sd_nonmatch, self.sd_match)
        return math.sqrt(2) * abs(self.mean_match - self.mean_nonmatch) / spread

    def survival(self, threshold: float | NDArray[np.float64]) -> tuple[Any, Any]:
        """``(S0(t), S1(t))``: share of non-matches and matches scoring ``>= t``."""
        z = _to_logit(np.asarray(threshold, np.float64))
        s0 = _normal_sf(z, self.mean_nonmatch, self.sd_nonmatch)
        s1 = _normal_sf(z, self.mean_match, self.sd_match)
        return s0, s1


@dataclass(frozen=True)
class ThresholdEstimate:
    """The estimated threshold and what the fitted mixture says about it.

    Attributes:
        threshold: Keep pairs with score ``>= threshold``.
        precision: Estimated share of kept pairs that are matches (NaN without a fit).
        recall: Estimated share of the matches among the scores that are kept (NaN
            without a fit).
        f1: Estimated F1 at the threshold (NaN without a fit).
        method: ``"mixture-anchored"``, ``"mixture"`` or ``"default:<reason>"``.
        mixture: The fitted mixture, or None.
        expected_matches: Estimated number of matches among the scores (``E + N * pi1``).
        exact_matches: ``E``, the scores of exactly 1 (identical filters), counted as
            matches outside the mixture, which is fitted to the other ``N`` scores.
        diagnostics: Counts and checks: ``n_scores``, ``n_nonmatch_scores``, ``floor``,
            ``separation``, ``reason`` where a default was used, and so on.
    """

    threshold: float
    precision: float
    recall: float
    f1: float
    method: str
    mixture: MixtureParameters | None
    expected_matches: float
    diagnostics: dict[str, Any] = field(default_factory=dict)
    exact_matches: int = 0


# --------------------------------------------------------------------------------------
# helpers
# --------------------------------------------------------------------------------------


def _to_logit(scores: NDArray[np.float64]) -> NDArray[np.float64]:
    clipped = np.clip(scores, _LOW_CLIP, 1.0 - _HIGH_CLIP)
    out: NDArray[np.float64] = np.log(clipped) - np.log1p(-clipped)
    return out


_ERFC = np.vectorize(math.erfc, otypes=[np.float64])


def _normal_sf(z: NDArray[np.float64], mean: float, sd: float) -> Any:
    """Normal survival function ``P(Z >= z)`` (numpy and math only; no scipy dependency)."""
    return 0.5 * _ERFC((z - mean) / (sd * math.sqrt(2.0)))


def _scores(name: str, values: ArrayLike, floor: float) -> NDArray[np.float64]:
    arr = np.asarray(values, np.float64).ravel()
    if np.isnan(arr).any():
        raise ValueError(f"{name} must not contain NaN")
    if arr.size and (arr.min() < 0.0 or arr.max() > 1.0):
        raise ValueError(f"{name} must lie in [0, 1]")
    kept: NDArray[np.float64] = arr[arr >= floor]
    return kept


def _upper_spread(z: NDArray[np.float64]) -> float:
    """Spread of the non-match scores from their upper tail: ``(q - median) / 1.96``.

    ``q`` is the :data:`_SPREAD_QUANTILE` quantile.  The runner-ups are not all
    non-matches: a record whose person appears twice in the other file (a within-file
    duplicate) has a true match as its runner-up.  Those are about 1 % of the runner-ups
    on the synthetic scenarios, but they score near 1 (logit 2 to 7), so they inflate the
    standard deviation to 1.5 to 3 times the non-matches' own and push the threshold up.
    A quantile spread ignores them as long as they are fewer than ``1 - q``.  The upper
    tail is measured, not the middle (a median absolute deviation), because the
    threshold falls in the non-matches' upper tail and their scores are skewed up (each is
    a maximum over candidates): the normal must match that tail, not the bulk.
    """
    median, upper = np.quantile(z, [0.5, _SPREAD_QUANTILE])
    return max(float(upper - median) / _SPREAD_Z, _MIN_SD)


def _normal_logpdf(z: NDArray[np.float64], mean: float, sd: float) -> NDArray[np.float64]:
    out: NDArray[np.float64] = -0.5 * ((z - mean) / sd) ** 2 - math.log(sd * math.sqrt(2 * math.pi))
    return out


def _em(
    z: NDArray[np.float64],
    init: tuple[float, float, float, float, float],
    nonmatch: str,
    max_iter: int,
    tol: float,
    min_nonmatch: float = 0.0,
    match: str = "free",
) -> MixtureParameters:
    """EM for a two-normal mixture.

    ``nonmatch`` says what of the non-match component EM may move: ``"free"`` (mean and
    sd), ``"mean"`` (the mean only: the sd stays at its initial value, and the mean moves
    only while the component holds at least ``min_nonmatch`` scores' worth of weight) or
    ``"fixed"`` (nothing).  ``match`` says the same of the match component: ``"free"`` or
    ``"fixed"``.  Pi always moves.
    """
    pi1, m0, s0, m1, s1 = init
    previous = -math.inf
    ll = -math.inf
    converged = False
    iteration = 0
    for iteration in range(1, max_iter + 1):  # noqa: B007 - used after the loop
        l0 = np.log1p(-pi1) + _normal_logpdf(z, m0, s0) if pi1 < 1 else np.full_like(z, -np.inf)
        l1 = math.log(pi1) + _normal_logpdf(z, m1, s1) if pi1 > 0 else np.full_like(z, -np.inf)
        top = np.maximum(l0, l1)
        total = top + np.log(np.exp(l0 - top) + np.exp(l1 - top))
        ll = float(total.sum())
        r1 = np.exp(l1 - total)
        r0 = 1.0 - r1
        w1 = float(r1.sum())
        w0 = float(r0.sum())
        pi1 = min(max(w1 / z.size, 0.0), 1.0)
        if match == "free" and w1 > 1e-9:
            m1 = float((r1 * z).sum() / w1)
            s1 = max(math.sqrt(float((r1 * (z - m1) ** 2).sum() / w1)), _MIN_SD)
        if nonmatch == "free" and w0 > 1e-9:
            m0 = float((r0 * z).sum() / w0)
            s0 = max(math.sqrt(float((r0 * (z - m0) ** 2).sum() / w0)), _MIN_SD)
        elif nonmatch == "mean" and w0 >= max(min_nonmatch, 1e-9):
            m0 = float((r0 * z).sum() / w0)
        if abs(ll - previous) <= tol * max(1.0, abs(ll)):
            converged = True
            break
        previous = ll
    return MixtureParameters(
        weight_nonmatch=1.0 - pi1,
        weight_match=pi1,
        mean_nonmatch=m0,
        sd_nonmatch=s0,
        mean_match=m1,
        sd_match=s1,
        log_likelihood=ll,
        iterations=iteration,
        converged=converged,
    )


def _counts(
    mix: MixtureParameters, n: int, exact: int, thresholds: NDArray[np.float64]
) -> tuple[Any, Any, float]:
    """Predicted ``(TP, FP, matches)`` at each threshold.

    The ``exact`` scores of 1 are matches kept at every threshold; the other ``n`` follow
    the mixture.
    """
    s0, s1 = mix.survival(thresholds)
    tp = exact + n * mix.weight_match * s1
    fp = n * mix.weight_nonmatch * s0
    return tp, fp, exact + n * mix.weight_match


def _best_threshold(
    mix: MixtureParameters, n: int, floor: float, grid_size: int, exact: int = 0
) -> tuple[float, float, float, float]:
    """``(threshold, precision, recall, f1)`` maximising the mixture's F1 on a grid."""
    grid = np.linspace(floor, 1.0, grid_size)
    tp, fp, matches = _counts(mix, n, exact, grid)
    f1 = 2 * tp / np.maximum(tp + fp + matches, 1e-300)
    # On a plateau (several grid points within float noise of the best) take the middle:
    # the most margin on both sides.
    best = float(f1.max())
    near = np.flatnonzero(f1 >= best - 1e-9 * max(best, 1e-300))
    k = int(near[len(near) // 2])
    precision = float(tp[k] / (tp[k] + fp[k])) if tp[k] + fp[k] > 0 else math.nan
    recall = float(tp[k] / matches) if matches > 0 else math.nan
    return float(grid[k]), precision, recall, float(f1[k])


def estimated_curve(
    estimate: ThresholdEstimate, thresholds: ArrayLike
) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """What the fitted mixture predicts at each threshold: ``(precision, recall)``.

    The curve the chosen threshold was picked from, for an operator to see how much
    precision or recall another threshold would trade (the console draws it). NaN where
    nothing would be kept, and everywhere when the estimate has no fitted mixture.
    """
    t = np.asarray(thresholds, np.float64)
    mix = estimate.mixture
    if mix is None:
        nan = np.full(t.shape, math.nan)
        return nan, nan.copy()
    exact = estimate.exact_matches
    fitted = int(estimate.diagnostics.get("n_scores", 0)) - exact
    tp, fp, matches = _counts(mix, fitted, exact, t)
    tp, fp = np.broadcast_to(tp, t.shape), np.broadcast_to(fp, t.shape)
    kept = tp + fp
    precision = np.divide(tp, kept, out=np.full(t.shape, math.nan), where=kept > 0)
    recall = np.divide(tp, matches, out=np.full(t.shape, math.nan), where=matches > 0)
    return precision, np.asarray(recall, np.float64)


def _default(
    reason: str, default: float, diagnostics: dict[str, Any], mix: MixtureParameters | None,
    n: int, exact: int = 0,
) -> ThresholdEstimate:  # fmt: skip
    diagnostics["reason"] = reason
    precision = recall = f1 = math.nan
    expected = math.nan
    if mix is not None and n:
        counts = _counts(mix, n, exact, np.asarray(default, np.float64))
        tp, fp, expected = float(counts[0]), float(counts[1]), counts[2]
        if tp + fp > 0:
            precision = tp / (tp + fp)
        recall = tp / expected if expected > 0 else math.nan
        f1 = 2 * tp / (tp + fp + expected) if tp + fp + expected > 0 else math.nan
    return ThresholdEstimate(
        threshold=default,
        precision=precision,
        recall=recall,
        f1=f1,
        method=f"default:{reason}",
        mixture=mix,
        expected_matches=expected,
        diagnostics=diagnostics,
        exact_matches=exact,
    )


@njit(cache=True)
def _offer(best: Any, second: Any, r: int, v: float) -> None:  # pragma: no cover - compiled
    # Record r's best and second-best score so far, given one more score v.
    if v > best[r]:
        second[r] = best[r]
        best[r] = v
    elif v > second[r]:
        second[r] = v


@njit(cache=True)
def _runner_ups(
    i: Any, j: Any, s: Any, n_a: int, n_b: int, floor: float
) -> Any:  # pragma: no cover - compiled
    # One pass keeping each record's best and second-best score (-1: none yet).
    best_a = np.full(n_a, -1.0)
    second_a = np.full(n_a, -1.0)
    best_b = np.full(n_b, -1.0)
    second_b = np.full(n_b, -1.0)
    for k in range(i.shape[0]):
        if s[k] >= floor:
            _offer(best_a, second_a, i[k], s[k])
            _offer(best_b, second_b, j[k], s[k])
    both = np.concatenate((second_a, second_b))
    return both[both >= 0.0]


# --------------------------------------------------------------------------------------
# public API
# --------------------------------------------------------------------------------------


def runner_up_scores(
    i: ArrayLike, j: ArrayLike, score: ArrayLike, *, floor: float = DEFAULT_FLOOR
) -> NDArray[np.float64]:
    """Each record's second-best candidate score, for rows of A and for rows of B.

    ``(i, j, score)`` are candidate pairs (before one-to-one solving), as
    :func:`~linkage_unit.matching.similarity.dice_candidates` returns them.  Under
    one-to-one linkage at most one candidate of a record is its match, so its second-best
    score is a non-match score: the runner-ups sample the non-match scores that survive
    solving, without labels.  Records with fewer than two candidates ``>= floor`` give none.
    """
    ii = np.asarray(i, np.int64).ravel()
    jj = np.asarray(j, np.int64).ravel()
    ss = np.asarray(score, np.float64).ravel()
    if not (ii.shape == jj.shape == ss.shape):
        raise ValueError("i, j and score must have the same length")
    if ii.size == 0:
        return np.empty(0, np.float64)
    if ii.min() < 0 or jj.min() < 0:
        raise ValueError("i and j must be non-negative row indices")
    out: NDArray[np.float64] = _runner_ups(ii, jj, ss, int(ii.max()) + 1, int(jj.max()) + 1, floor)
    return out


def estimate_threshold(
    scores: ArrayLike,
    *,
    nonmatch_scores: ArrayLike | None = None,
    floor: float = DEFAULT_FLOOR,
    default: float = DEFAULT_THRESHOLD,
    min_scores: int = 20,
    min_weight: float = 0.005,
    min_separation: float = 2.0,
    grid_size: int = 2001,
    max_iter: int = 1000,
    tol: float = 1e-10,
) -> ThresholdEstimate:
    """Estimate the match threshold from candidate scores, without labels.

    :param scores: candidate scores; recommended: the one-to-one greedy solution's scores
        at a low floor (see the module docstring).  Scores below ``floor`` are ignored.
    :param nonmatch_scores: scores known to be (almost all) non-matches, such as
        :func:`runner_up_scores` of the candidates before solving; they fix the
        non-match component.  ``None``: fit both components freely.
    :param floor: lowest score considered, in ``[0, 1)``.
    :param default: threshold returned when no reliable fit exists.
    :param min_scores: fewer scores than this (or non-match scores, when given) fall
        back to the default.
    :param min_weight: a free fit whose smaller component weighs less falls back.
    :param min_separation: a free fit whose components are less separated (Ashman's D)
        falls back.
    :param grid_size: thresholds tried between ``floor`` and 1.
    :returns: a :class:`ThresholdEstimate`; ``method`` says how it was obtained.
    """
    if not (0.0 <= floor < 1.0):
        raise ValueError(f"floor must be in [0, 1), got {floor!r}")
    if not (0.0 < default <= 1.0):
        raise ValueError(f"default must be in (0, 1], got {default!r}")
    s = _scores("scores", scores, floor)
    z = _to_logit(s)
    diagnostics: dict[str, Any] = {"n_scores": int(s.size), "floor": floor}
    if s.size < min_scores:
        return _default("too-few-scores", default, diagnostics, None, int(s.size))
    # Scores of exactly 1 (identical filters: records without any error) are
    # matches. Left in the fit they pile up at the clipped logit, widen the match component
    # and fatten its lower tail, which read as matches lost below the threshold: recall was
    # understated by 2 to 6 points on the synthetic scenarios. They are counted as matches
    # outside the fit, unless too few other scores remain to fit.
    identical = s >= 1.0
    exact = int(identical.sum())
    if exact and s.size - exact >= min_scores:
        s, z = s[~identical], z[~identical]
    else:
        exact = 0
    diagnostics["exact_matches"] = exact

    if nonmatch_scores is not None:
        nm = _scores("nonmatch_scores", nonmatch_scores, floor)
        diagnostics["n_nonmatch_scores"] = int(nm.size)
        if nm.size < min_scores:
            return _default("too-few-nonmatch-scores", default, diagnostics, None, int(s.size),
                            exact)  # fmt: skip
        zn = _to_logit(nm)
        m0 = float(zn.mean())
        s0 = _upper_spread(zn)
        diagnostics["nonmatch_spread"] = s0
        above = z[z > m0 + 2 * s0]
        m1 = float(above.mean()) if above.size else float(z.max())
        s1 = max(float(above.std()) if above.size > 1 else s0, _MIN_SD)
        # The runner-ups give the non-match component's spread, but not its location: a
        # runner-up is a record's best non-match over all the other side's records, while
        # a non-match that survives solving is the best over the records still unclaimed
        # (fewer when many records match, so lower; more candidates per record when few
        # match, so higher).  The mean is therefore left to EM, which places it from the
        # non-match bump of the solved scores when there is one (at least min_scores of
        # weight); with next to no non-matches it stays at the runner-ups' mean.
        mix = _em(z, (0.5, m0, s0, m1, s1), "mean", max_iter, tol, float(min_scores))
        diagnostics["separation"] = mix.separation
        if mix.mean_match <= mix.mean_nonmatch or mix.weight_match * s.size + exact < 1.0:
            return _default("no-match-component", default, diagnostics, mix, int(s.size),
                            exact)  # fmt: skip
        method = "mixture-anchored"
    else:
        lo, hi = np.quantile(z, [0.25, 0.9])
        spread = max(float(z.std()) / 2, _MIN_SD)
        mix = _em(z, (0.5, float(lo), spread, float(hi), spread), "free", max_iter, tol)
        if mix.mean_match < mix.mean_nonmatch:  # label switching: the higher is the match
            mix = MixtureParameters(
                weight_nonmatch=mix.weight_match,
                weight_match=mix.weight_nonmatch,
                mean_nonmatch=mix.mean_match,
                sd_nonmatch=mix.sd_match,
                mean_match=mix.mean_nonmatch,
                sd_match=mix.sd_nonmatch,
                log_likelihood=mix.log_likelihood,
                iterations=mix.iterations,
                converged=mix.converged,
            )
        diagnostics["separation"] = mix.separation
        if min(mix.weight_match, mix.weight_nonmatch) < min_weight:
            return _default("one-component", default, diagnostics, mix, int(s.size), exact)
        if mix.separation < min_separation:
            return _default("not-bimodal", default, diagnostics, mix, int(s.size), exact)
        method = "mixture"

    threshold, precision, recall, f1 = _best_threshold(mix, int(s.size), floor, grid_size,
                                                       exact)  # fmt: skip
    diagnostics["converged"] = mix.converged
    return ThresholdEstimate(
        threshold=threshold,
        precision=precision,
        recall=recall,
        f1=f1,
        method=method,
        mixture=mix,
        expected_matches=float(exact + s.size * mix.weight_match),
        diagnostics=diagnostics,
        exact_matches=exact,
    )


def reweighted_estimate(
    scores: ArrayLike,
    components: ThresholdEstimate,
    *,
    floor: float = DEFAULT_FLOOR,
    grid_size: int = 2001,
    max_iter: int = 1000,
    tol: float = 1e-10,
) -> ThresholdEstimate:
    """The threshold for other scores of the same encodings, from a fitted mixture's shapes.

    For scores that rarely hold a match, such as pairs of one party's own records (a
    partner's duplicate clients: a few per cent), a free or anchored fit of their own is
    unreliable. The score distributions of a match and of a non-match are properties of the
    encodings, not of the pair of files, so the components of ``components`` (fitted on the
    pairs between parties) are kept as they are and EM fits only the share of matches among
    ``scores``; the threshold is then the one that maximises the F1 this mixture predicts.

    Args:
        scores: The one-to-one solved scores to threshold (scores below ``floor`` ignored).
        components: An estimate with a fitted mixture (from :func:`estimate_threshold`).
        floor: Lowest score considered, in ``[0, 1)``.
        grid_size: Thresholds tried between ``floor`` and 1.
        max_iter: EM iterations at most.
        tol: EM stops when the log-likelihood changes by less than this share.

    Returns:
        The estimate, with method ``"mixture-reweighted"``; or ``components`` itself when it
        has no mixture, or no scores remain to fit (none, or all exactly 1).
    """
    mix = components.mixture
    s = _scores("scores", scores, floor)
    total = int(s.size)
    # As the components were fitted: scores of exactly 1 counted as matches outside them.
    identical = s >= 1.0
    exact = int(identical.sum()) if components.exact_matches else 0
    if exact:
        s = s[~identical]
    if mix is None or s.size == 0:
        return components
    weighted = _em(
        _to_logit(s),
        (mix.weight_match, mix.mean_nonmatch, mix.sd_nonmatch, mix.mean_match, mix.sd_match),
        "fixed", max_iter, tol, match="fixed",
    )  # fmt: skip
    threshold, precision, recall, f1 = _best_threshold(weighted, int(s.size), floor, grid_size,
                                                       exact)  # fmt: skip
    return ThresholdEstimate(
        threshold=threshold,
        precision=precision,
        recall=recall,
        f1=f1,
        method="mixture-reweighted",
        mixture=weighted,
        expected_matches=float(exact + s.size * weighted.weight_match),
        diagnostics={
            "n_scores": total,
            "floor": floor,
            "converged": weighted.converged,
            "exact_matches": exact,
        },
        exact_matches=exact,
    )
