"""Sharing policies: grants and small-number suppression."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from linkage_unit.policy import (
    WITHHELD,
    PolicyError,
    SharingPolicy,
    Suppression,
    overlap_counts,
    suppress,
)

RULE = Suppression()


@pytest.mark.parametrize(
    ("count", "shown"),
    [(0, 0), (1, "<10"), (9, "<10"), (10, 10), (12, 10), (13, 15), (17, 15), (18, 20),
     (1002, 1000), (1003, 1005)],
)  # fmt: skip
def test_default_suppression(count: int, shown: int | str) -> None:
    assert suppress(count, RULE) == shown


@given(st.integers(0, 10**7), st.integers(1, 50), st.integers(1, 100))
def test_suppression_properties(count: int, min_count: int, round_to: int) -> None:
    round_to = max(round_to, (min_count + 1) // 2)  # finer is refused (see below)
    rule = Suppression(min_count=min_count, round_to=round_to)
    shown = suppress(count, rule)
    if count == 0:
        assert shown == 0
    elif count < min_count:
        assert shown == f"<{min_count}"
    else:
        assert isinstance(shown, int)
        assert shown % round_to == 0
        assert abs(shown - count) <= round_to / 2


def test_negative_counts_are_a_bug() -> None:
    with pytest.raises(ValueError, match="never negative"):
        suppress(-1, RULE)


def test_overlap_counts_from_party_masks() -> None:
    # 3 parties: 40 entities only in A, 25 in A+B, 12 in A+B+C, 3 in B+C, 100 only in C.
    masks = {0b001: 40, 0b011: 25, 0b111: 12, 0b110: 3, 0b100: 100}
    rows = {tuple(r["parties"]): r for r in overlap_counts(masks, ["A", "B", "C"], RULE)}
    assert rows[("A",)] == {"parties": ["A"], "count": 75, "only": 40}  # 77 -> 75
    assert rows[("A", "B")]["count"] == 35  # 37 -> 35
    assert rows[("B", "C")]["count"] == 15  # 15
    assert rows[("A", "C")]["count"] == 10
    assert rows[("A", "B", "C")]["count"] == 10
    # B+C's 3 is suppressed, so every "only" figure of B and of C is withheld: B or C
    # would otherwise subtract them from its own record count and recover the 3.
    for combo, row in rows.items():
        assert row["only"] == (WITHHELD if {"B", "C"} & set(combo) else 40), combo
    assert len(rows) == 7


def test_many_parties_count_combinations_up_to_three() -> None:
    names = [f"p{i}" for i in range(10)]
    rows = overlap_counts({0b1111111111: 50}, names, RULE)
    assert max(len(r["parties"]) for r in rows) == 3
    assert len(rows) == 10 + 45 + 120


def test_grants_default_and_override() -> None:
    policy = SharingPolicy(grants={"council": ["counts"]})
    policy.check(["council", "college"])
    assert policy.grants_for("college") == {"mapping", "counts"}
    assert policy.grants_for("council") == {"counts"}


@pytest.mark.parametrize(
    ("policy", "message"),
    [
        ({"grants": {"nobody": ["counts"]}}, "'nobody', which is not a party"),
        ({"default_grants": ["scores"]}, "operator only"),
        ({"grants": {"a": ["flags:zed"]}}, "'zed', which is not a party"),
        ({"grants": {"a": ["everything"]}}, "unknown release 'everything'"),
        ({"grants": {"a": ["flags:"]}}, "unknown release"),
    ],
)
def test_bad_policies_name_the_problem(policy: dict[str, object], message: str) -> None:
    with pytest.raises(PolicyError, match=message):
        SharingPolicy.model_validate(policy).check(["a", "b"])


def _released(a_only: int, both: int, b_only: int, rule: Suppression) -> list[dict[str, object]]:
    return overlap_counts({0b01: a_only, 0b11: both, 0b10: b_only}, ["A", "B"], rule)


def test_a_party_cannot_subtract_a_suppressed_overlap() -> None:
    # A holds 49 records, one of them also held by B (B holds 100). A knows its own 49.
    # Released naively, "only A" = 48 -> 50, so the overlap is 49 - (48..52) = at most 1:
    # with "<10" meaning at least 1, exactly 1. A's attack: every world consistent with what
    # it knows and what it was shown.
    shown = _released(48, 1, 99, RULE)
    worlds = {
        both
        for both in range(0, 50)
        for b_only in range(0, 120)
        if _released(49 - both, both, b_only, RULE) == shown
    }
    assert worlds == set(range(1, 10)), worlds  # "<10" stays all A can say
    rows = {tuple(r["parties"]): r for r in shown}
    assert rows[("A",)]["only"] == WITHHELD and rows[("A", "B")]["only"] == WITHHELD
    assert rows[("A", "B")]["count"] == "<10"
    assert rows[("B",)]["count"] == 100  # counts stay; only the giveaway figures go


def test_rounding_too_fine_for_the_suppression_is_refused() -> None:
    # With round_to 1, only(A and B) = count(A and B) - count(A, B and C) exactly.
    with pytest.raises(ValueError, match="round_to must be at least 5 when min_count is 10"):
        Suppression(min_count=10, round_to=1)
    Suppression(min_count=10, round_to=5)
    Suppression(min_count=1, round_to=1)  # nothing suppressed: exact counts are allowed
