"""The separation principle, checked on everything a unit writes: no identifier reaches it.

A whole project runs on a unit (SQLite and PostgreSQL): the operator creates it, the three
demo partners upload, a run links them, each partner fetches what the policy releases, the
operator reads the scores and the audit log. Then every byte the unit wrote — each file of
its data folder (binary files as bytes, the SQLite file and its WAL included), a dump of
every cell of every table, its log records and whatever it printed — is searched for the
partners' raw identifiers (given names, surnames, dates of birth, postcodes, address lines,
NI numbers, as written in the CSVs and as the encoder standardises them), the partners'
local record IDs, the partnership secret and the access tokens. None may be there.

The scanner is checked first on planted values (text in another case, UTF-8 amid random
bytes, a numpy string array, a database cell), so a scanner that finds nothing cannot pass
for a unit that leaks nothing.
"""

from __future__ import annotations

import csv
import logging
import math
import sqlite3
from collections import defaultdict
from collections.abc import Iterator
from contextlib import closing, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import numpy as np
import psycopg
import pytest
from numpy.typing import NDArray

from encoder.standardise import STANDARDISERS
from linkage_unit.client import UnitClient
from linkage_unit.demo import POLICY
from linkage_unit.embedded import EmbeddedUnit
from tests.linkage_unit.conftest import PARTNERS, Encoded, project_body

# Identifier columns of the partner CSVs and the standardiser the encoder applies to each.
# `sex` and `consent` are left out: "Male" or "Y" identifies no one and is not what the
# separation principle protects.
IDENTIFIER_COLUMNS: Final = {
    "given_name": "name",
    "surname": "name",
    "date_of_birth": "date",
    "postcode": "postcode",
    "address_line": "address",
    "ni_number": "ni_number",
}
# Values under 4 characters ("Sam", "Cox", "Day", "Law", "Guy") are skipped: they are
# ordinary words and substrings of the unit's own text ("days", "law"), so they would be
# "found" without anything having leaked, and on their own they identify no one.
MIN_CHARS: Final = 4
# Identifier values that are also words the unit itself writes, skipped: the surname
# "Grant" is how the audit log says a release was allowed ("mapping (party grant)").
UNIT_VOCABULARY: Final = frozenset({"grant"})
# Short values are only counted as found where they stand as a token of their own (no letter
# or digit either side): "Hall" inside "shall", or an NI number made only of hex digits
# inside a 32-character hex ID, is chance, not a leak. From 8 characters (16 for values made
# only of hex digits) a value anywhere counts.
TOKEN_ONLY_BELOW: Final = 8
HEX_TOKEN_ONLY_BELOW: Final = 16
# Encodings are random-looking bits (about 7 bits of entropy per byte in 256-byte blocks;
# text has under 5.5). In 1.5 MB of such bytes one of the ~1,000 identifier values of 4 or 5
# characters turns up by chance about once in ten runs, so inside high-entropy blocks only
# values of at least TOKEN_ONLY_BELOW characters are searched (chance: about 1e-8 a run).
ENTROPY_BLOCK: Final = 256
RANDOM_BITS_PER_BYTE: Final = 6.5
# Where identifiers could hide in binary files: UTF-8 (text, pickles, SQLite cells), and
# UTF-16/UTF-32 code units (numpy stores str arrays as UTF-32).
ENCODINGS: Final = (("utf-8", 1), ("utf-16-le", 2), ("utf-32-le", 4))
_HEX: Final = frozenset("0123456789abcdef")
LOGGERS: Final = ("pacelink", "uvicorn", "uvicorn.access")


# ------------------------------------------------------------------------------ the scanner


@dataclass(frozen=True)
class Needle:
    """A value that must not be found: ``text`` is its lower-case form."""

    kind: str
    original: str
    text: str

    @property
    def token_only(self) -> bool:
        """Whether a match needs non-alphanumeric neighbours to count (see TOKEN_ONLY_BELOW)."""
        if self.kind in ("secret", "token"):
            return False
        if len(self.text) < TOKEN_ONLY_BELOW:
            return True
        return len(self.text) < HEX_TOKEN_ONLY_BELOW and set(self.text) <= _HEX


@dataclass(frozen=True)
class Hit:
    """Where a needle was found."""

    needle: Needle
    source: str
    offset: int
    encoding: str

    def __str__(self) -> str:
        return (f"{self.needle.kind} {self.needle.original!r} found in {self.source} "
                f"at byte {self.offset} ({self.encoding})")  # fmt: skip


def _prefix_key(data: bytes, width: int) -> int:
    """The first byte of each of the first four code units, as one number."""
    return data[0] | data[width] << 8 | data[2 * width] << 16 | data[3 * width] << 24


def _entropy_per_block(arr: NDArray[np.uint8]) -> NDArray[np.float64]:
    """Shannon entropy (bits per byte) of each ENTROPY_BLOCK-byte block."""
    blocks = max(1, math.ceil(arr.size / ENTROPY_BLOCK))
    index = np.arange(arr.size, dtype=np.int64) // ENTROPY_BLOCK * 256 + arr
    counts = np.bincount(index, minlength=blocks * 256).reshape(blocks, 256).astype(np.float64)
    sizes = counts.sum(axis=1, keepdims=True)
    p = counts / np.maximum(sizes, 1)
    logs = np.log2(np.where(p > 0, p, 1.0))
    entropy: NDArray[np.float64] = -(p * logs).sum(axis=1)
    return entropy


class Scanner:
    """Finds needles in text (case-insensitively) and in bytes (UTF-8, -16, -32)."""

    def __init__(self, needles: list[Needle]) -> None:
        self.needles = needles
        self._tables: list[tuple[str, int, dict[int, list[tuple[Needle, bytes]]],
                                 NDArray[np.uint32]]] = []  # fmt: skip
        for encoding, width in ENCODINGS:
            table: dict[int, list[tuple[Needle, bytes]]] = defaultdict(list)
            for needle in needles:
                encoded = needle.text.encode(encoding)
                table[_prefix_key(encoded, width)].append((needle, encoded))
            keys = np.array(sorted(table), dtype=np.uint32)
            self._tables.append((encoding, width, table, keys))

    def scan_text(self, source: str, text: str) -> list[Hit]:
        """Case-insensitive search of a text (a log, a table cell, a response)."""
        return self._scan(source, text.lower().encode("utf-8"), encodings=1)

    def scan_bytes(self, source: str, data: bytes) -> list[Hit]:
        """Search raw bytes; UTF-8 text in them is also searched case-insensitively."""
        hits = self._scan(source, data.lower(), encodings=len(ENCODINGS))
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError:
            return hits
        # str.lower also folds non-ASCII capitals ("ÓLAFUR"), which bytes.lower leaves.
        seen = {(h.needle, h.encoding) for h in hits}
        return hits + [h for h in self.scan_text(source, text)
                       if (h.needle, h.encoding) not in seen]  # fmt: skip

    def _scan(self, source: str, data: bytes, *, encodings: int) -> list[Hit]:
        arr = np.frombuffer(data, dtype=np.uint8)
        if arr.size == 0:
            return []
        random_block = _entropy_per_block(arr) > RANDOM_BITS_PER_BYTE
        hits: dict[tuple[Needle, str], Hit] = {}
        for encoding, width, table, keys in self._tables[:encodings]:
            n = arr.size - 3 * width
            if n <= 0:
                continue
            # Every position's key at once; only positions whose key starts some needle are
            # compared in full (a few per kilobyte of text, almost none in random bytes).
            window = (arr[:n].astype(np.uint32) | arr[width : width + n].astype(np.uint32) << 8
                      | arr[2 * width : 2 * width + n].astype(np.uint32) << 16
                      | arr[3 * width : 3 * width + n].astype(np.uint32) << 24)  # fmt: skip
            for pos in np.flatnonzero(np.isin(window, keys)).tolist():
                for needle, encoded in table[int(window[pos])]:
                    if (needle, encoding) in hits or not data.startswith(encoded, pos):
                        continue
                    if needle.token_only and (
                        random_block[pos // ENTROPY_BLOCK]
                        or not self._stands_alone(data, pos, len(encoded), width, encoding)
                    ):
                        continue
                    hits[(needle, encoding)] = Hit(needle, source, pos, encoding)
        return list(hits.values())

    @staticmethod
    def _stands_alone(data: bytes, pos: int, size: int, width: int, encoding: str) -> bool:
        def is_word(unit: bytes) -> bool:
            if len(unit) < width:
                return False  # the edge of the data
            if width == 1:
                return unit.isalnum() or unit[0] >= 0x80  # a byte of a non-ASCII letter
            try:
                return unit.decode(encoding).isalnum()
            except UnicodeDecodeError:
                return False

        return not is_word(data[pos - width : pos] if pos >= width else b"") and not is_word(
            data[pos + size : pos + size + width]
        )


def partner_needles(encoded: Encoded) -> list[Needle]:
    """Every identifier value (raw and standardised) and local ID of the partner CSVs."""
    found: dict[str, Needle] = {}

    def add(kind: str, value: str) -> None:
        value = value.strip()
        if (len(value) >= MIN_CHARS and value.lower() not in found
                and value.lower() not in UNIT_VOCABULARY):  # fmt: skip
            found[value.lower()] = Needle(kind, value, value.lower())

    for partner in encoded.partners.values():
        with partner.csv.open(newline="", encoding="utf-8") as fh:
            for row in csv.DictReader(fh):
                add("local_id", row["local_id"])
                for column, standardiser in IDENTIFIER_COLUMNS.items():
                    raw = row[column]
                    add(column, raw)
                    # A value the standardiser rejects is rejected by the encoder too: no
                    # form of it is encoded.
                    with suppress(ValueError):
                        add(f"{column} (standardised)", STANDARDISERS[standardiser](raw))
    add("secret", encoded.secret.value)
    return list(found.values())


# ------------------------------------------------------------------------- what the unit wrote


def data_folder_hits(scanner: Scanner, data_dir: Path) -> tuple[list[Hit], list[Path]]:
    """Scan every file under the data folder; returns the hits and the files scanned."""
    files = sorted(p for p in data_dir.rglob("*") if p.is_file())
    hits: list[Hit] = []
    for path in files:
        hits += scanner.scan_bytes(f"file {path.relative_to(data_dir)}", path.read_bytes())
    return hits, files


def _cell_hits(scanner: Scanner, source: str, cell: Any) -> list[Hit]:
    if cell is None:
        return []
    if isinstance(cell, bytes | bytearray | memoryview):
        return scanner.scan_bytes(source, bytes(cell))
    return scanner.scan_text(source, str(cell))


def database_hits(scanner: Scanner, database_url: str | None,
                  data_dir: Path) -> tuple[list[Hit], int]:  # fmt: skip
    """Dump every cell of every table, each as text (bytes as bytes); returns hits and cells."""
    hits: list[Hit] = []
    cells = 0
    if database_url is None:
        uri = f"file:{data_dir / 'unit.db'}?mode=ro"
        with closing(sqlite3.connect(uri, uri=True)) as conn:
            tables = [r[0] for r in conn.execute(
                "SELECT name FROM sqlite_master WHERE type = 'table'")]  # fmt: skip
            for table in tables:
                for i, row in enumerate(conn.execute(f'SELECT * FROM "{table}"')):
                    for j, cell in enumerate(row):
                        cells += 1
                        hits += _cell_hits(scanner, f"table {table} row {i} column {j}", cell)
        return hits, cells
    url = database_url.replace("postgresql+psycopg://", "postgresql://")
    with psycopg.connect(url) as conn:
        tables = [(s, t) for s, t in conn.execute(
            "SELECT table_schema, table_name FROM information_schema.tables WHERE "
            "table_type = 'BASE TABLE' AND table_schema NOT IN ('pg_catalog', "
            "'information_schema')")]  # fmt: skip
        for schema, table in tables:
            cursor = conn.execute(f'SELECT * FROM "{schema}"."{table}"')
            names = [c.name for c in cursor.description or []]
            for i, row in enumerate(cursor):
                for name, cell in zip(names, row, strict=True):
                    cells += 1
                    hits += _cell_hits(scanner, f"table {table} row {i} column {name}", cell)
    return hits, cells


@dataclass
class CapturedLogs:
    """The unit's log records, written to a file by handlers on its loggers."""

    path: Path

    def text(self) -> str:
        return self.path.read_text("utf-8") if self.path.exists() else ""


@pytest.fixture
def unit_logs(tmp_path: Path) -> Iterator[CapturedLogs]:
    """Every record of the ``pacelink`` and ``uvicorn`` loggers, at DEBUG, to a file.

    Attach after the unit has started: uvicorn configures its loggers when it starts and
    would drop a handler added before.
    """
    path = tmp_path / "logs" / "unit.log"
    path.parent.mkdir()
    handler = logging.FileHandler(path, encoding="utf-8")
    handler.setFormatter(logging.Formatter("%(asctime)s %(name)s %(levelname)s %(message)s"))
    saved = []
    for name in LOGGERS:
        logger = logging.getLogger(name)
        saved.append((logger, logger.level))
        logger.addHandler(handler)
        logger.setLevel(logging.DEBUG)
    try:
        yield CapturedLogs(path)
    finally:
        for logger, level in saved:
            logger.removeHandler(handler)
            logger.setLevel(level)
        handler.close()


# ------------------------------------------------------------------------------------ tests


def test_scanner_finds_planted_values(tmp_path: Path, encoded: Encoded) -> None:
    """The scanner finds values planted the ways a leak could look, and ignores chance."""
    needles = partner_needles(encoded)
    scanner = Scanner(needles)
    by_kind = {n.kind: n for n in needles}
    surname = next(n for n in needles if n.kind == "surname" and len(n.text) >= TOKEN_ONLY_BELOW)
    short = next(n for n in needles if n.kind == "given_name" and len(n.text) == MIN_CHARS)
    local_id, secret = by_kind["local_id"], by_kind["secret"]
    rng = np.random.default_rng(7)
    folder = tmp_path / "planted"
    folder.mkdir()
    (folder / "log.txt").write_text(f"run failed for {surname.original.upper()}\n", "utf-8")
    noise = rng.integers(0, 256, 8192, dtype=np.uint8).tobytes()
    (folder / "blob.bin").write_bytes(noise[:5000] + secret.original.encode() + noise[5000:])
    np.save(folder / "ids.npy", np.array(["x" * 32, local_id.original], dtype="<U32"))
    hits, files = data_folder_hits(scanner, folder)
    assert len(files) == 3
    found = {(h.needle, h.source) for h in hits}
    assert (surname, "file log.txt") in found
    assert (secret, "file blob.bin") in found
    assert any(h.needle == local_id and h.encoding == "utf-32-le" for h in hits)
    # A database cell: the dump reads every table (this one is not the unit's).
    (tmp_path / "db").mkdir()
    with closing(sqlite3.connect(tmp_path / "db" / "unit.db")) as conn:
        conn.execute("CREATE TABLE t (a TEXT, b BLOB)")
        conn.execute("INSERT INTO t VALUES (?, ?)", (f'{{"name": "{short.original}"}}', b"\0"))
        conn.commit()
    db_hits, cells = database_hits(scanner, None, tmp_path / "db")
    assert cells == 2
    assert [h.needle for h in db_hits] == [short]
    # Chance is not a leak: a short value inside a longer word, or amid random bytes.
    assert scanner.scan_text("word", f"x{short.text}x") == []
    assert scanner.scan_bytes("random", noise[:4000] + short.text.encode() + noise[4000:]) == []


@pytest.mark.slow
def test_nothing_the_unit_wrote_holds_identifiers(
    unit: EmbeddedUnit, unit_logs: CapturedLogs, encoded: Encoded,
    capfd: pytest.CaptureFixture[str],
) -> None:  # fmt: skip
    """A whole project's flow leaves no identifier, local ID, secret or token in the unit."""
    with UnitClient(unit.url, unit.admin_token) as admin:
        created = admin.create_project(project_body(encoded.schema, policy=POLICY))
        project = created["project_id"]
        tokens: dict[str, str] = created["parties"]
        for name in PARTNERS:
            with UnitClient(unit.url, tokens[name]) as party:
                party.upload(project, encoded.partners[name].plk)
        run = admin.wait(project, admin.start_run(project)["id"], poll=0.05, timeout=120)
        assert run["status"] == "done", run["error"]
        responses = {"scores": str(admin.scores(project))}
        for name in PARTNERS:
            with UnitClient(unit.url, tokens[name]) as party:
                if name != "council":
                    responses[f"{name} mapping"] = party.mapping(project)
                responses[f"{name} counts"] = str(party.counts(project))
        with UnitClient(unit.url, tokens["skills_agency"]) as party:
            responses["skills_agency flags"] = party.flags(project, "benefits_dept")
        responses["audit"] = str(admin.audit(project))
        assert admin.verify_audit()["ok"]

    needles = partner_needles(encoded)
    needles += [Needle("token", "admin token", unit.admin_token.lower())]
    needles += [Needle("token", f"{n}'s token", t.lower()) for n, t in tokens.items()]
    scanner = Scanner(needles)
    data_dir = unit.settings.data_dir
    hits, files = data_folder_hits(scanner, data_dir)
    db_hits, cells = database_hits(scanner, unit.settings.database_url, data_dir)
    log_text = unit_logs.text()
    printed = capfd.readouterr()
    hits += db_hits
    hits += scanner.scan_text("the unit's log", log_text)
    hits += scanner.scan_text("stdout", printed.out) + scanner.scan_text("stderr", printed.err)
    for what, body in responses.items():
        hits += scanner.scan_text(f"release {what}", body)

    # The scan covered what it had to: the stored encodings (in the entity index once a
    # run has linked the uploads) and row keys, the run's results, the database (its file
    # and WAL on SQLite), the tables, the worker's log.
    names = {p.relative_to(data_dir).as_posix() for p in files}
    assert sum(n.endswith(".keys.npy") for n in names) == len(PARTNERS)
    assert any(n.endswith("/bits.npy") for n in names)
    assert any("/ids/" in n for n in names)
    if unit.settings.database_url is None:
        assert {"unit.db", "unit.db-wal"} <= names
    assert cells > 100
    assert "claimed run" in log_text
    assert len(needles) > 10_000
    # ... and the needles do match the partners' data the way it is written there.
    own = tuple(scanner.scan_bytes("keys", p.keys.read_bytes()) for p in encoded.partners.values())
    assert all(own)
    assert hits == [], "\n".join(str(h) for h in hits[:50])
