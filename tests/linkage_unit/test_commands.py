"""The operator's and partners' commands against a running unit, and `pacelink serve`."""

from __future__ import annotations

import csv
import datetime as dt
import io
import ipaddress
import json
import os
import re
import socket
import ssl
import stat
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import pytest
from typer.testing import CliRunner

from encoder.cli import app, load_plugins
from linkage_unit.embedded import EmbeddedUnit
from tests.linkage_unit.conftest import PARTNERS, Encoded

load_plugins()
runner = CliRunner()
LOOPBACK = ipaddress.ip_address("127.0.0.1")


@pytest.fixture
def sqlite_unit(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):  # type: ignore[no-untyped-def]
    with EmbeddedUnit(tmp_path / "unit", heartbeat_seconds=0.2, poll_seconds=0.05) as unit:
        monkeypatch.setenv("PACELINK_ADMIN_TOKEN", unit.admin_token)
        yield unit


def _ok(*args: str) -> str:
    result = runner.invoke(app, list(args))
    assert result.exit_code == 0, result.output
    return result.output


def test_partner_and_operator_commands(
    sqlite_unit: EmbeddedUnit, encoded: Encoded, tmp_path: Path
) -> None:
    url = sqlite_unit.url
    tokens_path = tmp_path / "tokens.json"
    args = ["unit", "project", "create", "--unit", url, "--name", "cli", "--purpose", "tests",
            "--out", str(tokens_path), "--threshold", "0.8"]  # fmt: skip
    for name in PARTNERS:
        args += ["--party", name]
    _ok(*args)
    assert stat.S_IMODE(tokens_path.stat().st_mode) == 0o600
    tokens = json.loads(tokens_path.read_text())
    project = tokens["project_id"]
    assert set(tokens["parties"]) == set(PARTNERS)
    again = runner.invoke(app, args)
    assert again.exit_code != 0 and "already exists" in again.output

    token_files = {}
    for name in PARTNERS:
        token_files[name] = tmp_path / f"{name}.token"
        token_files[name].write_text(tokens["parties"][name] + "\n")
        token_files[name].chmod(0o600)  # a token file others can read is refused
        _ok("upload", str(encoded.partners[name].plk), "--unit", url, "--project", project,
            "--token-file", str(token_files[name]))  # fmt: skip

    output = _ok("unit", "run", "--unit", url, "--project", project, "--wait")
    assert "done" in output and "0.8000 (fixed)" in output
    status = _ok("unit", "status", "--unit", url, "--project", project)
    assert "council" in status and "snapshot" in status  # a first upload, unsaid
    wrong_kind = runner.invoke(app, [
        "upload", str(encoded.partners["council"].plk), "--unit", url, "--project", project,
        "--token-file", str(token_files["council"]), "--as", "everything"])  # fmt: skip
    assert wrong_kind.exit_code != 0 and "expected snapshot or delta" in wrong_kind.output
    assert "pairs nearest the threshold" in _ok("unit", "scores", "--unit", url,
                                                "--project", project)  # fmt: skip

    skills = encoded.partners["skills_agency"]
    mapping = tmp_path / "mapping.csv"
    _ok("results", "--unit", url, "--project", project, "--token-file",
        str(token_files["skills_agency"]), "--keys", str(skills.keys),
        "--out", str(mapping))  # fmt: skip
    assert stat.S_IMODE(mapping.stat().st_mode) == 0o600
    with mapping.open(newline="") as fh:
        got = list(csv.DictReader(fh))
    with skills.keys.open(newline="") as fh:
        local = [r["local_id"] for r in csv.DictReader(fh)]
    assert [r["local_id"] for r in got] == local
    assert all(len(r["linkage_id"]) == 32 for r in got)

    counts = tmp_path / "counts.json"
    output = _ok("results", "--unit", url, "--project", project, "--release", "counts",
                 "--token-file", str(token_files["council"]), "--out", str(counts))  # fmt: skip
    assert "overlap counts" in output
    assert json.loads(counts.read_text())["min_count"] == 10

    refused = runner.invoke(app, [
        "results", "--unit", url, "--project", project, "--release", "flags:council",
        "--token-file", str(token_files["skills_agency"]), "--keys", str(skills.keys),
        "--out", str(tmp_path / "flags.csv")])  # fmt: skip
    assert refused.exit_code != 0
    assert "does not release 'flags:council'" in refused.output
    assert not (tmp_path / "flags.csv").exists()

    wrong_keys = runner.invoke(app, [
        "results", "--unit", url, "--project", project, "--token-file",
        str(token_files["skills_agency"]), "--keys", str(encoded.partners["council"].keys),
        "--out", str(tmp_path / "m2.csv")])  # fmt: skip
    assert wrong_keys.exit_code != 0 and "has not been uploaded" in wrong_keys.output

    assert "audit log intact" in _ok("unit", "audit", "verify", "--data-dir",
                                     str(sqlite_unit.settings.data_dir))  # fmt: skip
    assert "audit log intact" in _ok("unit", "audit", "verify", "--unit", url)
    shown = _ok("unit", "audit", "show", "--unit", url, "--project", project, "--json")
    actions = [e["action"] for e in json.loads(shown)]
    assert actions[0] == "project.created" and "release.mapping" in actions

    _ok("unit", "project", "delete", "--unit", url, "--project", project, "--yes")
    gone = runner.invoke(app, ["unit", "project", "show", "--unit", url, "--project", project])
    assert gone.exit_code != 0 and "HTTP 404" in gone.output


def test_commands_need_tokens(
    sqlite_unit: EmbeddedUnit, encoded: Encoded, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("PACELINK_TOKEN", raising=False)
    result = runner.invoke(app, ["upload", str(encoded.partners["council"].plk), "--unit",
                                 sqlite_unit.url, "--project", "x"])  # fmt: skip
    assert result.exit_code != 0 and "no party token" in result.output
    monkeypatch.setenv("PACELINK_TOKEN", "not-a-real-token")
    result = runner.invoke(app, ["upload", str(encoded.partners["council"].plk), "--unit",
                                 sqlite_unit.url, "--project", "x"])  # fmt: skip
    assert result.exit_code != 0 and "invalid token" in result.output
    monkeypatch.setenv("PACELINK_ADMIN_TOKEN", "changeme")
    result = runner.invoke(app, ["unit", "status", "--unit", sqlite_unit.url, "--project", "x"])
    assert result.exit_code != 0 and "placeholder" in result.output


def test_demo_links_three_partners(tmp_path: Path) -> None:
    result = runner.invoke(app, ["demo", "--workdir", str(tmp_path)])
    assert result.exit_code == 0, result.output
    assert "Match quality" in result.output and "audit log" in result.output
    assert "A quarter later" in result.output and "in no release" in result.output
    from rich.console import Console

    from linkage_unit.demo import run_demo

    assert "web console:" in result.output and "--keep-running" in result.output
    # With --keep-running the demo's unit stays up for its console until stopped.
    sink = io.StringIO()
    stop = threading.Event()
    seen: dict[str, int] = {}

    def visit() -> None:
        deadline = time.monotonic() + 300
        while "press Ctrl-C" not in sink.getvalue() and time.monotonic() < deadline:
            time.sleep(0.2)
        url = re.search(r"open (http://\S+/console/) in a browser", sink.getvalue())
        token = re.search(r"operator\s*│\s*([0-9a-f]{64})", sink.getvalue())
        if url and token:
            page = httpx.get(url.group(1), headers={"Authorization": f"Bearer {token.group(1)}"})
            seen["status"] = page.status_code
            seen["projects"] = page.text.count("PACE demo")
        stop.set()

    visitor = threading.Thread(target=visit)
    visitor.start()
    measured = run_demo(tmp_path / "again", Console(file=sink, width=200), keep_running=True,
                        stop=stop)  # fmt: skip
    visitor.join()
    assert seen == {"status": 200, "projects": 1}, sink.getvalue()[-2000:]
    assert measured.audit_ok
    assert measured.precision > 0.97 and measured.recall > 0.85, measured
    # The quarter after: the movers keep their IDs, the withdrawn client is released no more.
    assert measured.movers == 3 and measured.movers_kept == 3, measured
    assert measured.withdrawn_gone


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _self_signed(folder: Path) -> tuple[Path, Path]:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = dt.datetime.now(dt.UTC)

    cert = (
        x509.CertificateBuilder().subject_name(name).issuer_name(name)
        .public_key(key.public_key()).serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=1)).not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.IPAddress(LOOPBACK)]), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )  # fmt: skip
    cert_path, key_path = folder / "cert.pem", folder / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                           serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))  # fmt: skip
    return cert_path, key_path


def test_serve_refuses_without_admin_token(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k != "PACELINK_ADMIN_TOKEN"}
    done = subprocess.run(
        [sys.executable, "-m", "encoder", "unit", "serve", "--data-dir", str(tmp_path / "d")],
        env=env, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert done.returncode != 0
    assert "PACELINK_ADMIN_TOKEN is not set" in done.stderr


def test_serve_over_tls_with_its_worker(tmp_path: Path) -> None:
    cert, key = _self_signed(tmp_path)
    port = _free_port()
    token = os.urandom(24).hex()
    env = {**os.environ, "PACELINK_ADMIN_TOKEN": token}
    server = subprocess.Popen(
        [sys.executable, "-m", "encoder", "unit", "serve", "--data-dir", str(tmp_path / "d"),
         "--port", str(port), "--ssl-certfile", str(cert), "--ssl-keyfile", str(key)],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    trust = ssl.create_default_context(cafile=str(cert))
    try:
        url = f"https://127.0.0.1:{port}"
        deadline = time.monotonic() + 60
        while True:
            try:
                response = httpx.get(f"{url}/health", verify=trust)
                break
            except httpx.TransportError:
                assert server.poll() is None, server.stdout.read() if server.stdout else ""
                assert time.monotonic() < deadline, "the unit did not start"
                time.sleep(0.2)
        assert response.json() == {"status": "ok"}
        assert httpx.get(f"{url}/docs", verify=trust).status_code == 200
        paths = httpx.get(f"{url}/openapi.json", verify=trust).json()["paths"]
        assert "/projects/{project_id}/uploads" in paths
        with pytest.raises(httpx.ConnectError):  # the certificate is not trusted by default
            httpx.get(f"{url}/health")
        listed = httpx.get(f"{url}/projects", verify=trust,
                           headers={"Authorization": f"Bearer {token}"})  # fmt: skip
        assert listed.status_code == 200 and listed.json() == []
        # serve started one worker process beside itself
        children = subprocess.run(["pgrep", "-P", str(server.pid), "-f", "unit worker"],
                                  capture_output=True, text=True, check=False)  # fmt: skip
        workers = [int(pid) for pid in children.stdout.split()]
        assert workers, "no worker process"
    finally:
        server.terminate()
        server.wait(timeout=60)
        if server.stdout is not None:
            server.stdout.close()
    # Its workers go with it (they watch their parent).
    deadline = time.monotonic() + 30
    while any(_alive(pid) for pid in workers):
        assert time.monotonic() < deadline, "worker outlived `pacelink unit serve`"
        time.sleep(0.2)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie has ended; only its parent (gone) would reap it.
    try:
        status = Path(f"/proc/{pid}/stat").read_text().split()[2]
    except FileNotFoundError:
        return False
    return status != "Z"
