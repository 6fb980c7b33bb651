"""`pacelink results` and operator commands on the client side.

They cover token files, the key map join and untrusted answers from the unit.

The partner does not have to trust the unit's answer: a unit that is compromised (or a
proxy in between) could send a "linkage ID" that is a spreadsheet formula. These tests
stand up a small HTTP server on loopback that answers as such a unit would.
"""

from __future__ import annotations

import copy
import csv
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from encoder.cli import app, load_plugins
from encoder.encode import EncodeOptions, encode_file
from encoder.keymap import DECOY_LOCAL_ID, read_key_map, spreadsheet_safe
from encoder.keys import Secret
from encoder.schema import load_schema, parse_schema
from tests.conftest import TEST_SECRET

load_plugins()
runner = CliRunner()
IDS = ['=HYPERLINK("http://x")', "-5", "@SUM(A1)", "'quoted", "plain-7"]


class _Unit:
    """A loopback server that answers the mapping release with the rows it is given."""

    def __init__(self) -> None:
        self.mapping = ""
        unit = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                body = unit.mapping.encode()
                self.send_response(200)
                self.send_header("Content-Type", "text/csv")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: object) -> None:  # keep pytest's output clean
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"


@pytest.fixture
def fake_unit() -> Iterator[_Unit]:
    unit = _Unit()
    thread = threading.Thread(target=unit.server.serve_forever, daemon=True)
    thread.start()
    try:
        yield unit
    finally:
        unit.server.shutdown()
        unit.server.server_close()


@pytest.fixture
def partner(tmp_path: Path) -> tuple[Path, Path]:
    """A key map of local IDs that look like formulas, and a private token file."""
    source = tmp_path / "clients.csv"
    pd.DataFrame({
        "local_id": IDS,
        "given_name": ["ann", "bob", "cat", "dan", "eve"],
        "surname": ["smith", "jones", "brown", "black", "white"],
        "date_of_birth": ["1980-01-02", "1981-02-03", "1982-03-04", "1983-04-05", "1984-05-06"],
        "sex": ["f", "m", "f", "m", "f"],
        "postcode": ["EH1 1AA", "G1 1AA", "DD1 1AA", "AB10 1AA", "KY1 1AA"],
    }).to_csv(source, index=False)  # fmt: skip
    out = tmp_path / "clients.plk"
    encode_file(source, load_schema("pace-default"), Secret(TEST_SECRET), out,
                EncodeOptions(id_column="local_id", workers=1))  # fmt: skip
    token = tmp_path / "party.token"
    token.write_text("a" * 64 + "\n")
    token.chmod(0o600)
    return tmp_path / "clients.keys.csv", token


def _results(unit: _Unit, keys: Path, token: Path, out: Path) -> tuple[int, str]:
    result = runner.invoke(app, [
        "results", "--unit", unit.url, "--project", "p", "--upload", "u",
        "--token-file", str(token), "--keys", str(keys), "--out", str(out),
    ])  # fmt: skip
    return result.exit_code, result.output


def test_mapping_is_spreadsheet_safe_and_joined_to_the_original_ids(
    fake_unit: _Unit, partner: tuple[Path, Path], tmp_path: Path
) -> None:
    keys, token = partner
    assert read_key_map(keys) == IDS  # the key map gives back the IDs as they were
    fake_unit.mapping = "upload_id,row,linkage_id\n" + "".join(
        f"u,{n},{n:032x}\n" for n in range(len(IDS))
    )
    out = tmp_path / "mapping.csv"
    code, output = _results(fake_unit, keys, token, out)
    assert code == 0, output
    with out.open(newline="") as fh:
        rows = list(csv.DictReader(fh))
    shown = [r["local_id"] for r in rows]
    # What a spreadsheet would run is written as text; plain numbers and names stay as they are.
    assert shown == ['\'=HYPERLINK("http://x")', "-5", "'@SUM(A1)", "''quoted", "plain-7"]
    assert [r["linkage_id"] for r in rows] == [f"{n:032x}" for n in range(len(IDS))]


def test_decoy_rows_are_left_out_of_the_join(
    fake_unit: _Unit, tmp_path: Path, partner: tuple[Path, Path]
) -> None:
    """With decoys, the unit's answer has their rows too; the mapping has the partner's only.

    The unit cannot tell the decoys apart; withdrawn records are counted without them.
    """
    _, token = partner
    schema = load_schema("pace-default")
    doc = copy.deepcopy(schema.raw) | {"hardening": {"decoys": 0.5}}
    people = pd.read_csv(tmp_path / "clients.csv", dtype=str)
    source = tmp_path / "decoyed.csv"
    people.to_csv(source, index=False)
    report = encode_file(source, parse_schema(doc), Secret(TEST_SECRET),
                         tmp_path / "decoyed.plk", EncodeOptions(id_column="local_id"))  # fmt: skip
    keys = tmp_path / "decoyed.keys.csv"
    local = read_key_map(keys)
    assert report.decoys == 3 and len(local) == 8 and local.count(DECOY_LOCAL_ID) == 3
    assert [i for i in local if i] == IDS
    kept = [row for row in range(len(local)) if row != local.index(IDS[1])]  # one withdrawn
    fake_unit.mapping = "upload_id,row,linkage_id\n" + "".join(f"u,{n},{n:032x}\n" for n in kept)
    out = tmp_path / "mapping.csv"
    code, output = _results(fake_unit, keys, token, out)
    assert code == 0, output
    with out.open(newline="") as fh:
        rows = list(csv.DictReader(fh))
    expected = [(spreadsheet_safe(local[n]), f"{n:032x}") for n in kept if local[n]]
    assert [(r["local_id"], r["linkage_id"]) for r in rows] == expected
    said = " ".join(output.split())  # rich wraps long lines
    assert len(rows) == 4 and "wrote 4 rows" in said
    assert "(1 of the key map's records were withdrawn since)" in said


@pytest.mark.parametrize("bad", ['=HYPERLINK("http://evil")', "", "zz" * 16])
def test_a_malformed_answer_from_the_unit_is_refused(
    fake_unit: _Unit, partner: tuple[Path, Path], tmp_path: Path, bad: str
) -> None:
    keys, token = partner
    fake_unit.mapping = "upload_id,row,linkage_id\n" + "".join(
        f"u,{n},{bad if n == 2 else format(n, '032x')}\n" for n in range(len(IDS))
    )
    out = tmp_path / "mapping.csv"
    code, output = _results(fake_unit, keys, token, out)
    assert code != 0
    assert "malformed linkage_id at row 2" in output
    assert "evil" not in output
    assert not out.exists()


def test_a_token_file_others_can_read_is_refused(
    fake_unit: _Unit, partner: tuple[Path, Path], tmp_path: Path
) -> None:
    keys, token = partner
    token.chmod(0o644)
    code, output = _results(fake_unit, keys, token, tmp_path / "mapping.csv")
    assert code != 0
    assert "readable or writable by other users" in output and "chmod 600" in output
    assert "a" * 64 not in output


def test_an_operator_command_without_the_admin_token_says_what_it_needs(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.delenv("PACELINK_ADMIN_TOKEN", raising=False)
    result = runner.invoke(app, [
        "unit", "project", "create", "--unit", "http://127.0.0.1:9", "--name", "n",
        "--purpose", "p", "--party", "a", "--party", "b", "--out", str(tmp_path / "t.json"),
    ])  # fmt: skip
    assert result.exit_code != 0
    assert "PACELINK_ADMIN_TOKEN is not set" in result.output
    assert "`pacelink unit project create` calls the linkage unit" in result.output
    assert "refuses to start" not in result.output  # that is the message for `unit serve`


def test_partner_commands_import_no_service() -> None:
    """`upload`, `withdraw` and `results` need the encoder and the HTTP client only."""
    code = (
        "import sys, linkage_unit.commands.partner\n"
        "banned = ('fastapi', 'starlette', 'uvicorn', 'sqlalchemy', 'dask', 'numba')\n"
        "bad = [m for m in sys.modules if m.split('.')[0] in banned]\n"
        "assert not bad, bad\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
