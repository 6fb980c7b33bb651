"""Tests of the label-free Fellegi-Sunter model on segmented encodings."""

from __future__ import annotations

import numpy as np
import pytest
from numpy.typing import NDArray

from linkage_unit.matching.fellegi_sunter import (
    FellegiSunterModel,
    best_posterior_threshold,
    estimate_u,
    estimated_quality,
    fit_em,
    fit_sessions,
    random_pairs,
)
from linkage_unit.matching.segments import Segment, comparison_levels, segment_dice

M_TRUE = (np.array([0.85, 0.1, 0.03, 0.02]), np.array([0.9, 0.07, 0.03]), np.array([0.97, 0.03]))
U_TRUE = (np.array([0.01, 0.04, 0.15, 0.8]), np.array([0.005, 0.1, 0.895]), np.array([0.5, 0.5]))


def _simulate(
    n: int, lam: float, rng: np.random.Generator, missing: float = 0.0
) -> tuple[NDArray[np.int8], NDArray[np.bool_]]:
    match = rng.random(n) < lam
    cols = []
    for m, u in zip(M_TRUE, U_TRUE, strict=True):
        lm = rng.choice(m.size, n, p=m)
        lu = rng.choice(u.size, n, p=u)
        col = np.where(match, lm, lu)
        col[rng.random(n) < missing] = -1
        cols.append(col)
    return np.stack(cols, axis=1).astype(np.int8), match


@pytest.mark.parametrize(("lam", "missing"), [(0.2, 0.0), (0.05, 0.0), (0.3, 0.25)])
def test_em_recovers_m_and_prior(lam: float, missing: float) -> None:
    rng = np.random.default_rng(7)
    levels, _ = _simulate(200_000, lam, rng, missing)
    random_levels, _ = _simulate(200_000, 0.0, rng, missing)
    u = estimate_u(random_levels, [m.size for m in M_TRUE])
    for est, true in zip(u, U_TRUE, strict=True):
        np.testing.assert_allclose(est, true, atol=0.005)
    model = fit_em(levels, u)
    assert model.converged
    assert model.prior == pytest.approx(lam, abs=0.01)
    for est, true in zip(model.m, M_TRUE, strict=True):
        np.testing.assert_allclose(est, true, atol=0.02)


def test_em_does_not_depend_on_starting_prior() -> None:
    rng = np.random.default_rng(3)
    levels, _ = _simulate(50_000, 0.15, rng)
    a = fit_em(levels, U_TRUE, priors=[0.5])
    b = fit_em(levels, U_TRUE, priors=[0.05])
    assert a.prior == pytest.approx(b.prior, abs=1e-4)


def test_em_keeps_the_most_likely_start() -> None:
    # Rare matches (0.2 %) among many non-matches: every start is tried and the kept fit
    # is at least as likely as each single-start fit, and recovers the prior.
    rng = np.random.default_rng(9)
    levels, _ = _simulate(300_000, 0.002, rng)
    best = fit_em(levels, U_TRUE)
    for p in (0.5, 0.001):
        assert best.log_likelihood >= fit_em(levels, U_TRUE, priors=[p]).log_likelihood
    assert best.prior == pytest.approx(0.002, rel=0.2)


def test_missing_field_is_neutral() -> None:
    model = FellegiSunterModel(m=M_TRUE, u=U_TRUE, prior=0.1)
    without = FellegiSunterModel(m=M_TRUE[:2], u=U_TRUE[:2], prior=0.1)
    levels = np.array([[0, 1, -1], [3, 2, -1], [1, 0, -1]], np.int8)
    np.testing.assert_allclose(model.match_weights(levels), without.match_weights(levels[:, :2]))
    # A missing field is not disagreement: the disagreeing value scores lower.
    disagree = levels.copy()
    disagree[:, 2] = 1
    assert np.all(model.match_weights(disagree) < model.match_weights(levels))


def test_all_zero_segment_is_missing_and_neutral() -> None:
    layout = [Segment("names", 0, 16, "name"), Segment("sex", 16, 24, "exact")]
    a = np.array([[0xF0, 0x0F, 0x81], [0xF0, 0x0F, 0x00]], np.uint8)
    b = np.array([[0xF0, 0x0F, 0x81]], np.uint8)
    dice = segment_dice(a, b, [0, 1], [0, 0], layout)
    assert dice[0, 1] == 1.0
    assert np.isnan(dice[1, 1])
    lv = comparison_levels(dice, layout)
    assert lv.tolist() == [[0, 0], [0, -1]]
    model = FellegiSunterModel(m=(M_TRUE[0], M_TRUE[2]), u=(U_TRUE[0], U_TRUE[2]), prior=0.2)
    only_names = FellegiSunterModel(m=(M_TRUE[0],), u=(U_TRUE[0],), prior=0.2)
    assert model.match_weights(lv)[1] == pytest.approx(only_names.match_weights(lv[:, :1])[1])


def test_estimated_quality_close_to_truth() -> None:
    rng = np.random.default_rng(5)
    levels, match = _simulate(100_000, 0.1, rng, missing=0.1)
    random_levels, _ = _simulate(100_000, 0.0, rng, missing=0.1)
    model = fit_em(levels, estimate_u(random_levels, [m.size for m in M_TRUE]))
    post = model.posteriors(levels)
    t, precision, recall, f1 = best_posterior_threshold(post)
    kept = post >= t
    true_p = match[kept].mean()
    true_r = match[kept].sum() / match.sum()
    assert precision == pytest.approx(true_p, abs=0.02)
    assert recall == pytest.approx(true_r, abs=0.02)
    assert estimated_quality(post, t) == pytest.approx((precision, recall, f1))
    # The chosen threshold is the best of all thresholds by estimated F1.
    for other in np.unique(post)[:: max(1, np.unique(post).size // 50)]:
        assert estimated_quality(post, float(other))[2] <= f1 + 1e-12


def test_deterministic() -> None:
    rng = np.random.default_rng(1)
    levels, _ = _simulate(10_000, 0.2, rng)
    a, b = fit_em(levels, U_TRUE), fit_em(levels.copy(), U_TRUE)
    assert a.prior == b.prior
    assert all(np.array_equal(x, y) for x, y in zip(a.m, b.m, strict=True))
    assert np.array_equal(random_pairs(10, 10, 5, 3)[0], random_pairs(10, 10, 5, 3)[0])


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: Segment("x", 5, 5), "not a range"),
        (lambda: Segment("x", 0, 8, "colour"), "kind"),
        (
            lambda: segment_dice(
                np.zeros((2, 2), np.uint8),
                np.zeros((2, 2), np.uint8),
                [0],
                [0],
                [Segment("a", 0, 10), Segment("b", 8, 16)],
            ),
            "overlap",
        ),
        (
            lambda: segment_dice(
                np.zeros((2, 2), np.uint8),
                np.zeros((2, 2), np.uint8),
                [0],
                [0],
                [Segment("a", 0, 24)],
            ),
            "beyond",
        ),
        (
            lambda: segment_dice(
                np.zeros((2, 2), np.uint8),
                np.zeros((2, 2), np.uint8),
                [2],
                [0],
                [Segment("a", 0, 8)],
            ),
            "outside",
        ),
        (
            lambda: segment_dice(
                np.zeros((2, 2)), np.zeros((2, 2), np.uint8), [0], [0], [Segment("a", 0, 8)]
            ),
            "uint8",
        ),
        (lambda: fit_em(np.zeros((0, 1), np.int8), [np.array([0.5, 0.5])]), "at least one"),
        (lambda: fit_em(np.array([[2]]), [np.array([0.5, 0.5])]), "level outside"),
        (lambda: fit_em(np.array([[0]]), [np.array([0.5, 0.6])]), "summing to 1"),
        (lambda: fit_em(np.array([[0]]), [np.array([0.5, 0.5])], priors=[1.0]), "priors"),
        (lambda: best_posterior_threshold([0.5, 1.2]), "probabilities"),
        (lambda: random_pairs(0, 3, 5), "rows on both sides"),
    ],
)
def test_bad_input_is_refused(call: object, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        call()  # type: ignore[operator]


def test_sessions_recover_m_and_resist_relatives() -> None:
    # Matches, random non-matches, and "relatives": non-matches whose names are similar
    # (field 0 at level 1) and whose field 2 agrees (same address), together, breaking
    # independence.  Sessions blocking on exact agreement of field 0 and of field 1 leave
    # them out and still recover the matches' m and prior.
    rng = np.random.default_rng(4)
    levels, match = _simulate(300_000, 0.002, rng)
    relatives = rng.random(levels.shape[0]) < 0.004
    relatives &= ~match
    levels[relatives, 0] = 1
    levels[relatives, 2] = 0
    u = estimate_u(_simulate(300_000, 0.0, rng)[0], [m.size for m in M_TRUE])
    model = fit_sessions(levels, u, [0, 1])
    assert model.prior == pytest.approx(0.002, rel=0.25)
    np.testing.assert_allclose(model.m[0], M_TRUE[0], atol=0.05)
    post = model.posteriors(levels)
    assert post[relatives].mean() < 0.5 < post[match].mean()


def test_sessions_need_every_field_estimated() -> None:
    levels, _ = _simulate(1_000, 0.2, np.random.default_rng(0))
    with pytest.raises(ValueError, match="no session"):
        fit_sessions(levels, U_TRUE, [0])
    with pytest.raises(ValueError, match="not a column"):
        fit_sessions(levels, U_TRUE, [0, 7])
