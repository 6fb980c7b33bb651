"""Service commands of the `pacelink` command line (registered as entry-point plug-ins).

Operator: `pacelink unit serve|worker|project|run|status|scores|audit`. Partner: `pacelink
upload` and `pacelink results`. Everyone: `pacelink demo`. Tokens are read from files or
the environment (`PACELINK_ADMIN_TOKEN`, `PACELINK_TOKEN`), never from the command line.
"""

from __future__ import annotations

import csv
import io
import json
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from encoder.cli import fail, user_errors
from linkage_unit.cli import parse_threshold
from linkage_unit.policy import WITHHELD

if TYPE_CHECKING:
    from linkage_unit.client import UnitClient

__all__ = ["demo", "results", "unit", "upload", "withdraw"]

err = Console(stderr=True)
out = Console()

unit = typer.Typer(help="Run and operate a linkage unit.", no_args_is_help=True)
project_app = typer.Typer(help="Create, show and delete projects.", no_args_is_help=True)
audit_app = typer.Typer(help="Read and verify the audit log.", no_args_is_help=True)
unit.add_typer(project_app, name="project")
unit.add_typer(audit_app, name="audit")

UnitUrl = Annotated[str, typer.Option("--unit", help="The linkage unit's URL.")]
ProjectId = Annotated[str, typer.Option("--project", help="The project's ID.")]
CaCert = Annotated[
    Path | None, typer.Option("--ca-cert", help="CA bundle to trust (self-signed unit).")
]
DataDir = Annotated[Path, typer.Option("--data-dir", help="The unit's data folder.")]
DatabaseUrl = Annotated[
    str | None,
    typer.Option("--database-url", help="SQLAlchemy URL (default: SQLite in the data folder)."),
]
Scheduler = Annotated[
    str | None,
    typer.Option(
        "--scheduler",
        help="Dask scheduler address (tcp://host:8786): runs compare "
        "on its workers, which must see the data folder. Default: PACELINK_SCHEDULER, "
        "else on this machine.",
    ),
]


# ---------------------------------------------------------------------------------- helpers


def _admin_token(command: str | None = None) -> str:
    """The admin token from the environment; `command` names the operator command that
    calls the unit with it (None: the unit itself is starting), so a refusal says why."""
    from linkage_unit.settings import AdminTokenError, check_admin_token

    try:
        return check_admin_token(os.environ.get("PACELINK_ADMIN_TOKEN"), for_command=command)
    except AdminTokenError as exc:
        fail(str(exc))


def _party_token(token_file: Path | None) -> str:
    from encoder.keys import SecretError, check_private_file

    if token_file is not None:
        try:
            with token_file.open(encoding="utf-8") as fh:
                # Whoever can read a party token can upload and fetch as that party.
                check_private_file(token_file, os.fstat(fh.fileno()).st_mode, "token file")
                token = fh.read().strip()
        except OSError as exc:
            fail(f"{token_file}: cannot read the token: {exc.strerror}")
        except SecretError as exc:
            fail(str(exc))
        if not token:
            fail(f"{token_file}: the token file is empty")
        return token
    token = os.environ.get("PACELINK_TOKEN", "").strip()
    if not token:
        fail("no party token: pass --token-file FILE or set PACELINK_TOKEN")
    return token


@contextmanager
def _client(url: str, token: str, ca_cert: Path | None) -> Iterator[UnitClient]:
    from linkage_unit.client import UnitClient, UnitError

    try:
        with UnitClient(url, token, verify=str(ca_cert) if ca_cert else True) as client:
            yield client
    except UnitError as exc:
        fail(str(exc))


def _settings(data_dir: Path, database_url: str | None, scheduler: str | None = None) -> Any:
    from pydantic import ValidationError

    from linkage_unit.settings import UnitSettings

    extra: dict[str, Any] = {} if scheduler is None else {"scheduler": scheduler}
    try:  # without --scheduler, PACELINK_SCHEDULER (or none)
        return UnitSettings(data_dir=data_dir, database_url=database_url, **extra)
    except ValidationError as exc:
        fail(f"settings: {exc.errors()[0]['loc'][0]}: {exc.errors()[0]['msg']}")


def _write_private(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` (mode 0600), whole or not at all."""
    from encoder.atomic import atomic_write

    if not path.parent.is_dir():
        fail(f"{path.parent}: output folder does not exist")
    with atomic_write(path) as fh:
        fh.write(text)


def _threshold(text: str | None) -> float | str | None:
    return None if text is None else parse_threshold(text)


# ---------------------------------------------------------------------------------- service


@unit.command()
def serve(
    data_dir: DataDir,
    host: Annotated[str, typer.Option(help="Interface to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port.")] = 8000,
    database_url: DatabaseUrl = None,
    workers: Annotated[int, typer.Option(min=0, help="Worker processes to start.")] = 1,
    ssl_certfile: Annotated[Path | None, typer.Option(help="TLS certificate (PEM).")] = None,
    ssl_keyfile: Annotated[Path | None, typer.Option(help="TLS private key (PEM).")] = None,
    ssl_ca_certs: Annotated[Path | None, typer.Option(help="CA bundle for clients.")] = None,
    scheduler: Scheduler = None,
) -> None:
    """Run the linkage unit's API, with worker processes (needs PACELINK_ADMIN_TOKEN)."""
    import logging

    import uvicorn
    from pydantic import SecretStr

    from linkage_unit.api import create_app

    token = _admin_token()
    os.umask(0o077)  # everything the unit writes is for its own eyes (salts, encodings)
    if (ssl_certfile is None) != (ssl_keyfile is None):
        fail("--ssl-certfile and --ssl-keyfile go together")
    settings = _settings(data_dir, database_url, scheduler)
    settings.admin_token = SecretStr(token)  # workers get no copy: they do not need it
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    app = create_app(settings)
    argv = [sys.executable, "-m", "encoder", "unit", "worker", "--data-dir", str(data_dir),
            "--parent-pid", str(os.getpid())]  # fmt: skip
    if database_url:
        argv += ["--database-url", database_url]
    if scheduler:
        argv += ["--scheduler", scheduler]
    env = {k: v for k, v in os.environ.items() if k != "PACELINK_ADMIN_TOKEN"}
    children = [subprocess.Popen(argv, env=env) for _ in range(workers)]
    scheme = "https" if ssl_certfile else "http"
    out.print(f"web console: {scheme}://{host}:{port}/console/ (sign in with the admin token "
              "or a party token)")  # fmt: skip
    try:
        uvicorn.run(
            app, host=host, port=port, log_level="info",
            ssl_certfile=str(ssl_certfile) if ssl_certfile else None,
            ssl_keyfile=str(ssl_keyfile) if ssl_keyfile else None,
            ssl_ca_certs=str(ssl_ca_certs) if ssl_ca_certs else None,
        )  # fmt: skip
    finally:
        for child in children:
            child.terminate()
        for child in children:
            child.wait(timeout=30)


@unit.command()
def worker(
    data_dir: DataDir,
    database_url: DatabaseUrl = None,
    parent_pid: Annotated[int | None, typer.Option(hidden=True)] = None,
    scheduler: Scheduler = None,
) -> None:
    """Run a worker: claims queued runs and executes them (any number may run)."""
    import logging
    import signal
    import threading

    from linkage_unit.jobs.worker import Worker

    os.umask(0o077)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    if parent_pid is not None:
        # Started by `serve`: stop when it is gone, however it ended (uvicorn re-raises
        # SIGTERM after shutting down, so serve cannot always stop its workers itself).
        def watch() -> None:
            while not stop.wait(1.0):
                if os.getppid() != parent_pid:
                    stop.set()

        threading.Thread(target=watch, daemon=True, name="parent-watch").start()
    Worker(_settings(data_dir, database_url, scheduler)).serve(stop)


# ---------------------------------------------------------------------------------- operator


@project_app.command("create")
def project_create(
    unit_url: UnitUrl,
    name: Annotated[str, typer.Option("--name", help="Project name.")],
    party: Annotated[list[str], typer.Option("--party", help="A party's name (repeat).")],
    out_path: Annotated[Path, typer.Option("--out", help="TOKENS.json to write (mode 0600).")],
    purpose: Annotated[str, typer.Option(help="Why the data are linked; shown in releases.")],
    schema: Annotated[str, typer.Option(help="Linkage schema file, or pace-default.")] = (
        "pace-default"
    ),
    policy: Annotated[Path | None, typer.Option(help="Sharing policy JSON file.")] = None,
    retention_days: Annotated[int, typer.Option(min=1, help="Days before purging.")] = 365,
    threshold: Annotated[str, typer.Option(help="Dice threshold or 'auto'.")] = "auto",
    duplicates: Annotated[
        str,
        typer.Option(
            help="A partner's duplicate clients: 'forbid' (one record per party per entity) "
            "or 'linked' (two records of one party share an entity when they match)."
        ),
    ] = "forbid",
    ca_cert: CaCert = None,
) -> None:
    """Create a project; writes each party's token to TOKENS.json (shown only once)."""
    if duplicates not in ("forbid", "linked"):
        fail(f"--duplicates {duplicates!r}: expected forbid or linked")
    from encoder.schema import load_schema

    try:
        schema_doc = load_schema(schema).raw
    except user_errors() as exc:
        fail(str(exc))
    body: dict[str, Any] = {
        "name": name, "purpose": purpose, "schema": schema_doc, "parties": party,
        "retention_days": retention_days, "threshold": _threshold(threshold),
        "duplicates": duplicates,
    }  # fmt: skip
    if policy is not None:
        try:
            body["policy"] = json.loads(policy.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError) as exc:
            fail(f"{policy}: cannot read the policy: {exc}")
    if out_path.exists():
        fail(f"{out_path}: already exists (tokens are shown once; not overwriting)")
    with _client(unit_url, _admin_token("pacelink unit project create"), ca_cert) as client:
        created = client.create_project(body)
    _write_private(out_path, json.dumps(
        {"project_id": created["project_id"], "parties": created["parties"]}, indent=2
    ) + "\n")  # fmt: skip
    out.print(f"project [bold]{created['project_id']}[/] created; party tokens in {out_path}")


@project_app.command("show")
def project_show(unit_url: UnitUrl, project: ProjectId, ca_cert: CaCert = None) -> None:
    """Show a project's settings and state."""
    with _client(unit_url, _admin_token("pacelink unit project show"), ca_cert) as client:
        out.print_json(json.dumps(client.project(project)))


@project_app.command("delete")
def project_delete(
    unit_url: UnitUrl,
    project: ProjectId,
    yes: Annotated[bool, typer.Option("--yes", help="Do not ask for confirmation.")] = False,
    ca_cert: CaCert = None,
) -> None:
    """Delete a project: erases its encodings, indexes and results (the audit remains)."""
    if not yes:
        typer.confirm(f"Erase project {project} and all its data?", abort=True)
    with _client(unit_url, _admin_token("pacelink unit project delete"), ca_cert) as client:
        client.delete_project(project)
    out.print(f"project {project} deleted")


def _wait_with_progress(client: UnitClient, project: str, run_id: str) -> dict[str, Any]:
    with Progress(
        TextColumn("[bold]run[/] {task.fields[stage]}"), BarColumn(),
        TextColumn("{task.percentage:>3.0f}%"), TimeElapsedColumn(), console=err,
    ) as bar:  # fmt: skip
        task = bar.add_task("run", total=1.0, stage="queued")

        def update(run: dict[str, Any]) -> None:
            bar.update(task, completed=run["progress"], stage=run["stage"])

        return client.wait(project, run_id, on_update=update)


@unit.command("run")
def run_command(
    unit_url: UnitUrl,
    project: ProjectId,
    threshold: Annotated[
        str | None, typer.Option(help="Override the project's threshold (number or auto).")
    ] = None,
    wait: Annotated[bool, typer.Option("--wait", help="Wait, with progress, until done.")] = False,
    ca_cert: CaCert = None,
) -> None:
    """Queue a run that links every upload received so far."""
    with _client(unit_url, _admin_token("pacelink unit run"), ca_cert) as client:
        run = client.start_run(project, _threshold(threshold))
        out.print(f"run [bold]{run['id']}[/] queued")
        if not wait:
            return
        run = _wait_with_progress(client, project, run["id"])
    _print_run(run)
    if run["status"] == "failed":
        fail(f"run {run['id']} failed: {run['error']}")


def _print_run(run: dict[str, Any]) -> None:
    table = Table(title=f"run {run['id']}", show_header=False)
    table.add_row("status", run["status"])
    if run.get("threshold_used") is not None:
        table.add_row("threshold", f"{run['threshold_used']:.4f} ({run['threshold_method']})")
    for key, value in (run.get("summary") or {}).items():
        if key not in ("threshold", "threshold_method"):
            table.add_row(key.replace("_", " "), str(value))
    out.print(table)


@unit.command()
def status(unit_url: UnitUrl, project: ProjectId, ca_cert: CaCert = None) -> None:
    """Show a project's uploads and runs."""
    with _client(unit_url, _admin_token("pacelink unit status"), ca_cert) as client:
        uploads, runs = client.uploads(project), client.runs(project)
    table = Table(title="uploads")
    for col in ("upload", "party", "kind", "records", "linked by run"):
        table.add_column(col)
    for u in uploads:
        table.add_row(u["id"], u["party"], u["kind"], f"{u['record_count']:,}",
                      u["linked_run_id"] or "-")  # fmt: skip
    out.print(table)
    table = Table(title="runs")
    for col in ("run", "status", "stage", "progress", "threshold", "error"):
        table.add_column(col)
    for r in runs:
        threshold = f"{r['threshold_used']:.4f}" if r["threshold_used"] is not None else "-"
        table.add_row(r["id"], r["status"], r["stage"], f"{r['progress']:.0%}", threshold,
                      r["error"] or "")  # fmt: skip
    out.print(table)


@unit.command()
def scores(unit_url: UnitUrl, project: ProjectId, ca_cert: CaCert = None) -> None:
    """Threshold review: the score histogram and the pairs nearest the threshold."""
    with _client(unit_url, _admin_token("pacelink unit scores"), ca_cert) as client:
        data = client.scores(project)
    peak = max(data["histogram"], default=0) or 1
    table = Table(title=f"candidate scores (threshold {data['threshold']:.4f})")
    table.add_column("score")
    table.add_column("pairs", justify="right")
    table.add_column("")
    for lo, n in zip(data["bin_edges"], data["histogram"], strict=False):
        table.add_row(f"{lo:.2f}", f"{n:,}", "#" * round(40 * n / peak))
    out.print(table)
    near = Table(title="pairs nearest the threshold")
    for col in ("score", "party", "linkage ID", "party", "linkage ID"):
        near.add_column(col)
    for p in data["near_pairs"][:20]:
        near.add_row(f"{p['score']:.4f}", p["party_a"], p["id_a"], p["party_b"], p["id_b"])
    out.print(near)


@audit_app.command("verify")
def audit_verify(
    data_dir: Annotated[
        Path | None, typer.Option("--data-dir", help="Verify locally, from the unit's files.")
    ] = None,
    database_url: DatabaseUrl = None,
    unit_url: Annotated[
        str | None, typer.Option("--unit", help="Or ask a running unit to verify.")
    ] = None,
    ca_cert: CaCert = None,
) -> None:
    """Check that no audit entry was edited or deleted; exits 1 if one was."""
    if (data_dir is None) == (unit_url is None):
        fail("give either --data-dir (verify locally) or --unit (ask the unit)")
    if data_dir is not None:
        from linkage_unit import audit
        from linkage_unit.database import make_engine, session_factory

        settings = _settings(data_dir, database_url)
        if not (settings.data_dir / "audit.key").exists():
            fail(f"{data_dir}: no audit key here; is this a unit's data folder?")
        key = audit.load_audit_key(settings.data_dir)
        engine = make_engine(settings.url())
        try:
            with session_factory(engine)() as session:
                report = audit.verify(session, key, settings.data_dir)
        finally:
            engine.dispose()
        ok, entries, problems = report.ok, report.entries, report.problems
    else:
        assert unit_url is not None
        with _client(unit_url, _admin_token("pacelink unit audit verify"), ca_cert) as client:
            result = client.verify_audit()
        ok, entries, problems = result["ok"], result["entries"], result["problems"]
    if ok:
        out.print(f"audit log intact: {entries} entries")
        return
    for problem in problems:
        err.print(f"[bold red]tampered:[/] {problem}", highlight=False)
    raise typer.Exit(1)


@audit_app.command("show")
def audit_show(
    unit_url: UnitUrl,
    project: Annotated[str | None, typer.Option("--project", help="Only this project.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
    ca_cert: CaCert = None,
) -> None:
    """Print audit entries: who did what, when, under which policy."""
    with _client(unit_url, _admin_token("pacelink unit audit show"), ca_cert) as client:
        entries = client.audit(project)
    if as_json:
        out.print_json(json.dumps(entries))
        return
    table = Table(title="audit log")
    for col in ("seq", "when (UTC)", "who", "what", "project", "detail"):
        table.add_column(col)
    import datetime as dt

    for e in entries:
        when = dt.datetime.fromtimestamp(e["at"], dt.UTC).strftime("%Y-%m-%d %H:%M:%S")
        table.add_row(str(e["seq"]), when, e["actor"], e["action"], e["project_id"] or "",
                      json.dumps(e["detail"])[:80])  # fmt: skip
    out.print(table)


# ---------------------------------------------------------------------------------- partner

TokenFile = Annotated[
    Path | None, typer.Option("--token-file", help="File holding your party token.")
]


def upload(
    file: Annotated[Path, typer.Argument(help="The .plk file made by `pacelink encode`.")],
    unit_url: UnitUrl,
    project: ProjectId,
    kind: Annotated[
        str | None,
        typer.Option(
            "--as",
            help="snapshot: your whole current list (your records absent from it are "
            "withdrawn); delta: new and changed clients only, nothing withdrawn. Default: "
            "delta (your first upload is a snapshot either way).",
        ),
    ] = None,
    token_file: TokenFile = None,
    ca_cert: CaCert = None,
) -> None:
    """Upload an encoding file to a project: a snapshot or a delta of your records."""
    from encoder.fileformat import read_encodings

    if kind not in (None, "snapshot", "delta"):
        fail(f"--as {kind!r}: expected snapshot or delta")
    try:
        header = read_encodings(file).header  # refuse a damaged file before sending it
    except user_errors() as exc:
        fail(str(exc))
    if header.get("record_keys") is None:
        err.print(
            f"[yellow]warning:[/] {file} has no record keys (encoded without --record-key): the "
            "unit will take a changed client in a later upload for a new one, and cannot "
            "withdraw single records"
        )
    size = file.stat().st_size
    with (
        _client(unit_url, _party_token(token_file), ca_cert) as client,
        err.status(f"uploading {file.name} ({size:,} bytes)"),
    ):
        result = client.upload(project, file, kind)
    out.print(
        f"uploaded {header['record_count']:,} records as {result['kind']} [bold]{result['id']}[/]"
    )


def withdraw(
    unit_url: UnitUrl,
    project: ProjectId,
    record_key_file: Annotated[
        Path,
        typer.Option("--record-key", help="Your record key (the one you encode with)."),
    ],
    ids_file: Annotated[
        Path,
        typer.Option(
            "--ids",
            help="Local IDs to withdraw: one per line, or a CSV with a local_id column.",
        ),
    ],
    allow_unknown: Annotated[
        bool,
        typer.Option(
            "--allow-unknown",
            help="Withdraw the rest when some IDs are not at the unit (else nothing changes).",
        ),
    ] = False,
    token_file: TokenFile = None,
    ca_cert: CaCert = None,
) -> None:
    """Withdraw records (consent withdrawn): the unit removes them at a run it queues at once.

    Your local IDs never leave your premises: only their pseudonyms, made with your record
    key, are sent. The withdrawn records' encodings are deleted from the unit and appear in
    no later release.
    """
    from encoder.keymap import read_local_ids
    from encoder.keys import load_record_key

    try:
        key = load_record_key(record_key_file)
        local_ids = read_local_ids(ids_file)
    except user_errors() as exc:
        fail(str(exc))
    pseudonyms = key.pseudonyms(local_ids).tolist()
    from linkage_unit.client import UnitError

    with _client(unit_url, _party_token(token_file), ca_cert) as client:
        try:
            result = client.withdraw(project, pseudonyms, allow_unknown=allow_unknown)
        except UnitError as exc:
            fail(_unknown_ids(str(exc), ids_file))
    line = f"withdrawal [bold]{result['id']}[/]: {result['requested'] - result['unknown']:,} "
    line += "records to withdraw"
    if result["unknown"]:
        line += f"; {result['unknown']:,} IDs were not at the unit (left alone)"
    out.print(line + f"; run {result['run_id']} applies it")


def _unknown_ids(message: str, ids_file: Path) -> str:
    """The unit names unknown keys by position in the list sent: name them as the file's IDs."""
    found = re.search(r"\(positions ([0-9, ]+)(?: and (\d+) more)?\)", message)
    if found is None:
        return message
    shown = ", ".join(str(int(k) + 1) for k in found.group(1).split(", "))
    more = f" and {found.group(2)} more" if found.group(2) else ""
    return (
        message.replace(
            found.group(0), f"(the IDs numbered {shown}{more}, counting from 1, in {ids_file})"
        )
        + "; pass --allow-unknown to withdraw the others"
    )


def _read_keys(path: Path) -> list[str]:
    """Local IDs by row from the key map (stays on premises)."""
    from encoder.keymap import KeyMapError, read_key_map

    try:
        return read_key_map(path)
    except KeyMapError as exc:
        fail(str(exc))


# What the unit may send in a release's value column. The partner checks it rather than
# trusting the unit: a value that is neither cannot reach the partner's spreadsheet.
_LINKAGE_ID = re.compile(r"[0-9a-f]{8,64}")
_FLAG = re.compile(r"[01]")


def _find_upload(client: UnitClient, project: str, keys: Path, upload_id: str | None) -> str:
    """The upload the key map belongs to: given, or found by the sibling .plk's digest."""
    if upload_id:
        return upload_id
    mine = client.uploads(project)
    sibling = keys.with_name(keys.name.removesuffix(".keys.csv") + ".plk")
    if keys.name.endswith(".keys.csv") and sibling.exists():
        from encoder.fileformat import read_header

        digest = read_header(sibling).content_digest
        for u in mine:
            if u["content_digest"] == digest:
                return str(u["id"])
        fail(f"{sibling} has not been uploaded to project {project}")
    if len(mine) == 1:
        return str(mine[0]["id"])
    fail(f"cannot tell which upload {keys} belongs to: pass --upload ID")


def results(
    unit_url: UnitUrl,
    project: ProjectId,
    out_path: Annotated[Path, typer.Option("--out", help="File to write (mode 0600).")],
    keys: Annotated[
        Path | None, typer.Option("--keys", help="OUT.keys.csv from `pacelink encode`.")
    ] = None,
    release: Annotated[
        str, typer.Option(help="mapping, counts or flags:<party> (as your policy allows).")
    ] = "mapping",
    upload_id: Annotated[
        str | None, typer.Option("--upload", help="The upload the key map belongs to.")
    ] = None,
    token_file: TokenFile = None,
    ca_cert: CaCert = None,
) -> None:
    """Fetch a release; mappings and flags are joined back to your local IDs.

    Decoy rows (empty local ID in the key map: the schema's hardening added them) are left
    out: they are no one's record.
    """
    from encoder.keymap import DECOY_LOCAL_ID, count_records, spreadsheet_safe

    kind, _, other = release.partition(":")
    if kind not in ("mapping", "counts", "flags") or (kind == "flags") != bool(other):
        fail(f"--release {release!r}: expected mapping, counts or flags:<party>")
    with _client(unit_url, _party_token(token_file), ca_cert) as client:
        if kind == "counts":
            data = client.counts(project)
            _write_private(out_path, json.dumps(data, indent=2) + "\n")
            _print_counts(data)
            return
        if keys is None:
            fail(f"--release {kind} needs --keys OUT.keys.csv to join back to your IDs")
        local = _read_keys(keys)
        chosen = _find_upload(client, project, keys, upload_id)
        text = client.mapping(project, chosen) if kind == "mapping" else client.flags(
            project, other, chosen
        )  # fmt: skip
    rows = list(csv.reader(text.splitlines()))[1:]
    column = "linkage_id" if kind == "mapping" else f"in_{other}"
    expected = _LINKAGE_ID if kind == "mapping" else _FLAG
    buf = io.StringIO(newline="")
    writer = csv.writer(buf)
    writer.writerow(("local_id", spreadsheet_safe(column)))
    # The answer lists the upload's rows in order; rows of records withdrawn since (by you,
    # or absent from a later snapshot) are left out. The unit cannot tell decoys from
    # records, so the answer has their rows too: left out here.
    previous, written = -1, 0
    for n, record in enumerate(rows):
        if len(record) != 3 or not record[1].isdigit():
            fail(f"the unit's answer is malformed at line {n + 2}; nothing was written")
        row, value = int(record[1]), record[2]
        if row <= previous or row >= len(local):
            fail(f"the unit's answer has row {row} out of order or beyond the {len(local):,} "
                 f"rows of {keys}: is this the key map of upload {chosen}?")  # fmt: skip
        if not expected.fullmatch(value):
            fail(f"the unit's answer has a malformed {column} at row {row}; nothing was written")
        previous = row
        if local[row] == DECOY_LOCAL_ID:
            continue
        writer.writerow((spreadsheet_safe(local[row]), value))
        written += 1
    _write_private(out_path, buf.getvalue())
    gone = count_records(local) - written
    note = f" ({gone:,} of the key map's records were withdrawn since)" if gone else ""
    out.print(f"wrote {written:,} rows to {out_path}{note}")


def _print_counts(data: dict[str, Any]) -> None:
    from rich.markup import escape

    # The purpose is the operator's text: shown as written, never read as rich markup.
    table = Table(title=f"overlap counts ({escape(str(data['purpose']))})")
    table.add_column("parties")
    table.add_column("in all of them", justify="right")
    table.add_column("in exactly these", justify="right")
    for row in data["counts"]:
        table.add_row(" + ".join(row["parties"]), str(row["count"]), str(row["only"]))
    out.print(table)
    out.print(f"counts below {data['min_count']} shown as <{data['min_count']}; "
              f"others rounded to the nearest {data['round_to']}")  # fmt: skip
    if any(row["only"] == WITHHELD for row in data["counts"]):
        out.print(f"{WITHHELD}: not shown, as it would reveal a suppressed count by subtraction")


# ---------------------------------------------------------------------------------- demo


def demo(
    workdir: Annotated[
        Path | None, typer.Option(help="Keep the demo's files here (default: temporary).")
    ] = None,
    keep_running: Annotated[
        bool,
        typer.Option(
            help="Keep the demo's unit up afterwards (Ctrl-C stops it), so the "
            "web console can be explored."
        ),
    ] = False,
) -> None:
    """Run the main job end to end: three partners encode, upload; the unit links; releases."""
    from linkage_unit.demo import run_demo

    run_demo(workdir, out, keep_running=keep_running)
