"""The `pacelink` CLI: partner commands, exit codes, messages, no tracebacks, no secrets in argv."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from pathlib import Path

from typer.testing import CliRunner

from encoder.cli import app
from tests.encoder.test_encode import ROWS, _write_csv

runner = CliRunner()


def test_keygen_encode_inspect(tmp_path: Path, secret_file: Path) -> None:
    key = tmp_path / "new.key"
    result = runner.invoke(app, ["keygen", "--out", str(key)])
    assert result.exit_code == 0, result.output
    assert stat.S_IMODE(key.stat().st_mode) == 0o600
    assert runner.invoke(app, ["keygen", "--out", str(key)]).exit_code != 0

    src = _write_csv(tmp_path / "clients.csv", ROWS)
    report = tmp_path / "report.json"
    result = runner.invoke(app, [
        "encode", str(src), "--schema", "pace-default", "--secret-file", str(secret_file),
        "--out", str(tmp_path / "sds.plk"), "--id-column", "client_ref",
        "--consent-column", "consent", "--report", str(report), "--workers", "1",
    ])  # fmt: skip
    assert result.exit_code == 0, result.output
    data = json.loads(report.read_text())
    assert data["records_in"] == data["encoded"] + data["excluded_no_consent"] + data["rejected"]
    assert (data["encoded"], data["rejected"]) == (4, 3)
    assert (tmp_path / "sds.keys.csv").exists() and (tmp_path / "sds.rejects.csv").exists()

    shown = runner.invoke(app, ["inspect", str(tmp_path / "sds.plk")])
    assert shown.exit_code == 0, shown.output
    assert "field coverage" in shown.output and "popcount histogram" in shown.output
    as_json = runner.invoke(app, ["inspect", str(tmp_path / "sds.plk"), "--json"])
    assert json.loads(as_json.output)["record_count"] == 4


def test_failures_exit_non_zero_with_a_message(tmp_path: Path, secret_file: Path) -> None:
    src = _write_csv(tmp_path / "clients.csv", ROWS)
    base = ["encode", str(src), "--schema", "pace-default", "--out", str(tmp_path / "o.plk")]
    cases = {
        "no secret given": base,
        "column(s) not found": [*base, "--secret-file", str(secret_file), "--column",
                                "given_name=Forename"],
        "expected FEATURE=COLUMN": [*base, "--secret-file", str(secret_file), "--column", "x"],
        "no such schema file": ["encode", str(src), "--schema", str(tmp_path / "none.json"),
                                "--secret-file", str(secret_file), "--out", "o.plk"],
        "no such file": ["encode", str(tmp_path / "absent.csv"), "--schema", "pace-default",
                         "--secret-file", str(secret_file), "--out", str(tmp_path / "o.plk")],
        "bad magic": ["inspect", str(src)],
    }  # fmt: skip
    env = {k: v for k, v in os.environ.items() if k != "PACELINK_SECRET"}
    for expected, args in cases.items():
        result = runner.invoke(app, args, env=env)
        assert result.exit_code != 0, (expected, result.output)
        assert expected in " ".join(result.output.split()), (expected, result.output)
        assert "Traceback" not in result.output


def test_validate_schema(tmp_path: Path) -> None:
    ok = runner.invoke(app, ["validate-schema", "pace-default"])
    assert ok.exit_code == 0 and "fingerprint sha256:" in ok.output
    bad = tmp_path / "s.json"
    bad.write_text('{"version": 3, "clkConfig": {"kdf": {"type": "HKDF"}}, "features": []}')
    result = runner.invoke(app, ["validate-schema", str(bad)])
    assert result.exit_code == 2 and "$.clkConfig" in result.output


def test_console_script_runs_without_traceback(tmp_path: Path) -> None:
    """The installed entry point, as a partner runs it, in a real process."""
    exe = Path(sys.executable).with_name("pacelink")
    done = subprocess.run([str(exe), "inspect", str(tmp_path / "missing.plk")],
                          capture_output=True, text=True, check=False)  # fmt: skip
    assert done.returncode == 2
    assert "missing.plk" in done.stderr and "Traceback" not in done.stderr
    version = subprocess.run([str(exe), "--version"], capture_output=True, text=True, check=True)
    assert version.stdout.startswith("pacelink ")
