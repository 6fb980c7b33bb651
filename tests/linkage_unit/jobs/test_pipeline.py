"""Overlap counts across runs: a party cannot learn about one person by differencing releases."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from encoder.encode import EncodeOptions, encode_file
from encoder.schema import parse_schema
from linkage_unit.client import UnitClient
from linkage_unit.embedded import EmbeddedUnit
from linkage_unit.jobs.pipeline import steady_counts
from tests.linkage_unit.conftest import Encoded, project_body

_MASKS = st.dictionaries(st.integers(1, 7), st.integers(1, 200), max_size=7)


@given(_MASKS, _MASKS, st.integers(1, 20))
def test_a_count_moves_only_by_at_least_min_count(
    previous: dict[int, int], exact: dict[int, int], within: int
) -> None:
    steady = steady_counts(exact, previous, within)
    for mask in set(exact) | set(previous):
        before, now, kept = previous.get(mask, 0), exact.get(mask, 0), steady.get(mask, 0)
        assert kept in (before, now)
        assert (kept != before) == (abs(now - before) >= within and now != before)


def test_the_first_run_keeps_exact_counts() -> None:
    assert steady_counts({1: 4, 3: 1}, None, 10) == {1: 4, 3: 1}


def _run(unit: EmbeddedUnit, project: str) -> None:
    with UnitClient(unit.url, unit.admin_token) as admin:
        run = admin.start_run(project, 0.8)
        assert admin.wait(project, run["id"], poll=0.05, timeout=120)["status"] == "done"


def _counts(unit: EmbeddedUnit, token: str, project: str) -> list[dict[str, Any]]:
    with UnitClient(unit.url, token) as party:
        rows: list[dict[str, Any]] = party.counts(project)["counts"]
    return rows


def test_one_probe_record_changes_no_released_count(
    unit: EmbeddedUnit, encoded: Encoded, tmp_path: Path
) -> None:
    # Counts from 2 up exact: the finest rounding the policy allows, so that without steady
    # counts one more entity would show.
    policy = {"suppression": {"min_count": 2, "round_to": 1}}
    with UnitClient(unit.url, unit.admin_token) as admin:
        created = admin.create_project(project_body(encoded.schema, policy=policy))
    project, tokens = created["project_id"], created["parties"]
    for name in ("skills_agency", "benefits_dept"):
        with UnitClient(unit.url, tokens[name]) as party:
            party.upload(project, encoded.partners[name].plk)
    _run(unit, project)
    before = _counts(unit, tokens["skills_agency"], project)

    # The skills agency probes: is this person (one of the benefits department's clients)
    # known to the benefits department? It uploads that one record and asks again.
    lines = encoded.partners["benefits_dept"].csv.read_text(encoding="utf-8").splitlines()
    probe_csv = tmp_path / "probe.csv"
    probe_csv.write_text("\n".join(lines[:2]) + "\n", encoding="utf-8")
    encode_file(probe_csv, parse_schema(encoded.schema), encoded.secret, tmp_path / "probe.plk",
                EncodeOptions(id_column="local_id"))  # fmt: skip
    with UnitClient(unit.url, tokens["skills_agency"]) as party:
        party.upload(project, tmp_path / "probe.plk")
    _run(unit, project)
    assert _counts(unit, tokens["skills_agency"], project) == before

    # A real change, the council's whole file, is released.
    with UnitClient(unit.url, tokens["council"]) as party:
        party.upload(project, encoded.partners["council"].plk)
    _run(unit, project)
    after = {tuple(r["parties"]): r["count"] for r in _counts(unit, tokens["council"], project)}
    assert {tuple(r["parties"]): r["count"] for r in before}[("council",)] == 0
    assert isinstance(after[("council",)], int) and after[("council",)] > 2
