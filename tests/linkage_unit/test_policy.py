"""Sharing policies: grants and small-number suppression."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from linkage_unit.policy import PolicyError, SharingPolicy, Suppression, overlap_counts, suppress

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
    assert rows[("A", "B")]["only"] == 25
    assert rows[("B", "C")]["count"] == 15  # 15
    assert rows[("B", "C")]["only"] == "<10"
    assert rows[("A", "C")] == {"parties": ["A", "C"], "count": 10, "only": 0}
    assert rows[("A", "B", "C")]["count"] == 10
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
