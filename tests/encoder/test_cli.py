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


def _encode_args(src: Path, out: Path, secret_file: Path, *extra: str) -> list[str]:
    return ["encode", str(src), "--schema", "pace-default", "--secret-file", str(secret_file),
            "--out", str(out), "--workers", "1", *extra]  # fmt: skip


def test_headerless_file_fails_without_echoing_a_client(tmp_path: Path, secret_file: Path) -> None:
    client = ["C90017", "Seonaidh", "MacGillivray", "12/03/1985", "Male", "EH11 1AA", "Yes"]
    src = tmp_path / "noheader.csv"
    src.write_text(",".join(client) + "\n" + ",".join(ROWS[0]) + "\n")
    for extra in ([], ["--id-column", "client_ref"], ["--consent-column", "consent"]):
        result = runner.invoke(app, _encode_args(src, tmp_path / "o.plk", secret_file, *extra))
        assert result.exit_code == 2, result.output
        assert "looks like data, not a header" in " ".join(result.output.split())
        for value in client:
            assert value not in result.output


def test_invalid_date_format_is_refused_before_reading(tmp_path: Path, secret_file: Path) -> None:
    absent = tmp_path / "not-yet-there.csv"  # the format is checked first
    result = runner.invoke(app, _encode_args(absent, tmp_path / "o.plk", secret_file,
                                             "--date-format", "%Q"))  # fmt: skip
    assert result.exit_code == 2
    assert "--date-format '%Q': unknown directive %Q" in " ".join(result.output.split())


def test_swapped_columns_fail_the_run(tmp_path: Path, secret_file: Path) -> None:
    rows = [[f"K{i}", "Ann", "Lee", "EH1 1AA", "F", f"{1 + i % 28:02d}/03/1985", "Y"]
            for i in range(20)]  # fmt: skip
    src = _write_csv(tmp_path / "swap.csv", rows)
    out = tmp_path / "s.plk"
    args = _encode_args(src, out, secret_file, "--id-column", "client_ref",
                        "--report", str(tmp_path / "r.json"))  # fmt: skip
    result = runner.invoke(app, args)
    assert result.exit_code == 2, result.output
    text = " ".join(result.output.split())
    assert "20 of 20 records with consent were rejected (100%)" in text
    assert "EH1 1AA" not in text
    assert sorted(p.name for p in tmp_path.iterdir()) == ["partnership.key", "swap.csv"]
    assert runner.invoke(app, [*args, "--max-reject-rate", "2"]).exit_code == 2
    result = runner.invoke(app, [*args, "--max-reject-rate", "1"])
    assert result.exit_code == 0, result.output
    assert "rejected" in result.output and "100.0% of those with consent" in result.output
    shown = runner.invoke(app, ["inspect", str(out)])
    assert "records in (input file)" in shown.output and "100.0%" in shown.output


def test_outputs_are_not_overwritten_without_force(tmp_path: Path, secret_file: Path) -> None:
    src = _write_csv(tmp_path / "clients.csv", ROWS)
    report = tmp_path / "sds.report.json"
    args = _encode_args(src, tmp_path / "sds.plk", secret_file, "--id-column", "client_ref",
                        "--consent-column", "consent", "--report", str(report))  # fmt: skip
    assert runner.invoke(app, args).exit_code == 0
    before = {p.name: p.read_bytes() for p in tmp_path.iterdir()}
    result = runner.invoke(app, args)
    assert result.exit_code == 2
    assert "sds.report.json already exists" in " ".join(result.output.split())
    report.unlink()
    result = runner.invoke(app, args)
    assert result.exit_code == 2
    assert "sds.plk already exists; refusing to overwrite it" in " ".join(result.output.split())
    assert not report.exists()
    report.write_bytes(before[report.name])
    assert {p.name: p.read_bytes() for p in tmp_path.iterdir()} == before
    assert runner.invoke(app, [*args, "--force"]).exit_code == 0


def test_title_row_xlsx_with_skip_rows(tmp_path: Path, secret_file: Path) -> None:
    import openpyxl

    book = openpyxl.Workbook()
    book.active.append(["Clients, November 2026"])
    book.active.append(["client_ref", "given_name", "surname", "date_of_birth", "sex",
                        "postcode", "consent"])  # fmt: skip
    for row in ROWS:
        book.active.append(row)
    src = tmp_path / "clients.xlsx"
    book.save(src)
    args = _encode_args(src, tmp_path / "x.plk", secret_file, "--id-column", "client_ref",
                        "--consent-column", "consent")  # fmt: skip
    result = runner.invoke(app, args)
    assert result.exit_code == 2 and "--skip-rows 1" in result.output
    result = runner.invoke(app, [*args, "--skip-rows", "1"])
    assert result.exit_code == 0, result.output


def test_secret_file_readable_by_others_is_refused(tmp_path: Path, secret_file: Path) -> None:
    secret_file.chmod(0o644)
    src = _write_csv(tmp_path / "clients.csv", ROWS)
    result = runner.invoke(app, _encode_args(src, tmp_path / "o.plk", secret_file))
    assert result.exit_code == 2
    assert f"chmod 600 {secret_file}" in " ".join(result.output.split())
    assert not (tmp_path / "o.plk").exists()


def test_keygen_loads_no_plugin(tmp_path: Path) -> None:
    """Plug-in commands are imported when used: `pacelink keygen` loads no linkage unit."""
    code = (
        "import sys\n"
        "from encoder.cli import main\n"
        f"sys.argv = ['pacelink', 'keygen', '--out', {str(tmp_path / 'k')!r}]\n"
        "try:\n"
        "    main()\n"
        "except SystemExit:\n"
        "    pass\n"
        "assert not [m for m in sys.modules if m.startswith('linkage_unit')]\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
