"""A running unit with a linked project for the console tests, over real HTTP.

Three demo partners encode with record keys (the skills agency's local IDs include ones a
spreadsheet would run as formulas, and ones CSV must quote), upload, the unit links them;
then a quarter passes: the agency sends a delta of movers and withdraws one client, and a
second run links that. A second project exists so that cross-project access can be tried.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from encoder.encode import EncodeOptions, encode_file
from encoder.keys import RecordKey, generate_record_key, generate_secret
from encoder.schema import load_schema
from linkage_unit.client import UnitClient
from linkage_unit.embedded import EmbeddedUnit

PARTNERS = ("skills_agency", "benefits_dept", "council")
POLICY = {
    "grants": {
        "skills_agency": ["mapping", "counts", "flags:benefits_dept"],
        "council": ["counts"],
    }
}
#: Local IDs a CSV writer must quote or a spreadsheet would run: the join must keep them.
TRICKY_IDS = ("=HYPERLINK(1)", "a,b", 'he said "hi"', "-12", "+cmd", "'quoted", "@home")


@dataclass
class ConsoleProject:
    """What the console tests need to know about the running unit and its project."""

    unit: EmbeddedUnit
    project: str
    other_project: str
    tokens: dict[str, str]
    other_tokens: dict[str, str]
    folders: dict[str, Path]
    record_keys: dict[str, RecordKey]
    uploads: dict[str, list[str]]
    #: Every value the partners hold (local IDs, names, dates, postcodes …): none may appear
    #: on a page.
    identifiers: set[str] = field(default_factory=set)
    runs: list[str] = field(default_factory=list)

    @property
    def url(self) -> str:
        return self.unit.url


def _demo(name: str) -> str:
    return resources.files("linkage_unit").joinpath(f"data/demo/{name}").read_text("utf-8")


def _partner_csv(name: str) -> str:
    text = _demo(f"{name}.csv")
    if name != "skills_agency":
        return text
    rows = list(csv.reader(io.StringIO(text)))
    for k, tricky in enumerate(TRICKY_IDS):
        rows[1 + k][0] = tricky
    buf = io.StringIO(newline="")
    csv.writer(buf).writerows(rows)
    return buf.getvalue()


def build_project(base: Path, unit: EmbeddedUnit) -> ConsoleProject:
    """Encode, upload and link the demo partners; then a delta and a withdrawal."""
    schema = load_schema("pace-default")
    secret = generate_secret()
    folders, keys, identifiers = {}, {}, set()
    for name in PARTNERS:
        folder = base / name
        folder.mkdir()
        text = _partner_csv(name)
        (folder / f"{name}.csv").write_text(text, encoding="utf-8")
        for row in csv.DictReader(io.StringIO(text)):
            identifiers.update(
                v.strip() for k, v in row.items()
                if k not in ("sex", "consent") and v and len(v.strip()) >= 4
            )  # fmt: skip
        keys[name] = generate_record_key()
        encode_file(folder / f"{name}.csv", schema, secret, folder / f"{name}.plk",
                    EncodeOptions(id_column="local_id", consent_column="consent"
                                  if name == "skills_agency" else None,
                                  record_key=keys[name]))  # fmt: skip
        folders[name] = folder
    with UnitClient(unit.url, unit.admin_token) as admin:
        created = admin.create_project({
            "name": "Console project", "schema": schema.raw, "parties": list(PARTNERS),
            "purpose": "Testing the console", "policy": POLICY, "retention_days": 30,
        })  # fmt: skip
        other = admin.create_project({
            "name": "Another project", "schema": schema.raw, "parties": ["left", "right"],
            "purpose": "Another partnership",
        })  # fmt: skip
    project, tokens = created["project_id"], created["parties"]
    made = ConsoleProject(unit, project, other["project_id"], tokens, other["parties"], folders,
                          keys, {n: [] for n in PARTNERS}, identifiers)  # fmt: skip
    for name in PARTNERS:
        with UnitClient(unit.url, tokens[name]) as party:
            made.uploads[name].append(party.upload(project, folders[name] / f"{name}.plk")["id"])
    made.runs.append(_run(unit, project))

    agency = "skills_agency"
    with (folders[agency] / f"{agency}.csv").open(newline="", encoding="utf-8") as fh:
        reader = csv.DictReader(fh)
        fields = list(reader.fieldnames or [])
        rows = [r for r in reader if r["consent"] == "Y"]
    delta = folders[agency] / f"{agency}-delta.csv"
    with delta.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fields)
        writer.writeheader()
        for row in rows[10:13]:
            writer.writerow({**row, "postcode": "KW15 1XY"})
    encode_file(delta, schema, secret, folders[agency] / f"{agency}-delta.plk",
                EncodeOptions(id_column="local_id", consent_column="consent",
                              record_key=keys[agency]))  # fmt: skip
    with UnitClient(unit.url, tokens[agency]) as party:
        sent = party.upload(project, folders[agency] / f"{agency}-delta.plk", "delta")
        made.uploads[agency].append(sent["id"])
        withdrawal = party.withdraw(project, keys[agency].pseudonyms([rows[20]["local_id"]])
                                    .tolist())  # fmt: skip
    with UnitClient(unit.url, unit.admin_token) as admin:
        assert admin.wait(project, withdrawal["run_id"], poll=0.1)["status"] == "done"
    made.runs.append(withdrawal["run_id"])
    return made


def _run(unit: EmbeddedUnit, project: str) -> str:
    with UnitClient(unit.url, unit.admin_token) as admin:
        run = admin.start_run(project)
        done = admin.wait(project, run["id"], poll=0.1)
    assert done["status"] == "done", done
    return str(run["id"])


@pytest.fixture(scope="package")
def console_project(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ConsoleProject]:
    """The linked project on a running unit (SQLite), shared by the console tests."""
    base = tmp_path_factory.mktemp("console")
    with EmbeddedUnit(base / "unit", heartbeat_seconds=0.2, stale_after_seconds=2.0,
                      poll_seconds=0.05) as unit:  # fmt: skip
        yield build_project(base, unit)


def secrets_of(made: ConsoleProject) -> set[str]:
    """What must never be on a page: tokens, the salt, record pseudonyms and linkage IDs."""
    out = {made.unit.admin_token, *made.tokens.values(), *made.other_tokens.values()}
    data = made.unit.settings.data_dir
    out.add(data.joinpath("projects", made.project, "salt").read_bytes().hex())
    for path in data.glob(f"projects/{made.project}/uploads/*.keys.npy"):
        out.update(str(k) for k in np.load(path) if str(k))
    for path in data.glob(f"projects/{made.project}/runs/*/ids/*.npy"):
        out.update(str(k) for k in np.load(path) if str(k))
    return out


def routes(made: ConsoleProject) -> dict[str, dict[str, Any]]:
    """Every console page with its path filled in, and who may see it."""
    p, run = made.project, made.runs[-1]
    agency = "skills_agency"
    return {
        "/console/": {"who": "any"},
        f"/console/projects/{p}": {"who": "admin"},
        f"/console/projects/{p}/uploads": {"who": "admin"},
        f"/console/projects/{p}/runs": {"who": "admin"},
        f"/console/projects/{p}/runs/{run}": {"who": "admin"},
        f"/console/projects/{p}/runs/{run}/status": {"who": "admin"},
        f"/console/projects/{p}/releases": {"who": "admin"},
        "/console/audit": {"who": "admin"},
        "/console/audit/verify": {"who": "admin"},
        f"/console/projects/{p}/parties/{agency}": {"who": agency},
        f"/console/projects/{p}/parties/{agency}/counts": {"who": agency, "release": True},
        f"/console/projects/{p}/parties/{agency}/download/counts": {"who": agency,
                                                                    "release": True},
        f"/console/projects/{p}/parties/{agency}/download/mapping": {"who": agency,
                                                                     "release": True},
        f"/console/projects/{p}/parties/{agency}/download/flags/benefits_dept": {
            "who": agency, "release": True},
    }  # fmt: skip
