"""What a party may fetch, over real HTTP: checked against the policy, audited, never half."""

from __future__ import annotations

import itertools
import shutil
from typing import Any

import pytest

from linkage_unit.client import UnitClient, UnitError
from linkage_unit.embedded import EmbeddedUnit
from linkage_unit.policy import WITHHELD
from tests.linkage_unit.conftest import (
    PARTNERS,
    Encoded,
    local_ids,
    release_rows,
    run_to_end,
    setup_project,
    upload_all,
)


def test_whole_flow_links_partners_and_releases_by_policy(
    unit: EmbeddedUnit, encoded: Encoded
) -> None:
    project, tokens = setup_project(unit, encoded)
    uploads = upload_all(unit, project, tokens, encoded)
    run = run_to_end(unit, project)
    assert run["status"] == "done", run
    assert run["threshold_method"].startswith("auto")
    assert run["summary"]["records"] > 0

    linked: dict[tuple[str, str], str] = {}
    for name in PARTNERS:
        with UnitClient(unit.url, tokens[name]) as party:
            rows = release_rows(party.mapping(project))
        keys = local_ids(encoded.partners[name].keys)
        assert [r for _, r, _ in rows] == list(range(len(keys)))
        assert {u for u, _, _ in rows} == {uploads[name]}
        linked.update({(name, keys[r]): i for _, r, i in rows})

    # Linkage quality against the ground truth: cross-partner pairs sharing an ID.
    def pairs(labels: dict[tuple[str, str], str]) -> set[tuple[Any, Any]]:
        groups: dict[str, list[tuple[str, str]]] = {}
        for record, label in labels.items():
            groups.setdefault(label, []).append(record)
        return {
            (a, b)
            for members in groups.values()
            for a, b in itertools.combinations(sorted(members), 2)
            if a[0] != b[0]
        }

    true = pairs({r: encoded.truth[r] for r in linked})
    found = pairs(linked)
    precision = len(true & found) / len(found)
    recall = len(true & found) / len(true)
    # Projects link a partner's duplicate clients by default, which finds the pairs through
    # a second record of one person, for a little precision.
    assert precision > 0.95 and recall > 0.92, (precision, recall)

    # Counts: every released number is 0, "<10" or a multiple of 5, and pairs agree with
    # the mapping (before rounding, within rounding).
    with UnitClient(unit.url, tokens["council"]) as council:
        counts = council.counts(project)
    assert counts["purpose"] == "testing"
    for row in counts["counts"]:
        for value in (row["count"], row["only"]):
            assert value in (0, "<10", WITHHELD) or (isinstance(value, int) and value % 5 == 0)
        assert row["count"] != WITHHELD  # only "only" figures are ever withheld
    by_party = {p: {i for (q, _), i in linked.items() if q == p} for p in PARTNERS}
    for row in counts["counts"]:
        if len(row["parties"]) == 2:
            a, b = row["parties"]
            exact = len(by_party[a] & by_party[b])
            assert abs(row["count"] - exact) <= 2, (row, exact)


def test_flags_only_where_granted(unit: EmbeddedUnit, encoded: Encoded) -> None:
    policy = {"grants": {"skills_agency": ["mapping", "flags:benefits_dept"],
                         "council": ["counts"]}}  # fmt: skip
    project, tokens = setup_project(unit, encoded, policy=policy)
    upload_all(unit, project, tokens, encoded)
    assert run_to_end(unit, project)["status"] == "done"
    with UnitClient(unit.url, tokens["skills_agency"]) as skills:
        flags = release_rows(skills.flags(project, "benefits_dept"))
        mapping = release_rows(skills.mapping(project))
        with pytest.raises(UnitError) as refused:
            skills.counts(project)  # not in its grants
        assert refused.value.status == 403
        with pytest.raises(UnitError):
            skills.flags(project, "council")
    with UnitClient(unit.url, tokens["benefits_dept"]) as benefits:
        theirs = {i for _, _, i in release_rows(benefits.mapping(project))}
    expected = [1 if i in theirs else 0 for _, _, i in mapping]
    assert [int(f) for _, _, f in flags] == expected
    assert 0 < sum(expected) < len(expected)
    with UnitClient(unit.url, tokens["council"]) as council:
        for fetch in (lambda: council.mapping(project),
                      lambda: council.flags(project, "benefits_dept")):  # fmt: skip
            with pytest.raises(UnitError) as exc:
                fetch()
            assert exc.value.status == 403
            assert "sharing policy does not release" in str(exc.value)


def test_scores_for_the_operator(unit: EmbeddedUnit, encoded: Encoded) -> None:
    project, tokens = setup_project(unit, encoded, threshold=0.8)
    upload_all(unit, project, tokens, encoded)
    assert run_to_end(unit, project)["status"] == "done"
    with UnitClient(unit.url, unit.admin_token) as admin:
        scores = admin.scores(project)
        entries = admin.audit(project)
    assert scores["threshold"] == 0.8
    assert len(scores["histogram"]) == len(scores["bin_edges"]) - 1
    assert sum(scores["histogram"]) > 0
    assert all(abs(p["score"] - 0.8) < 0.05 for p in scores["near_pairs"])
    assert entries[-1]["action"] == "release.scores"
    with UnitClient(unit.url, tokens["council"]) as council, pytest.raises(UnitError) as exc:
        council.scores(project)
    assert exc.value.status == 403


def test_releases_are_audited_with_policy(unit: EmbeddedUnit, encoded: Encoded) -> None:
    project, tokens = setup_project(unit, encoded)
    upload_all(unit, project, tokens, encoded)
    run_to_end(unit, project)
    with UnitClient(unit.url, tokens["benefits_dept"]) as party:
        party.mapping(project)
        party.counts(project)
    with UnitClient(unit.url, unit.admin_token) as admin:
        entries = admin.audit(project)
        verdict = admin.verify_audit()
    releases = [e for e in entries if e["action"].startswith("release.")]
    assert [e["action"] for e in releases] == ["release.mapping", "release.counts"]
    for entry in releases:
        assert entry["actor"] == "party:benefits_dept"
        assert entry["detail"]["purpose"] == "testing"
        assert "default grant" in entry["policy"]
    assert verdict == {"ok": True, "entries": len(entries), "problems": []}


def test_results_pruned_under_a_request_answer_503_not_500(
    unit: EmbeddedUnit, encoded: Encoded
) -> None:
    project, tokens = setup_project(unit, encoded, threshold=0.8)
    upload_all(unit, project, tokens, encoded)
    run = run_to_end(unit, project)
    # What a reader sees when a newer run completes and prunes this run's folder while
    # the reader's request is between reading the project and reading the files.
    shutil.rmtree(unit.settings.data_dir / "projects" / project / "runs" / run["id"])
    with UnitClient(unit.url, tokens["council"]) as council:
        for fetch in (lambda: council.mapping(project), lambda: council.counts(project)):
            with pytest.raises(UnitError) as exc:
                fetch()
            assert exc.value.status == 503 and "ask again" in str(exc.value)
