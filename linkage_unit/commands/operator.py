"""The operator's commands: `pacelink unit serve|worker|project|run|status|scores|audit`.

This module imports the service (API, workers, database) at the top: `encoder.cli` loads it
only when `pacelink unit` is invoked or listed, so no partner command pays for it. Operator
commands read the admin token from `PACELINK_ADMIN_TOKEN`, never from the command line.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import os
import signal
import subprocess
import sys
import threading
from pathlib import Path
from typing import Annotated, Any

import typer
import uvicorn
from pydantic import SecretStr, ValidationError
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from encoder.cli import fail, user_errors
from encoder.schema import load_schema
from linkage_unit import audit
from linkage_unit.api import create_app
from linkage_unit.client import UnitClient
from linkage_unit.commands.connection import CaCert, ProjectId, UnitUrl, connect, write_private
from linkage_unit.commands.threshold import parse_threshold
from linkage_unit.database import make_engine, session_factory
from linkage_unit.jobs.worker import Worker
from linkage_unit.matching.solving import DEFAULT_DUPLICATES
from linkage_unit.settings import AdminTokenError, UnitSettings, check_admin_token

__all__ = ["unit"]

err = Console(stderr=True)
out = Console()

unit = typer.Typer(help="Run and operate a linkage unit.", no_args_is_help=True)
project_app = typer.Typer(help="Create, show and delete projects.", no_args_is_help=True)
audit_app = typer.Typer(help="Read and verify the audit log.", no_args_is_help=True)
unit.add_typer(project_app, name="project")
unit.add_typer(audit_app, name="audit")

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


def _admin_token(command: str | None = None) -> str:
    """The admin token from the environment.

    Args:
        command: The operator command that calls the unit with it (None: the unit itself is
            starting), so that a refusal says why the token is needed.
    """
    try:
        return check_admin_token(os.environ.get("PACELINK_ADMIN_TOKEN"), for_command=command)
    except AdminTokenError as exc:
        fail(str(exc))


def _settings(data_dir: Path, database_url: str | None, scheduler: str | None = None) -> Any:
    extra: dict[str, Any] = {} if scheduler is None else {"scheduler": scheduler}
    try:  # without --scheduler, PACELINK_SCHEDULER (or none)
        return UnitSettings(data_dir=data_dir, database_url=database_url, **extra)
    except ValidationError as exc:
        fail(f"settings: {exc.errors()[0]['loc'][0]}: {exc.errors()[0]['msg']}")


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
    schema: Annotated[str, typer.Option(help="Schema file, or pace-default or pace-no-salt.")] = (
        "pace-default"
    ),
    policy: Annotated[Path | None, typer.Option(help="Sharing policy JSON file.")] = None,
    retention_days: Annotated[int, typer.Option(min=1, help="Days before purging.")] = 365,
    threshold: Annotated[str, typer.Option(help="Dice threshold or 'auto'.")] = "auto",
    duplicates: Annotated[
        str,
        typer.Option(
            help="A partner's duplicate clients: 'linked' (default: two records of one party "
            "share an entity when they match) or 'forbid' (one record per party per entity)."
        ),
    ] = DEFAULT_DUPLICATES,
    ca_cert: CaCert = None,
) -> None:
    """Create a project; writes each party's token to TOKENS.json (shown only once)."""
    if duplicates not in ("forbid", "linked"):
        fail(f"--duplicates {duplicates!r}: expected forbid or linked")

    try:
        schema_doc = load_schema(schema).raw
    except user_errors() as exc:
        fail(str(exc))
    body: dict[str, Any] = {
        "name": name, "purpose": purpose, "schema": schema_doc, "parties": party,
        "retention_days": retention_days, "threshold": parse_threshold(threshold).to_json(),
        "duplicates": duplicates,
    }  # fmt: skip
    if policy is not None:
        try:
            body["policy"] = json.loads(policy.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError) as exc:
            fail(f"{policy}: cannot read the policy: {exc}")
    if out_path.exists():
        fail(f"{out_path}: already exists (tokens are shown once; not overwriting)")
    with connect(unit_url, _admin_token("pacelink unit project create"), ca_cert) as client:
        created = client.create_project(body)
    write_private(out_path, json.dumps(
        {"project_id": created["project_id"], "parties": created["parties"]}, indent=2
    ) + "\n")  # fmt: skip
    out.print(f"project [bold]{created['project_id']}[/] created; party tokens in {out_path}")


@project_app.command("show")
def project_show(unit_url: UnitUrl, project: ProjectId, ca_cert: CaCert = None) -> None:
    """Show a project's settings and state."""
    with connect(unit_url, _admin_token("pacelink unit project show"), ca_cert) as client:
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
    with connect(unit_url, _admin_token("pacelink unit project delete"), ca_cert) as client:
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
    with connect(unit_url, _admin_token("pacelink unit run"), ca_cert) as client:
        run = client.start_run(
            project, None if threshold is None else parse_threshold(threshold).to_json()
        )
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
    with connect(unit_url, _admin_token("pacelink unit status"), ca_cert) as client:
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
    with connect(unit_url, _admin_token("pacelink unit scores"), ca_cert) as client:
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
        with connect(unit_url, _admin_token("pacelink unit audit verify"), ca_cert) as client:
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
    with connect(unit_url, _admin_token("pacelink unit audit show"), ca_cert) as client:
        entries = client.audit(project)
    if as_json:
        out.print_json(json.dumps(entries))
        return
    table = Table(title="audit log")
    for col in ("seq", "when (UTC)", "who", "what", "project", "detail"):
        table.add_column(col)
    for e in entries:
        when = dt.datetime.fromtimestamp(e["at"], dt.UTC).strftime("%Y-%m-%d %H:%M:%S")
        table.add_row(str(e["seq"]), when, e["actor"], e["action"], e["project_id"] or "",
                      json.dumps(e["detail"])[:80])  # fmt: skip
    out.print(table)
