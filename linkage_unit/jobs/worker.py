"""Worker processes: claim queued runs from the database, execute them, heartbeat, recover.

Any number of workers (``pacelink unit worker``, on this or other machines sharing the data
folder and database) poll the ``runs`` table. A worker claims a run with a
compare-and-set update (a fresh random ``claim`` token), so two workers never run the same
run, and it heartbeats while it works. A run whose heartbeat is older than
``stale_after_seconds`` — its worker was killed or lost — is claimed again and executed
from the start; runs are pure functions of their inputs (:mod:`linkage_unit.jobs.pipeline`)
so the outcome equals that of an uninterrupted run. Runs of one project execute one at a
time, in the order they were queued.

Errors reach the run record as safe messages only (:class:`~pipeline.RunError`); anything
else is recorded as "internal error" and logged without data.
"""

from __future__ import annotations

import json
import logging
import os
import secrets
import shutil
import socket
import threading
from typing import Any, Final

from sqlalchemy.orm import Session, sessionmaker

from linkage_unit import audit, repository
from linkage_unit.database import Project, Run, Upload, make_engine, migrate, now
from linkage_unit.database import session_factory as _session_factory
from linkage_unit.jobs.pipeline import Batch, RunError, RunInputs, RunOutcome, execute, settle
from linkage_unit.matching.threshold import Threshold
from linkage_unit.policy import SharingPolicy
from linkage_unit.retention import purge_expired
from linkage_unit.settings import UnitSettings
from linkage_unit.storage import Storage

__all__ = ["ClaimLost", "Worker"]

log = logging.getLogger("pacelink.worker")

_MAX_ATTEMPTS: Final = 5


class ClaimLost(Exception):
    """Another worker took the run over (this one was presumed dead)."""


class Worker:
    """A worker loop bound to one data folder and database."""

    def __init__(self, settings: UnitSettings, name: str | None = None) -> None:
        """Bind to the settings' data folder and database (nothing is opened yet)."""
        self.settings = settings
        self.storage = Storage(settings.data_dir)
        self.engine = make_engine(settings.url())
        self.sessions: sessionmaker[Session] = _session_factory(self.engine)
        self.name = name or f"{socket.gethostname()}:{os.getpid()}"
        self.key = b""
        self._last_purge = 0.0

    def prepare(self) -> None:
        """Create the folders, migrate the database and load the audit key."""
        self.storage.prepare()
        migrate(self.engine)
        self.key = audit.load_audit_key(self.settings.data_dir)

    # ------------------------------------------------------------------ claiming

    def claim(self) -> tuple[str, str] | None:
        """Claim the oldest runnable run; returns ``(run_id, claim)`` or None."""
        stale = now() - self.settings.stale_after_seconds
        with self.sessions() as session:
            rows = repository.runnable_runs(session)
        busy: set[str] = set()
        for run_id, project_id, status, old_claim, heartbeat, attempts in rows:
            if project_id in busy:
                continue
            busy.add(project_id)  # only the project's oldest unfinished run may go
            if status == "running" and (heartbeat or 0) >= stale:
                continue
            if status == "running" and attempts >= _MAX_ATTEMPTS:
                # A run that keeps killing its workers (out of memory, say) must not
                # block the project for ever.
                self._give_up(run_id, old_claim, attempts)
                continue
            token = secrets.token_hex(16)
            with self.sessions.begin() as session:
                claimed = repository.update_claimed_run(
                    session, run_id, old_claim, status=status,
                    values={"status": "running", "claim": token, "worker": self.name,
                            "heartbeat_at": now(), "attempts": Run.attempts + 1,
                            "started_at": now(), "stage": "starting", "progress": 0.0},
                )  # fmt: skip
            if claimed:
                log.info("claimed run %s (%s)", run_id, "retry" if status == "running" else "new")
                return run_id, token
        return None

    def _give_up(self, run_id: str, old_claim: str | None, attempts: int) -> None:
        message = f"the run was interrupted {attempts} times; check the workers' memory and logs"
        with self.sessions.begin() as session:
            run = session.get(Run, run_id)
            if run is None or run.claim != old_claim or run.status != "running":
                return
            run.status, run.stage, run.error, run.claim = "failed", "failed", message, None
            run.finished_at = now()
            audit.append(session, self.key, actor="worker", action="run.failed",
                         project_id=run.project_id, detail={"run": run_id, "error": message},
                         data_dir=self.settings.data_dir)  # fmt: skip

    def _update(self, run_id: str, claim: str, **values: Any) -> None:
        with self.sessions.begin() as session:
            held = repository.update_claimed_run(session, run_id, claim, values=values)
        if not held:
            raise ClaimLost(run_id)

    # ------------------------------------------------------------------ executing

    def _batch(self, project_id: str, upload: Upload, party: int) -> Batch:
        if upload.kind == "withdrawal":
            path = self.storage.withdrawal_path(project_id, upload.id)
            return Batch(upload.id, party, path, "withdrawal")
        return Batch(upload.id, party, self.storage.upload_path(project_id, upload.id),
                     upload.kind,  # type: ignore[arg-type]  # snapshot or delta
                     self.storage.keys_path(project_id, upload.id))  # fmt: skip

    def _inputs(self, run: Run, project: Project, session: Session) -> RunInputs:
        parties = repository.parties(session, project.id)
        position = {p.id: p.position for p in parties}
        uploads = repository.uploads_through(session, project.id, run.through_seq)
        base_run = project.current_run_id
        batches = [self._batch(project.id, u, position[u.party_id]) for u in uploads]
        linked_before = {u.id for u in uploads if u.linked_run_id is not None}
        requested = Threshold.parse(run.threshold_requested or project.threshold)
        return RunInputs(
            salt=self.storage.salt(project.id),
            parties=tuple(p.name for p in parties),
            base_run=self.storage.run_folder(project.id, base_run) if base_run else None,
            new_batches=tuple(b for b in batches if b.upload_id not in linked_before),
            all_batches=tuple(batches),
            threshold=requested.resolve(pinned=project.threshold_pinned),
            duplicates=project.duplicates,  # type: ignore[arg-type]  # checked on creation
            duplicates_threshold=project.duplicates_threshold_pinned,
            counts_steady_within=SharingPolicy.model_validate_json(
                project.policy_json
            ).suppression.min_count,
            scheduler=self.settings.scheduler,
        )

    def process(self, run_id: str, claim: str) -> None:
        """Execute a claimed run and record its outcome."""
        stop = threading.Event()
        lost = threading.Event()

        def heartbeat() -> None:
            while not stop.wait(self.settings.heartbeat_seconds):
                try:
                    self._update(run_id, claim, heartbeat_at=now())
                except ClaimLost:
                    lost.set()
                    return
                except Exception:  # the database may be briefly unavailable: try again
                    log.warning("heartbeat of run %s failed", run_id)

        beat = threading.Thread(target=heartbeat, name=f"heartbeat-{run_id}", daemon=True)
        beat.start()
        try:
            self._process(run_id, claim, lost)
        except ClaimLost:
            log.warning("run %s was taken over by another worker; abandoning it", run_id)
        finally:
            stop.set()
            beat.join()

    def _process(self, run_id: str, claim: str, lost: threading.Event) -> None:
        with self.sessions() as session:
            run = session.get(Run, run_id)
            project = session.get(Project, run.project_id) if run else None
            if run is None or project is None:
                return
            inputs = self._inputs(run, project, session)
            project_id, attempts = project.id, run.attempts
        out = self.storage.run_folder(project_id, run_id)

        def progress(stage: str, fraction: float) -> None:
            if lost.is_set():
                raise ClaimLost(run_id)
            self._update(run_id, claim, stage=stage, progress=fraction, heartbeat_at=now())

        try:
            outcome = execute(inputs, out, progress)
        except ClaimLost:
            raise
        except Exception as exc:
            if not out.path.parent.exists():  # the project was deleted under the run
                log.info("run %s: its project was deleted", run_id)
                return
            message = str(exc) if isinstance(exc, RunError) else "internal error"
            log.exception("run %s failed (attempt %d)", run_id, attempts)
            shutil.rmtree(out.path, ignore_errors=True)
            self._finish(run_id, claim, project_id, failed=message)
            return
        charts = self._charts(project_id, run_id, outcome)
        self._finish(run_id, claim, project_id, outcome=outcome, inputs=inputs, charts=charts)

    def _charts(self, project_id: str, run_id: str, outcome: RunOutcome) -> dict[str, str]:
        """The run's charts for the console, drawn here so that no page waits for them.

        Best effort: a chart that cannot be drawn is drawn by the console when asked for.
        """
        try:
            # matplotlib loads only in a worker that draws; failing to is caught below.
            from linkage_unit.console.charts import CHANGES, draw_run, run_label  # noqa: PLC0415

            with self.sessions() as session:
                earlier = [r for r in repository.done_runs(session, project_id) if r.id != run_id]
                summaries = [(r.id, json.loads(r.summary_json or "{}")) for r in earlier]
            summaries.append((run_id, outcome.summary))
            history = [
                {"name": run_label(k, rid), **{c: int(s.get(c, 0)) for c in CHANGES}}
                for k, (rid, s) in enumerate(summaries)
            ]
            return draw_run(outcome.threshold, outcome.diagnostics, outcome.summary, history)
        except Exception:
            log.warning("run %s: its charts could not be drawn", run_id, exc_info=True)
            return {}

    def _finish(
        self, run_id: str, claim: str, project_id: str, *, failed: str | None = None,
        outcome: Any = None, inputs: RunInputs | None = None,
        charts: dict[str, str] | None = None,
    ) -> None:  # fmt: skip
        with self.sessions.begin() as session:
            run = session.get(Run, run_id)
            project = session.get(Project, project_id)
            if run is None or project is None or run.claim != claim:
                raise ClaimLost(run_id)
            run.finished_at = now()
            run.claim = None
            if failed is not None:
                run.status, run.stage, run.error = "failed", "failed", failed
                audit.append(session, self.key, actor="worker", action="run.failed",
                             project_id=project_id, detail={"run": run_id, "error": failed},
                             data_dir=self.settings.data_dir)  # fmt: skip
                return
            assert inputs is not None
            run.status, run.stage, run.progress = "done", "done", 1.0
            run.threshold_used = outcome.threshold
            run.threshold_method = outcome.threshold_method
            run.summary_json = json.dumps(outcome.summary)
            run.diagnostics_json = json.dumps({**outcome.diagnostics, "charts": charts or {}})
            new_ids = [b.upload_id for b in inputs.new_batches]
            repository.mark_linked(session, new_ids, run_id)
            project.current_run_id = run_id
            if outcome.pin_threshold and project.threshold_pinned is None:
                project.threshold_pinned = outcome.threshold
                if outcome.duplicates_threshold is not None:
                    project.duplicates_threshold_pinned = outcome.duplicates_threshold
            summary = outcome.summary
            audit.append(
                session, self.key, actor="worker", action="run.done", project_id=project_id,
                detail={"run": run_id, "threshold": outcome.threshold,
                        "threshold_method": outcome.threshold_method,
                        "uploads_linked": new_ids, "entities": summary["entities"],
                        # How many, never which: the audit names no record.
                        "records_new": summary["new_records"],
                        "records_updated": summary["updated_records"],
                        "records_moved": summary["moved_records"],
                        "records_withdrawn": summary["withdrawn_records"],
                        "withdrawals_unknown": summary["unknown_withdrawals"]},
                data_dir=self.settings.data_dir,
            )  # fmt: skip
        # Older runs' folders are superseded; the current one stays. Then the linked
        # uploads give up what only the index needs now (withdrawn records included).
        self.storage.prune_runs(project_id, keep={run_id})
        settle(self.storage.run_folder(project_id, run_id), inputs.all_batches)

    # ------------------------------------------------------------------ loop

    def run_once(self) -> bool:
        """Purge expired projects when due, then claim and process one run if any."""
        if now() - self._last_purge >= self.settings.retention_check_seconds:
            self._last_purge = now()
            for project_id in purge_expired(self.sessions, self.storage, self.key,
                                            self.settings.data_dir):  # fmt: skip
                log.info("purged project %s (retention period over)", project_id)
        claimed = self.claim()
        if claimed is None:
            return False
        self.process(*claimed)
        return True

    def serve(self, stop: threading.Event | None = None) -> None:
        """Work until ``stop`` is set (forever if None)."""
        stop = stop or threading.Event()
        self.prepare()
        log.info("worker %s ready", self.name)
        try:
            while not stop.is_set():
                try:
                    busy = self.run_once()
                except Exception:
                    log.exception("worker loop error")
                    busy = False
                if not busy:
                    stop.wait(self.settings.poll_seconds)
        finally:
            self.engine.dispose()
