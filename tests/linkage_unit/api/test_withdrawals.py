"""Record lifecycle over real HTTP: snapshots, deltas, updates, withdrawals (SQLite, PostgreSQL)."""

from __future__ import annotations

import csv
import io
import json
import os
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
from typer.testing import CliRunner

from encoder.cli import app, load_plugins
from encoder.encode import EncodeOptions, encode_file
from encoder.fileformat import read_encodings
from encoder.keys import RecordKey, generate_record_key, write_record_key
from encoder.schema import parse_schema
from linkage_unit.client import UnitClient, UnitError
from linkage_unit.embedded import EmbeddedUnit
from tests.linkage_unit.conftest import PARTNERS, Encoded, project_body

FIELDS = ("local_id", "given_name", "surname", "date_of_birth", "sex", "postcode",
          "address_line", "ni_number", "consent")  # fmt: skip


@dataclass
class Premises:
    """One partner's side: its client list (by local ID), its record key, its files."""

    name: str
    rows: dict[str, dict[str, str]]
    key: RecordKey
    folder: Path
    n: int = 0

    def encode(self, unit_secret: Encoded, local_ids: Sequence[str],
               changes: dict[str, dict[str, str]] | None = None) -> Path:  # fmt: skip
        """Encode these clients (with changed details where given) into a new `.plk`."""
        self.n += 1
        path = self.folder / f"{self.name}-{self.n}.csv"
        with path.open("w", newline="", encoding="utf-8") as fh:
            writer = csv.DictWriter(fh, FIELDS)
            writer.writeheader()
            for local_id in local_ids:
                writer.writerow({**self.rows[local_id], **(changes or {}).get(local_id, {})})
        out = self.folder / f"{self.name}-{self.n}.plk"
        encode_file(path, parse_schema(unit_secret.schema), unit_secret.secret, out,
                    EncodeOptions(id_column="local_id", record_key=self.key))  # fmt: skip
        return out


def _premises(encoded: Encoded, tmp_path: Path) -> dict[str, Premises]:
    """Each demo partner's clients, less those the encoder rejects (all encode here)."""
    out = {}
    for name in PARTNERS:
        with encoded.partners[name].keys.open(newline="", encoding="utf-8") as fh:
            encodable = {r["local_id"] for r in csv.DictReader(fh)}
        with encoded.partners[name].csv.open(newline="", encoding="utf-8") as fh:
            rows = {r["local_id"]: r for r in csv.DictReader(fh) if r["local_id"] in encodable}
        folder = tmp_path / name
        folder.mkdir()
        out[name] = Premises(name, rows, generate_record_key(), folder)
    return out


def _project(unit: EmbeddedUnit, encoded: Encoded, **overrides: Any) -> tuple[str, dict[str, str]]:
    with UnitClient(unit.url, unit.admin_token) as admin:
        created = admin.create_project(project_body(encoded.schema, threshold=0.8, **overrides))
    return created["project_id"], created["parties"]


@dataclass(frozen=True)
class CouncilAlone:
    """A project where the council has uploaded its whole list and a run has linked it."""

    project: str
    tokens: dict[str, str]
    council: Premises
    ids: list[str]
    plk: Path
    upload: str


def _council_alone(unit: EmbeddedUnit, encoded: Encoded, tmp_path: Path, *,
                   run: bool = True) -> CouncilAlone:  # fmt: skip
    project, tokens = _project(unit, encoded)
    council = _premises(encoded, tmp_path)["council"]
    ids = sorted(council.rows)
    plk = council.encode(encoded, ids)
    with UnitClient(unit.url, tokens["council"]) as party:
        upload = party.upload(project, plk)["id"]
    if run:
        _run(unit, project)
    return CouncilAlone(project, tokens, council, ids, plk, upload)


def _run(unit: EmbeddedUnit, project: str) -> dict[str, Any]:
    with UnitClient(unit.url, unit.admin_token) as admin:
        run = admin.start_run(project)
        done = admin.wait(project, run["id"], poll=0.05, timeout=120)
    assert done["status"] == "done", done
    return done


def _wait_queued(unit: EmbeddedUnit, project: str, run_id: str) -> dict[str, Any]:
    with UnitClient(unit.url, unit.admin_token) as admin:
        done = admin.wait(project, run_id, poll=0.05, timeout=120)
    assert done["status"] == "done", done
    return done


def _ids(unit: EmbeddedUnit, token: str, project: str, upload: str, plk: Path) -> dict[str, str]:
    """Local ID -> linkage ID of one upload, joined to its key map as the partner does."""
    with plk.with_suffix(".keys.csv").open(newline="", encoding="utf-8") as fh:
        local = [r["local_id"] for r in csv.DictReader(fh)]
    with UnitClient(unit.url, token) as party:
        text = party.mapping(project, upload)
    rows = list(csv.reader(io.StringIO(text)))[1:]
    return {local[int(row)]: linkage_id for _, row, linkage_id in rows}


def _audit(unit: EmbeddedUnit, project: str) -> list[dict[str, Any]]:
    with UnitClient(unit.url, unit.admin_token) as admin:
        entries: list[dict[str, Any]] = admin.audit(project)
    return entries


def _scan(folder: Path, needles: dict[str, bytes]) -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}
    # os.walk, not rglob: the worker may still be removing a superseded run's folder after
    # the run is done, and a folder or file that vanishes while scanned holds nothing.
    for root, _, names in os.walk(folder):
        for name in names:
            path = Path(root) / name
            try:
                data = path.read_bytes()
            except FileNotFoundError:
                continue
            for label, needle in needles.items():
                if needle in data:
                    found.setdefault(label, []).append(str(path.relative_to(folder)))
    return found


def test_updates_keep_ids_and_withdrawals_leave_no_trace(
    unit: EmbeddedUnit, encoded: Encoded, tmp_path: Path
) -> None:
    project, tokens = _project(unit, encoded)
    sites = _premises(encoded, tmp_path)
    skills, benefits = sites["skills_agency"], sites["benefits_dept"]
    sk_ids = sorted(skills.rows)
    bn_ids = sorted(benefits.rows)
    first = {}
    plks = {}
    for site, ids in ((skills, sk_ids), (benefits, bn_ids)):
        plks[site.name] = site.encode(encoded, ids)
        with UnitClient(unit.url, tokens[site.name]) as party:
            made = party.upload(project, plks[site.name])
        assert made["kind"] == "snapshot"  # a party's first upload, unsaid
        first[site.name] = made["id"]
    _run(unit, project)
    before = _ids(unit, tokens["skills_agency"], project, first["skills_agency"],
                  plks["skills_agency"])  # fmt: skip
    theirs = set(_ids(unit, tokens["benefits_dept"], project, first["benefits_dept"],
                      plks["benefits_dept"]).values())  # fmt: skip
    linked = [i for i in before if before[i] in theirs]
    assert len(linked) > 200

    # Quarter 2: the skills agency sends 40 clients with new postcodes and addresses and 10
    # with a corrected date of birth (the same people), plus 2 new clients.
    movers, corrected = linked[:40], linked[40:50]
    changes = {i: {"postcode": "KW1 4YT", "address_line": "1 New Street"} for i in movers}
    for i in corrected:
        day, month, year = skills.rows[i]["date_of_birth"].split("/")
        changes[i] = {"date_of_birth": f"{day}/{month}/{int(year) + 1}"}
    newcomers = [f"NEW-{k}" for k in range(2)]
    for k, i in enumerate(newcomers):
        skills.rows[i] = {**skills.rows[sk_ids[-1 - k]], "local_id": i, "surname": f"Zed{k}"}
    delta_plk = skills.encode(encoded, movers + corrected + newcomers, changes)
    with UnitClient(unit.url, tokens["skills_agency"]) as party:
        delta = party.upload(project, delta_plk, "delta")["id"]
    run = _run(unit, project)
    summary = run["summary"]
    assert summary["updated_records"] == 50 and summary["new_records"] == 2
    assert summary["withdrawn_records"] == 0
    after = _ids(unit, tokens["skills_agency"], project, delta, delta_plk)
    kept = sum(after[i] == before[i] for i in movers + corrected)
    assert kept >= 49, kept  # updated records keep their person's linkage ID
    assert summary["moved_records"] == 50 - kept
    # The first upload's mapping now shows the records as last delivered: the same IDs.
    again = _ids(unit, tokens["skills_agency"], project, first["skills_agency"],
                 plks["skills_agency"])  # fmt: skip
    assert again == before or sum(again[i] != before[i] for i in before) <= 50 - kept

    # A withdrawal of 5 clients (consent withdrawn): by pseudonym, a run is queued at once.
    # Five whose encoding no other record shares (the other partner's record of a person
    # can be bit for bit the same: the unit rightly keeps that one).
    bits = read_encodings(plks["skills_agency"])
    held = [read_encodings(plks["benefits_dept"]).bits, read_encodings(delta_plk).bits, bits.bits]
    counts = Counter(row.tobytes() for b in held for row in b)
    gone = [i for i in linked[100:] if counts[bits.bits[sk_ids.index(i)].tobytes()] == 1][:5]
    rows = [sk_ids.index(i) for i in gone]
    needles = {f"{i} key": bytes.fromhex(str(k)) for i, k in zip(
        gone, skills.key.pseudonyms(gone).tolist(), strict=True)}  # fmt: skip
    needles |= {f"{i} key hex": str(k).encode() for i, k in zip(
        gone, skills.key.pseudonyms(gone).tolist(), strict=True)}  # fmt: skip
    needles |= {f"{i} bits": bits.bits[r].tobytes() for i, r in zip(gone, rows, strict=True)}
    assert _scan(unit.settings.data_dir, needles), "the scan looks for bytes the unit holds before"
    with UnitClient(unit.url, tokens["skills_agency"]) as party:
        made = party.withdraw(project, skills.key.pseudonyms(gone).tolist())
        assert (made["requested"], made["unknown"]) == (5, 0)
    done = _wait_queued(unit, project, made["run_id"])
    assert done["summary"]["withdrawn_records"] == 5
    # Counts reconcile: the records encoded (the key map's), plus the newcomers, less 5.
    assert done["summary"]["records_by_party"]["skills_agency"] == len(before) + 2 - 5
    mapping = _ids(unit, tokens["skills_agency"], project, first["skills_agency"],
                   plks["skills_agency"])  # fmt: skip
    assert not set(gone) & set(mapping) and len(mapping) == len(before) - 5
    assert _scan(unit.settings.data_dir, needles) == {}
    entry = next(e for e in _audit(unit, project) if e["action"] == "withdrawal.accepted")
    assert entry["detail"]["records"] == 5
    text = json.dumps(_audit(unit, project))
    for i, k in zip(gone, skills.key.pseudonyms(gone).tolist(), strict=True):
        assert i not in text and str(k) not in text
    run_done = [e for e in _audit(unit, project) if e["action"] == "run.done"]
    assert run_done[-1]["detail"]["records_withdrawn"] == 5


def test_a_snapshot_withdraws_the_records_it_lacks(
    unit: EmbeddedUnit, encoded: Encoded, tmp_path: Path
) -> None:
    alone = _council_alone(unit, encoded, tmp_path)
    project, tokens, council, ids = alone.project, alone.tokens, alone.council, alone.ids

    def council_count() -> Any:
        with UnitClient(unit.url, tokens["council"]) as party:
            rows = party.counts(project)["counts"]
        return next(r["count"] for r in rows if r["parties"] == ["council"])

    before = council_count()
    with UnitClient(unit.url, tokens["council"]) as party:
        second = council.encode(encoded, ids[:-30])
        made = party.upload(project, second, "snapshot")
    assert made["kind"] == "snapshot"
    summary = _run(unit, project)["summary"]
    assert summary["withdrawn_records"] == 30 and summary["records"] == len(ids) - 30
    assert summary["new_records"] == 0 and summary["updated_records"] == 0
    assert set(_ids(unit, tokens["council"], project, made["id"], second)) == set(ids[:-30])
    # The released count drops with them (30 is more than the policy's steadying margin).
    assert isinstance(before, int) and before - 35 <= council_count() <= before - 25


def test_bad_lifecycle_requests_change_nothing(
    unit: EmbeddedUnit, encoded: Encoded, tmp_path: Path
) -> None:
    project, tokens = _project(unit, encoded)
    sites = _premises(encoded, tmp_path)
    council, skills = sites["council"], sites["skills_agency"]
    c_ids = sorted(council.rows)
    first = council.encode(encoded, c_ids)

    def state() -> tuple[Any, ...]:
        with UnitClient(unit.url, unit.admin_token) as admin:
            uploads = admin.uploads(project)
        root = unit.settings.data_dir
        files = sorted(str(p.relative_to(root)) for p in root.rglob("*")
                       if p.is_file() and "audit" not in p.name and p.suffix != ".db")  # fmt: skip
        return tuple(u["id"] for u in uploads), tuple(files)

    with UnitClient(unit.url, tokens["skills_agency"]) as party:
        party.upload(project, skills.encode(encoded, sorted(skills.rows)[:50]))
    # A delta before any upload of the party.
    with UnitClient(unit.url, tokens["council"]) as party:
        start = state()
        # A first upload made with another party's record key: another partner's file.
        with pytest.raises(UnitError, match="another party's record key") as refused:
            party.upload(project, skills.encode(encoded, sorted(skills.rows)[50:70]))
        assert refused.value.status == 409
        assert state() == start
        with pytest.raises(UnitError, match="delta needs an earlier upload") as refused:
            party.upload(project, first, "delta")
        assert refused.value.status == 422
        assert state() == start
        party.upload(project, first)
    _run(unit, project)
    start = state()
    # A snapshot of another partner's clients (made with its record key): refused.
    wrong = skills.encode(encoded, sorted(skills.rows)[:20])
    with UnitClient(unit.url, tokens["council"]) as party:
        with pytest.raises(UnitError, match="different record key") as refused:
            party.upload(project, wrong, "snapshot")
        assert refused.value.status == 409
        # A file without record keys after ones with them.
        plain = tmp_path / "plain.plk"
        encode_file(encoded.partners["council"].csv, parse_schema(encoded.schema),
                    encoded.secret, plain, EncodeOptions(id_column="local_id"))  # fmt: skip
        with pytest.raises(UnitError, match="no record keys"):
            party.upload(project, plain, "delta")
        # An upload kind that does not exist.
        with pytest.raises(UnitError, match="kind") as refused:
            party._json("POST", f"/projects/{project}/uploads", params={"kind": "everything"},
                        content=first.read_bytes())  # fmt: skip
        assert refused.value.status == 422
    assert state() == start
    # Withdrawals: malformed keys, a repeated key, unknown keys, no keys, an admin token.
    good = council.key.pseudonyms(c_ids[:2]).tolist()
    bodies = [
        ({"record_keys": ["not-a-key"]}, 422, "record_keys"),
        ({"record_keys": [good[0].upper()]}, 422, "record_keys"),
        ({"record_keys": [good[0], good[0]]}, 422, "repeated"),
        ({"record_keys": [*good, "0" * 32]}, 422, "1 of 3 record keys name no record"),
        ({"record_keys": []}, 422, "record_keys"),
        ({"record_keys": good, "extra": 1}, 422, "extra"),
    ]
    as_council = {"Authorization": f"Bearer {tokens['council']}"}
    with httpx.Client(base_url=unit.url) as http:
        for body, status, message in bodies:
            answer = http.post(f"/projects/{project}/withdrawals", json=body, headers=as_council)
            assert answer.status_code == status, (body, answer.text)
            assert message in answer.text, answer.text
            assert "0" * 32 not in answer.text and good[0] not in answer.text
        answer = http.post(f"/projects/{project}/withdrawals", json={"record_keys": good},
                           headers={"Authorization": f"Bearer {unit.admin_token}"})  # fmt: skip
        assert answer.status_code == 403
        # A party that uploaded nothing with record keys has nothing to name.
        as_benefits = {"Authorization": f"Bearer {tokens['benefits_dept']}"}
        answer = http.post(f"/projects/{project}/withdrawals", json={"record_keys": good},
                           headers=as_benefits)  # fmt: skip
        assert answer.status_code == 409 and "no record keys" in answer.text
    assert state() == start
    refusals = [e for e in _audit(unit, project) if e["action"] == "withdrawal.refused"]
    assert len(refusals) >= 3


def test_releases_wait_for_a_pending_withdrawal(
    unit_with: Any, encoded: Encoded, tmp_path: Path
) -> None:
    """Between a withdrawal and its run nothing is released (it would hold the records)."""
    unit = unit_with()  # no worker: the queued run waits
    alone = _council_alone(unit, encoded, tmp_path, run=False)
    project, council, ids = alone.project, alone.council, alone.ids
    with UnitClient(unit.url, alone.tokens["council"]) as party:
        made = party.withdraw(project, council.key.pseudonyms(ids[:3]).tolist())
        assert made["run_id"]
        with pytest.raises(UnitError, match="withdrawal is waiting"):
            party.mapping(project)
        # A second withdrawal joins the waiting run instead of queuing another.
        more = party.withdraw(project, council.key.pseudonyms(ids[3:4]).tolist())
        assert more["run_id"] == made["run_id"]
        # A key already being withdrawn is unknown now.
        with pytest.raises(UnitError, match="name no record"):
            party.withdraw(project, council.key.pseudonyms(ids[:1]).tolist())


def test_pacelink_withdraw_sends_pseudonyms_of_local_ids(
    unit: EmbeddedUnit, encoded: Encoded, tmp_path: Path
) -> None:
    """The partner's command: local IDs in a file, the record key, nothing else leaves."""
    alone = _council_alone(unit, encoded, tmp_path)
    project, tokens, council, ids = alone.project, alone.tokens, alone.council, alone.ids
    plk, upload = alone.plk, alone.upload
    key_file = tmp_path / "council.record.key"
    write_record_key(key_file, council.key)
    token_file = tmp_path / "council.token"
    token_file.write_text(tokens["council"])
    token_file.chmod(0o600)
    ids_file = tmp_path / "withdraw.txt"
    ids_file.write_text("\n".join([*ids[:4], "NOT-A-CLIENT"]) + "\n")
    load_plugins()
    runner = CliRunner()
    base = ["withdraw", "--unit", unit.url, "--project", project, "--token-file",
            str(token_file), "--record-key", str(key_file), "--ids", str(ids_file)]  # fmt: skip
    refused = runner.invoke(app, base)
    assert refused.exit_code != 0
    assert "numbered 5" in refused.output and "--allow-unknown" in refused.output
    assert "NOT-A-CLIENT" not in refused.output
    done = runner.invoke(app, [*base, "--allow-unknown"])
    assert done.exit_code == 0, done.output
    assert "4 records to withdraw" in done.output and "1 IDs were not at the unit" in done.output
    run_id = done.output.split("; run ")[1].split()[0]
    _wait_queued(unit, project, run_id)
    assert set(_ids(unit, tokens["council"], project, upload, plk)) == set(ids[4:])
    # The results command joins the shorter answer to the key map and says why.
    out = tmp_path / "mapping.csv"
    key_map = str(plk.with_suffix(".keys.csv"))
    results = runner.invoke(app, ["results", "--unit", unit.url, "--project", project,
                                  "--token-file", str(token_file), "--keys", key_map,
                                  "--out", str(out)])  # fmt: skip
    assert results.exit_code == 0, results.output
    assert "4 of the key map's records were withdrawn since" in " ".join(results.output.split())
    with out.open(newline="") as fh:
        assert {r["local_id"] for r in csv.DictReader(fh)} == set(ids[4:])


def test_duplicates_linked_is_a_project_setting(
    unit: EmbeddedUnit, encoded: Encoded, tmp_path: Path
) -> None:
    """A partner's duplicate clients share an entity in a service run when the project says so."""
    sites = _premises(encoded, tmp_path)
    council = sites["council"]
    ids = sorted(council.rows)[:200]
    for k, i in enumerate(ids[:20]):  # the same 20 people again under new local IDs
        council.rows[f"DUP-{k}"] = {**council.rows[i], "local_id": f"DUP-{k}"}
    both = ids + [f"DUP-{k}" for k in range(20)]
    results = {}
    for rule in ("forbid", "linked"):
        project, tokens = _project(unit, encoded, duplicates=rule)
        with UnitClient(unit.url, unit.admin_token) as admin:
            assert admin.project(project)["duplicates"] == rule
        plk = council.encode(encoded, both)
        with UnitClient(unit.url, tokens["council"]) as party:
            upload = party.upload(project, plk)["id"]
        _run(unit, project)
        mapping = _ids(unit, tokens["council"], project, upload, plk)
        results[rule] = sum(mapping[f"DUP-{k}"] == mapping[i] for k, i in enumerate(ids[:20]))
    assert results == {"forbid": 0, "linked": 20}
    with UnitClient(unit.url, unit.admin_token) as admin:
        default = admin.create_project(project_body(encoded.schema))["project_id"]
        assert admin.project(default)["duplicates"] == "linked"  # a project's default
        with pytest.raises(UnitError):
            admin.create_project(project_body(encoded.schema, duplicates="allow"))


def test_upload_answers_carry_no_record_keys(
    unit: EmbeddedUnit, encoded: Encoded, tmp_path: Path
) -> None:
    """The unit holds pseudonyms but never hands them out: not in uploads, runs or releases."""
    alone = _council_alone(unit, encoded, tmp_path)
    project, tokens, council, ids, plk = (alone.project, alone.tokens, alone.council, alone.ids,
                                          alone.plk)  # fmt: skip
    pseudonyms = set(council.key.pseudonyms(ids).tolist())
    with UnitClient(unit.url, tokens["council"]) as party:
        answers = [json.dumps(party.uploads(project)), party.mapping(project),
                   json.dumps(party.counts(project))]  # fmt: skip
    with UnitClient(unit.url, unit.admin_token) as admin:
        answers += [json.dumps(admin.runs(project)), json.dumps(admin.audit(project))]
    text = "\n".join(answers)
    assert not any(p in text for p in pseudonyms)
    np.testing.assert_array_equal(read_encodings(plk).record_keys, council.key.pseudonyms(ids))
