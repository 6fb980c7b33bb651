"""A worker process killed (SIGKILL) in the middle of a run: another one retakes and finishes it.

The unit's API runs in the test process (no in-process worker); the workers are real
``pacelink unit worker`` processes sharing the data folder and the database. The first is
killed once the run is visibly mid-work; the second must retake the run only after the
heartbeat went stale and produce exactly what an uninterrupted run of the same inputs
produces in a second, fresh unit given the same project salt.
"""

from __future__ import annotations

import csv
import io
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import pytest
from sqlalchemy import select

from benchmarks.synthetic import TRUTH_COLUMN, make_scenario, to_pace_columns
from encoder.encode import EncodeOptions, encode_file
from encoder.keys import generate_secret
from encoder.schema import load_schema
from linkage_unit.client import UnitClient
from linkage_unit.database import AuditEntry, Run, make_engine
from linkage_unit.embedded import EmbeddedUnit
from tests.linkage_unit.conftest import project_body

HEARTBEAT: Final = 0.2
# Short, so the test is quick; the retake is checked against it (never earlier).
STALE: Final = 2.0
POLL: Final = 0.05
# Generous: the machine is shared and noisy; a healthy run takes a few seconds.
DEADLINE: Final = 180.0


@dataclass(frozen=True)
class Deliveries:
    """Six uploads in order: each partner's first batch, then each partner's second."""

    schema: dict[str, Any]
    parties: tuple[str, ...]
    uploads: tuple[tuple[str, Path], ...]  # (party, .plk) in upload order


@pytest.fixture(scope="module")
def deliveries(tmp_path_factory: pytest.TempPathFactory) -> Deliveries:
    """The synthetic "incremental" scenario (three partners, two batches each) encoded.

    Threshold "auto" makes a run spend seconds estimating the threshold whatever the
    input size, which leaves a wide, reliable window to kill the worker in.
    """
    base = tmp_path_factory.mktemp("incremental")
    scenario = make_scenario("incremental", 1000, seed=5)
    schema, secret = load_schema("pace-default"), generate_secret()
    uploads: list[tuple[str, Path]] = []
    for batch in range(2):
        for spec in scenario.partners:
            frame = to_pace_columns(scenario.batches[spec.name][batch], spec)
            src = base / f"{spec.name}-{batch}.csv"
            frame.drop(columns=[TRUTH_COLUMN]).to_csv(src, index=False)
            plk = base / f"{spec.name}-{batch}.plk"
            encode_file(src, schema, secret, plk,
                        EncodeOptions(id_column="local_id", workers=1))  # fmt: skip
            uploads.append((spec.name, plk))
    return Deliveries(
        schema=json.loads(json.dumps(schema.raw)),
        parties=tuple(spec.name for spec in scenario.partners),
        uploads=tuple(uploads),
    )


@dataclass(frozen=True)
class Outcome:
    """What a completed run released, in terms that do not depend on the unit's own IDs."""

    run: dict[str, Any]
    # Per party: (the party's n-th upload, row, linkage ID) for every row it uploaded.
    mappings: dict[str, list[tuple[int, int, str]]]
    counts: dict[str, Any]
    scores: dict[str, Any]


def _create_project(
    admin: UnitClient, data: Deliveries, salt: bytes | None, data_dir: Path
) -> tuple[str, dict[str, str]]:
    """Create the project and upload every batch; with ``salt``, use it as the project's salt."""
    created = admin.create_project(
        project_body(data.schema, parties=list(data.parties), threshold="auto")
    )
    project_id, tokens = created["project_id"], created["parties"]
    if salt is not None:
        # The salt is random per project; linkage IDs are comparable across two units only
        # if both use the same. It lives in the project's folder (storage layout) and is
        # read when a run starts, so replacing it before any run is equivalent to the
        # project having drawn it.
        path = data_dir / "projects" / project_id / "salt"
        tmp = path.with_name("salt.new")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)  # a secret: 0600
        with os.fdopen(fd, "wb") as fh:
            fh.write(salt)
        os.replace(tmp, path)
    for party, plk in data.uploads:
        with UnitClient(admin.url, tokens[party]) as client:
            client.upload(project_id, plk)
    return project_id, tokens


def _outcome(admin: UnitClient, project_id: str, run_id: str, tokens: dict[str, str]) -> Outcome:
    mappings: dict[str, list[tuple[int, int, str]]] = {}
    counts: dict[str, Any] = {}
    for party, token in tokens.items():
        with UnitClient(admin.url, token) as client:
            order = {u["id"]: n for n, u in enumerate(client.uploads(project_id))}
            rows = list(csv.DictReader(io.StringIO(client.mapping(project_id))))
            mappings[party] = [
                (order[r["upload_id"]], int(r["row"]), r["linkage_id"]) for r in rows
            ]
            released = client.counts(project_id)
            assert released["run_id"] == run_id
            counts[party] = {k: v for k, v in released.items() if k not in ("project_id", "run_id")}
    scores = admin.scores(project_id)
    assert scores["run_id"] == run_id
    run = admin.run(project_id, run_id)
    return Outcome(
        run=run,
        mappings=mappings,
        counts=counts,
        scores={k: v for k, v in scores.items() if k not in ("project_id", "run_id")},
    )


@dataclass(frozen=True)
class Reference:
    """An uninterrupted run of the deliveries, and the salt it used."""

    salt: bytes
    outcome: Outcome


@pytest.fixture(scope="module")
def reference(tmp_path_factory: pytest.TempPathFactory, deliveries: Deliveries) -> Reference:
    """The deliveries linked by a fresh unit (SQLite, in-process worker), never interrupted."""
    data_dir = tmp_path_factory.mktemp("reference") / "unit"
    with (
        EmbeddedUnit(
            data_dir, heartbeat_seconds=HEARTBEAT, stale_after_seconds=30.0, poll_seconds=POLL
        ) as unit,
        UnitClient(unit.url, unit.admin_token) as admin,
    ):
        project_id, tokens = _create_project(admin, deliveries, None, data_dir)
        run = admin.start_run(project_id)
        done = admin.wait(project_id, run["id"], poll=POLL, timeout=DEADLINE)
        assert done["status"] == "done", done
        assert done["attempts"] == 1
        salt = (data_dir / "projects" / project_id / "salt").read_bytes()
        return Reference(salt, _outcome(admin, project_id, run["id"], tokens))


class WorkerProcess:
    """A ``pacelink unit worker`` process with quick heartbeats; its log goes to a file."""

    def __init__(self, data_dir: Path, database_url: str | None, log: Path) -> None:
        argv = [sys.executable, "-m", "encoder", "unit", "worker", "--data-dir", str(data_dir)]
        if database_url is not None:
            argv += ["--database-url", database_url]
        # Only these settings: whatever PACELINK_* the caller's shell has must not leak in
        # (a PACELINK_DATABASE_URL would point the worker at another database).
        env = {k: v for k, v in os.environ.items() if not k.startswith("PACELINK_")}
        env.update(
            PACELINK_HEARTBEAT_SECONDS=str(HEARTBEAT),
            PACELINK_STALE_AFTER_SECONDS=str(STALE),
            PACELINK_POLL_SECONDS=str(POLL),
            PACELINK_RETENTION_CHECK_SECONDS="3600",
        )
        self.log = log
        with log.open("wb") as fh:
            self.proc = subprocess.Popen(argv, env=env, stdout=fh, stderr=subprocess.STDOUT)

    def tail(self) -> str:
        """The end of the worker's log, for failure messages."""
        return self.log.read_text(errors="replace")[-3000:]

    def stop(self) -> None:
        """End the process if it still runs (SIGTERM lets it finish its loop; else SIGKILL)."""
        if self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=30)


@pytest.fixture
def spawn(tmp_path: Path) -> Iterator[list[WorkerProcess]]:
    """Worker processes started by the test; whatever is left is stopped afterwards."""
    started: list[WorkerProcess] = []
    yield started
    for worker in started:
        worker.stop()


def _wait_until_mid_run(admin: UnitClient, project_id: str, run_id: str,
                        worker: WorkerProcess) -> dict[str, Any]:  # fmt: skip
    """Poll the run over the API until the worker reports pipeline progress."""
    deadline = time.monotonic() + DEADLINE
    while True:
        run = admin.run(project_id, run_id)
        # "starting" is set by the claim itself; any later stage comes from the pipeline,
        # so the worker is executing the run (its output folder exists by then).
        if run["status"] == "running" and run["stage"] != "starting" and run["progress"] > 0:
            return run
        assert run["status"] in ("queued", "running"), (
            f"the run ended before it could be killed (make the run slower): {run}"
        )
        assert worker.proc.poll() is None, f"the worker exited early:\n{worker.tail()}"
        assert time.monotonic() < deadline, f"no progress: {run}\n{worker.tail()}"
        time.sleep(POLL)


def _leftovers(data_dir: Path) -> list[str]:
    """Temporary or hidden files anywhere under the projects (an interrupted save, say)."""
    found = []
    for root, dirs, files in os.walk(data_dir / "projects"):
        for name in dirs + files:
            if name.startswith(".") or name.endswith((".tmp", ".part")):
                found.append(os.path.join(root, name))
    return found


def test_killed_worker_run_is_retaken_and_matches_uninterrupted_run(
    tmp_path: Path, database_url: str | None, deliveries: Deliveries, reference: Reference,
    spawn: list[WorkerProcess],
) -> None:  # fmt: skip
    data_dir = tmp_path / "unit"
    with (
        EmbeddedUnit(
            data_dir,
            database_url=database_url,
            worker=False,
            heartbeat_seconds=HEARTBEAT,
            stale_after_seconds=STALE,
            poll_seconds=POLL,
        ) as unit,
        UnitClient(unit.url, unit.admin_token) as admin,
    ):
        engine = make_engine(unit.settings.url())
        try:
            project_id, tokens = _create_project(admin, deliveries, reference.salt, data_dir)
            first = WorkerProcess(data_dir, database_url, tmp_path / "worker-1.log")
            spawn.append(first)
            run_id = admin.start_run(project_id)["id"]

            seen = _wait_until_mid_run(admin, project_id, run_id, first)
            os.kill(first.proc.pid, signal.SIGKILL)
            assert first.proc.wait(timeout=60) == -signal.SIGKILL

            # Proof that the kill landed mid-run: the worker is gone and cannot write any
            # more, yet the run is still "running" with one attempt and no result.
            after_kill = admin.run(project_id, run_id)
            assert after_kill["status"] == "running", (seen, after_kill)
            assert after_kill["attempts"] == 1
            assert after_kill["finished_at"] is None
            with engine.connect() as conn:
                dead = conn.execute(
                    select(Run.heartbeat_at, Run.worker).where(Run.id == run_id)
                ).one()
            assert dead.worker is not None and dead.worker.endswith(f":{first.proc.pid}")
            # The dead attempt had started writing its output folder; the retry replaces it.
            assert (data_dir / "projects" / project_id / "runs" / run_id).is_dir()

            second = WorkerProcess(data_dir, database_url, tmp_path / "worker-2.log")
            spawn.append(second)
            try:
                done = admin.wait(project_id, run_id, poll=POLL, timeout=DEADLINE)
            except Exception as exc:
                raise AssertionError(f"{exc}\n{second.tail()}") from exc
            assert done["status"] == "done", f"{done}\n{second.tail()}"
            assert done["attempts"] == 2
            assert done["error"] is None
            with engine.connect() as conn:
                retaken = conn.execute(
                    select(Run.started_at, Run.worker, Run.claim).where(Run.id == run_id)
                ).one()
                run_done_entries = conn.scalars(
                    select(AuditEntry.detail_json).where(AuditEntry.action == "run.done")
                ).all()
            assert retaken.worker.endswith(f":{second.proc.pid}")
            assert retaken.claim is None
            # Retaken only once the dead worker's heartbeat was stale, not before.
            assert retaken.started_at - dead.heartbeat_at >= STALE
            assert [json.loads(d)["run"] for d in run_done_entries] == [run_id]

            got = _outcome(admin, project_id, run_id, tokens)
            want = reference.outcome
            assert got.run["threshold_used"] == want.run["threshold_used"]
            assert got.run["threshold_method"] == want.run["threshold_method"]
            assert admin.project(project_id)["threshold_pinned"] == want.run["threshold_used"]
            drop = ("seconds",)
            assert {k: v for k, v in got.run["summary"].items() if k not in drop} == {
                k: v for k, v in want.run["summary"].items() if k not in drop
            }
            # Same salt, same inputs: every row of every party has the same linkage ID, so
            # in particular the same rows share an ID (the same partition into entities).
            for party in deliveries.parties:
                assert len(got.mappings[party]) == len(want.mappings[party])
                assert got.mappings[party] == want.mappings[party], party
            assert got.counts == want.counts
            assert got.scores == want.scores

            assert admin.verify_audit()["ok"]
            assert list((data_dir / "incoming").iterdir()) == []
            runs = data_dir / "projects" / project_id / "runs"
            assert [p.name for p in runs.iterdir()] == [run_id]
            assert admin.project(project_id)["current_run_id"] == run_id
            assert _leftovers(data_dir) == []
        finally:
            engine.dispose()
