"""Fixtures of the unit's tests: a unit on SQLite or PostgreSQL, and partners' encodings.

PostgreSQL tests use the server on 127.0.0.1:5432 (started by `.ci/run`); each test gets
a database of its own, dropped afterwards. If the server is not running they fail: a
database test that cannot reach its database has not passed.
"""

from __future__ import annotations

import contextlib
import copy
import csv
import io
import json
import secrets
import struct
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import psycopg
import pytest

from encoder.encode import EncodeOptions, encode_file
from encoder.keys import Secret, generate_secret
from encoder.schema import load_schema, parse_schema
from linkage_unit.client import UnitClient
from linkage_unit.embedded import EmbeddedUnit

PG_ADMIN = "postgresql://postgres@127.0.0.1:5432/postgres"
PARTNERS = ("skills_agency", "benefits_dept", "council")


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str | None]:
    """``None`` (SQLite in the data folder) or a fresh PostgreSQL database."""
    if request.param == "sqlite":
        yield None
        return
    yield from fresh_postgres_database()


def fresh_postgres_database() -> Iterator[str]:
    name = f"pacelink_test_{secrets.token_hex(6)}"
    with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield f"postgresql+psycopg://postgres@127.0.0.1:5432/{name}"
    finally:
        with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def postgres_url() -> Iterator[str]:
    """A fresh PostgreSQL database (for tests that only make sense on a server)."""
    yield from fresh_postgres_database()


@pytest.fixture
def unit(tmp_path: Path, database_url: str | None) -> Iterator[EmbeddedUnit]:
    """A running unit (API on loopback, in-process worker) with quick heartbeats."""
    with EmbeddedUnit(
        tmp_path / "unit", database_url=database_url, heartbeat_seconds=0.2,
        stale_after_seconds=2.0, poll_seconds=0.05,
    ) as running:  # fmt: skip
        yield running


@pytest.fixture
def unit_with(tmp_path: Path, database_url: str | None) -> Iterator[Callable[..., EmbeddedUnit]]:
    """Starts a unit without a worker, with settings of the test's choosing (stopped after)."""
    with contextlib.ExitStack() as stack:

        def start(**settings: Any) -> EmbeddedUnit:
            unit = EmbeddedUnit(tmp_path / "unit", database_url=database_url, worker=False,
                                **settings)  # fmt: skip
            return stack.enter_context(unit)

        yield start


@dataclass(frozen=True)
class Partner:
    """One partner's files: its encodings, key map and the input they came from."""

    name: str
    csv: Path
    plk: Path
    keys: Path


@dataclass(frozen=True)
class Encoded:
    """The demo partners' files encoded with one secret, plus files that must be refused."""

    schema: dict[str, Any]
    secret: Secret
    partners: dict[str, Partner]
    other_secret_plk: Path
    other_schema_plk: Path
    other_schema: dict[str, Any]
    truth: dict[tuple[str, str], str]


def _demo_csv(name: str) -> str:
    return resources.files("linkage_unit").joinpath(f"data/demo/{name}").read_text("utf-8")


@pytest.fixture(scope="session")
def encoded(tmp_path_factory: pytest.TempPathFactory) -> Encoded:
    """The three demo partners encoded with the pace-default schema and one secret."""
    base = tmp_path_factory.mktemp("partners")
    schema = load_schema("pace-default")
    secret = generate_secret()
    partners: dict[str, Partner] = {}
    for name in PARTNERS:
        csv_path = base / f"{name}.csv"
        csv_path.write_text(_demo_csv(f"{name}.csv"), encoding="utf-8")
        encode_file(csv_path, schema, secret, base / f"{name}.plk",
                    EncodeOptions(id_column="local_id"))  # fmt: skip
        partners[name] = Partner(name, csv_path, base / f"{name}.plk", base / f"{name}.keys.csv")
    council = partners["council"].csv
    encode_file(council, schema, generate_secret(), base / "other-secret.plk",
                EncodeOptions(id_column="local_id"))  # fmt: skip
    other = copy.deepcopy(schema.raw)
    # Same fields, bigrams of the first name become trigrams: a schema the project did not
    # agree on.
    other["features"][0]["hashing"]["comparison"]["n"] += 1
    other_schema = parse_schema(other, "other")
    encode_file(council, other_schema, secret, base / "other-schema.plk",
                EncodeOptions(id_column="local_id"))  # fmt: skip
    truth = {}
    for row in csv.DictReader(io.StringIO(_demo_csv("truth.csv"))):
        truth[(row["partner"], row["local_id"])] = row["person"]
    return Encoded(
        schema=json.loads(json.dumps(schema.raw)), secret=secret, partners=partners,
        other_secret_plk=base / "other-secret.plk", other_schema_plk=base / "other-schema.plk",
        other_schema=other, truth=truth,
    )  # fmt: skip


def project_body(schema: dict[str, Any], **overrides: Any) -> dict[str, Any]:
    """A project of the three demo partners."""
    body: dict[str, Any] = {
        "name": "test project",
        "purpose": "testing",
        "schema": schema,
        "parties": list(PARTNERS),
        "threshold": "auto",
    }
    body.update(overrides)
    return body


# Hand-made `.plk` files, for tests that play a caller the client never would.
PLK_PREFIX = struct.Struct("<8sI")  # magic, header length (the format's fixed prefix)


def plk_parts(plk: Path) -> tuple[dict[str, Any], bytes]:
    """A `.plk` file's header and its packed bits."""
    data = plk.read_bytes()
    _, length = PLK_PREFIX.unpack_from(data)
    header = json.loads(data[PLK_PREFIX.size : PLK_PREFIX.size + length])
    return header, data[header["data_offset"] :]


def build_plk(header_blob: bytes, bits: bytes, data_offset: int = 4096) -> bytes:
    """A `.plk` file from a header as given (valid or not) and bits at `data_offset`."""
    head = PLK_PREFIX.pack(b"PACELINK", len(header_blob)) + header_blob
    return head + b" " * max(0, data_offset - len(head)) + bits


def plk_with(header: dict[str, Any], bits: bytes, **changes: Any) -> bytes:
    """A `.plk` file whose header has `changes` applied."""
    doc = {**header, **changes}
    return build_plk(json.dumps(doc).encode(), bits, int(header["data_offset"]))


# Steps of the partner and operator flow, over real HTTP.


def release_rows(text: str) -> list[tuple[str, int, str]]:
    """The rows of a mapping or flags release: ``(upload_id, row, value)``."""
    reader = csv.reader(io.StringIO(text))
    assert next(reader) in (["upload_id", "row", "linkage_id"], ["upload_id", "row", "flag"])
    return [(u, int(r), v) for u, r, v in reader]


def local_ids(path: Path) -> list[str]:
    """The local IDs of a key map, in row order."""
    with path.open(newline="", encoding="utf-8") as fh:
        return [r["local_id"] for r in csv.DictReader(fh)]


def setup_project(
    unit: EmbeddedUnit, encoded: Encoded, **overrides: Any
) -> tuple[str, dict[str, str]]:
    """Create a project of the three demo partners; returns its ID and the party tokens."""
    with UnitClient(unit.url, unit.admin_token) as admin:
        created = admin.create_project(project_body(encoded.schema, **overrides))
    return created["project_id"], created["parties"]


def upload_all(unit: EmbeddedUnit, project: str, tokens: dict[str, str],
               encoded: Encoded) -> dict[str, str]:  # fmt: skip
    """Every partner uploads its encodings; returns the upload IDs by partner."""
    uploads = {}
    for name in PARTNERS:
        with UnitClient(unit.url, tokens[name]) as party:
            uploads[name] = party.upload(project, encoded.partners[name].plk)["id"]
    return uploads


def run_to_end(
    unit: EmbeddedUnit, project: str, threshold: float | str | None = None
) -> dict[str, Any]:
    """Queue a run and wait until it is done or failed; returns the run."""
    with UnitClient(unit.url, unit.admin_token) as admin:
        run = admin.start_run(project, threshold)
        return admin.wait(project, run["id"], poll=0.05, timeout=120)


def linked_project(
    unit: EmbeddedUnit, encoded: Encoded, **overrides: Any
) -> tuple[str, dict[str, str]]:
    """A project of the three partners, each having uploaded, linked by a completed run."""
    with UnitClient(unit.url, unit.admin_token) as admin:
        created = admin.create_project(project_body(encoded.schema, threshold=0.8, **overrides))
        project_id, tokens = created["project_id"], created["parties"]
        for name, partner in encoded.partners.items():
            with UnitClient(unit.url, tokens[name]) as party:
                party.upload(project_id, partner.plk)
        run = admin.wait(project_id, admin.start_run(project_id)["id"], poll=0.05, timeout=180)
        assert run["status"] == "done", run
        with UnitClient(unit.url, tokens["council"]) as party:
            party.mapping(project_id)  # a release, so the project has entries of every kind
    return project_id, tokens
