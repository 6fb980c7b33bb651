"""`pacelink demo`: the main job end to end on the embedded default, with measured quality.

Three synthetic partners of a PACE-style partnership (skills agency, benefits department,
council; files shipped in ``linkage_unit/data/demo``) share a partnership secret. Each
encodes its own file on its premises, uploads the encodings, and after the unit has linked
them fetches what the project's sharing policy releases to it. The linkage unit runs
embedded: SQLite and files in a temporary folder, the API on loopback, an in-process
worker. The linkage IDs the partners received are compared with the synthetic ground
truth (which no partner or unit sees) to report precision, recall and F1. Then a quarter
passes: the skills agency sends a delta of clients who moved house and withdraws a client
who withdrew consent, and the demo shows that the movers keep their linkage IDs and the
withdrawn client is in no release.
"""

from __future__ import annotations

import csv
import io
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any, Final

import numpy as np
import numpy.typing as npt
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from encoder.encode import EncodeOptions, encode_file
from encoder.fileformat import read_header
from encoder.keymap import read_key_map
from encoder.keys import (
    RecordKey,
    generate_record_key,
    generate_secret,
    write_record_key,
    write_secret,
)
from encoder.schema import load_schema
from linkage_unit.client import UnitClient, UnitError
from linkage_unit.database import Project, Upload, make_engine, session_factory
from linkage_unit.embedded import EmbeddedUnit
from linkage_unit.matching.evaluation import pairwise_metrics
from linkage_unit.storage import Storage

__all__ = ["DemoResult", "run_demo"]

PARTNERS: Final = ("skills_agency", "benefits_dept", "council")
_CONSENT: Final = {"skills_agency": "consent"}
# The council only learns aggregate counts, the skills agency also learns which of its
# clients the benefits department knows ("tell us who was made redundant", context/).
POLICY: Final = {
    "grants": {
        "skills_agency": ["mapping", "counts", "flags:benefits_dept"],
        "council": ["counts"],
    }
}


@dataclass(frozen=True)
class DemoResult:
    """What the demo measured."""

    precision: float
    recall: float
    f1: float
    true_pairs: int
    found_pairs: int
    entities: int
    seconds: float
    audit_entries: int
    audit_ok: bool
    #: The quarter after: movers sent in a delta that kept their linkage ID, of how many.
    movers_kept: int = 0
    movers: int = 0
    #: Whether the withdrawn client is absent from the skills agency's mapping afterwards.
    withdrawn_gone: bool = False


@contextmanager
def _workdir(path: Path | None) -> Iterator[Path]:
    if path is not None:
        path.mkdir(parents=True, exist_ok=True)
        yield path
        return
    with tempfile.TemporaryDirectory(prefix="pacelink-demo-") as tmp:
        yield Path(tmp)


def _data(name: str) -> str:
    return resources.files("linkage_unit").joinpath(f"data/demo/{name}").read_text("utf-8")


def _pairwise_quality(
    truth: dict[tuple[str, str], str], linked: dict[tuple[str, str], str]
) -> tuple[float, float, float, int, int]:
    """Cross-partner record pairs: true (same person) against found (same linkage ID).

    Only records that were encoded count (rejected rows never reach the unit).
    """
    records = sorted(linked)

    def codes(labels: list[str]) -> npt.NDArray[np.int64]:
        index: dict[str, int] = {}
        return np.array([index.setdefault(x, len(index)) for x in labels], dtype=np.int64)

    party = codes([partner for partner, _ in records])
    person = codes([truth[r] for r in records])
    entity = codes([linked[r] for r in records])
    p, r, f1, n_true, n_found, _ = pairwise_metrics(party, person, entity)
    return p, r, f1, n_true, n_found


def run_demo(workdir: Path | None, console: Console, *, keep_running: bool = False,
             stop: threading.Event | None = None) -> DemoResult:  # fmt: skip
    """Run the demo, printing as it goes; returns the measured quality.

    Args:
        workdir: Where the partners' files and the unit's data go; None for a temporary
            folder, removed afterwards.
        console: Where to print.
        keep_running: Afterwards, keep the unit up for its web console until interrupted
            (Ctrl-C) or until ``stop`` is set, and print how to sign in.
        stop: Ends ``keep_running`` (tests set it; a person presses Ctrl-C).
    """
    started = time.perf_counter()
    with _workdir(workdir) as base, EmbeddedUnit(base / "unit") as unit:
        console.rule("[bold]pacelink demo")
        console.print(f"linkage unit (embedded: SQLite, worker in-process) at {unit.url}")
        schema = load_schema("pace-default")
        secret = generate_secret()
        partners: dict[str, Path] = {}
        record_keys: dict[str, RecordKey] = {}
        console.print("\n[bold]1. Each partner encodes its own file on its premises[/]")
        console.print("  (with the partnership secret, and its own record key: pseudonyms of "
                      "its local IDs, so the unit can follow its records from one delivery to "
                      "the next)")  # fmt: skip
        table = Table("partner", "records in", "encoded", "no consent", "rejected")
        for name in PARTNERS:
            folder = base / name
            folder.mkdir(exist_ok=True)
            (folder / f"{name}.csv").write_text(_data(f"{name}.csv"), encoding="utf-8")
            write_secret(folder / "partnership.key", secret, overwrite=True)
            record_keys[name] = generate_record_key()
            write_record_key(folder / f"{name}.record.key", record_keys[name], overwrite=True)
            report = encode_file(
                folder / f"{name}.csv", schema, secret, folder / f"{name}.plk",
                EncodeOptions(id_column="local_id", consent_column=_CONSENT.get(name),
                              record_key=record_keys[name]),
            )  # fmt: skip
            table.add_row(name, f"{report.records_in:,}", f"{report.encoded:,}",
                          f"{report.excluded_no_consent:,}", f"{report.rejected:,}")  # fmt: skip
            partners[name] = folder
        console.print(table)

        console.print("\n[bold]2. The operator creates the project; partners upload[/]")
        with UnitClient(unit.url, unit.admin_token) as admin:
            created = admin.create_project({
                "name": "PACE demo", "schema": schema.raw, "parties": list(PARTNERS),
                "purpose": "Demonstration: support for people facing redundancy",
                "policy": POLICY, "retention_days": 30, "threshold": "auto",
            })  # fmt: skip
            project = created["project_id"]
            console.print(f"project {project}; sharing policy: default mapping + counts, "
                          f"overrides {POLICY['grants']}")  # fmt: skip
            tokens: dict[str, str] = created["parties"]
            uploads: dict[str, str] = {}
            for name in PARTNERS:
                with UnitClient(unit.url, tokens[name]) as party:
                    done = party.upload(project, partners[name] / f"{name}.plk")
                uploads[name] = done["id"]
                console.print(f"  {name}: uploaded {done['record_count']:,} encodings")

            console.print("\n[bold]3. The unit links the encodings[/]")
            run = admin.start_run(project)
            with Progress(TextColumn("{task.fields[stage]}"), BarColumn(), TimeElapsedColumn(),
                          console=console, transient=True) as bar:  # fmt: skip
                task = bar.add_task("run", total=1.0, stage="queued")
                run = admin.wait(project, run["id"], poll=0.2, on_update=lambda r: bar.update(
                    task, completed=r["progress"], stage=r["stage"]))  # fmt: skip
            if run["status"] != "done":
                raise UnitError(f"the demo run failed: {run['error']}")
            summary = run["summary"]
            console.print(
                f"threshold {run['threshold_used']:.3f} ({run['threshold_method']}); "
                f"{summary['entities']:,} entities, {summary['linked_entities']:,} held by "
                "more than one partner"
            )

        console.print("\n[bold]4. Each partner fetches what the policy releases to it[/]")
        linked: dict[tuple[str, str], str] = {}
        for name in PARTNERS:
            with UnitClient(unit.url, tokens[name]) as party:
                console.print(f"[bold]{name}[/]")
                keys = _keys(partners[name] / f"{name}.keys.csv")
                try:
                    mapping = _release_rows(party.mapping(project))
                except UnitError as exc:
                    console.print(f"  mapping: refused: {exc}")
                else:
                    for row, linkage_id in mapping:
                        linked[(name, keys[row])] = linkage_id
                    sample = ", ".join(f"{keys[r]} -> {i[:12]}…" for r, i in mapping[:2])
                    console.print(f"  mapping: {len(mapping):,} linkage IDs ({sample})")
                counts = party.counts(project)
                pairs = [c for c in counts["counts"] if len(c["parties"]) == 2]
                console.print("  counts: " + "; ".join(
                    f"{' & '.join(c['parties'])}: {c['count']}" for c in pairs))  # fmt: skip
                for other in PARTNERS:
                    if other == name:
                        continue
                    try:
                        flags = _release_rows(party.flags(project, other))
                    except UnitError as exc:
                        if other == "benefits_dept":
                            console.print(f"  flags:{other}: refused ({exc.status})")
                        continue
                    hits = sum(1 for _, f in flags if f == "1")
                    console.print(f"  flags:{other}: {hits:,} of {len(flags):,} of its rows "
                                  f"are also known to {other}")  # fmt: skip

        truth = {(r["partner"], r["local_id"]): r["person"]
                 for r in csv.DictReader(io.StringIO(_data("truth.csv")))}  # fmt: skip
        # The council holds no mapping under the policy; the evaluator's view of the
        # council's linkage comes from the unit (the demo is both, with the ground truth).
        council_rows = _council_ids(unit.settings.data_dir, project, partners)
        linked.update(council_rows)
        p, r, f1, n_true, n_found = _pairwise_quality(truth, linked)
        console.print("\n[bold]5. Match quality against the synthetic ground truth[/]")
        console.print(f"cross-partner record pairs: {n_true:,} true, {n_found:,} linked; "
                      f"precision {p:.4f}, recall {r:.4f}, F1 {f1:.4f}")  # fmt: skip

        console.print("\n[bold]6. A quarter later: clients who moved, a client who withdrew[/]")
        skills = "skills_agency"
        kept, movers, gone = _next_quarter(
            unit, project, tokens[skills], uploads[skills], partners[skills], schema, secret,
            record_keys[skills], linked, console,
        )  # fmt: skip
        with UnitClient(unit.url, unit.admin_token) as admin:
            audit_report = admin.verify_audit()
        console.print(f"\naudit log: {audit_report['entries']} entries, "
                      f"{'intact' if audit_report['ok'] else 'TAMPERED'}")  # fmt: skip
        seconds = time.perf_counter() - started
        console.print(f"done in {seconds:.1f} s")
        console.print(f"\n[bold]web console:[/] {unit.url}/console/")
        if keep_running:
            _keep_running(unit, tokens, console, stop or threading.Event())
        else:
            console.print("  (run [bold]pacelink demo --keep-running[/] to keep the unit up and "
                          "explore it)")  # fmt: skip
        return DemoResult(p, r, f1, n_true, n_found, summary["entities"], seconds,
                          audit_report["entries"], audit_report["ok"], kept, movers,
                          gone)  # fmt: skip


def _keep_running(unit: EmbeddedUnit, tokens: dict[str, str], console: Console,
                  stop: threading.Event) -> None:  # fmt: skip
    """Keep the demo's unit up for the console; print the demo's tokens to sign in with.

    These are a throwaway unit's tokens, printed so a newcomer can sign in; a real unit's
    tokens are never printed (they come from TOKENS.json and PACELINK_ADMIN_TOKEN).
    """
    table = Table("sign in as", "token (this demo unit only)", title="demo tokens")
    table.add_row("operator", unit.admin_token)
    for name, token in tokens.items():
        table.add_row(name, token)
    console.print(table)
    console.print(f"open {unit.url}/console/ in a browser; press Ctrl-C to stop the unit")
    try:
        while not stop.wait(0.5):
            pass
    except KeyboardInterrupt:
        console.print("stopping the demo unit")


def _next_quarter(
    unit: EmbeddedUnit, project: str, token: str, first_upload: str, folder: Path,
    schema: Any, secret: Any, record_key: RecordKey, linked: dict[tuple[str, str], str],
    console: Console,
) -> tuple[int, int, bool]:  # fmt: skip
    """The skills agency's next delivery: a delta of movers, and one withdrawal.

    Returns how many movers kept their linkage ID, of how many, and whether the withdrawn
    client is gone from the agency's mapping.
    """
    name = "skills_agency"
    with (folder / f"{name}.csv").open(newline="", encoding="utf-8") as fh:
        reader = csv.DictReader(fh)
        fields = list(reader.fieldnames or [])
        rows = {r["local_id"]: r for r in reader}
    # Clients the benefits department also knows, so keeping the ID is a real test.
    theirs = {i for (p, _), i in linked.items() if p == "benefits_dept"}
    shared = [k for (p, k), i in sorted(linked.items()) if p == name and i in theirs]
    movers, leaver = shared[:3], shared[3]
    delta = folder / f"{name}-next-quarter.csv"
    with delta.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fields)
        writer.writeheader()
        for local_id in movers:  # moved house: a new postcode and address
            writer.writerow({**rows[local_id], "postcode": "KW15 1XY",
                             "address_line": "2 Harbour Street"})  # fmt: skip
    encode_file(delta, schema, secret, folder / f"{name}-next-quarter.plk",
                EncodeOptions(id_column="local_id", consent_column=_CONSENT.get(name),
                              record_key=record_key))  # fmt: skip
    with UnitClient(unit.url, token) as party:
        sent = party.upload(project, folder / f"{name}-next-quarter.plk", "delta")
        console.print(f"  {name}: uploaded a delta of {sent['record_count']} clients who moved "
                      "house")  # fmt: skip
        withdrawal = party.withdraw(project, record_key.pseudonyms([leaver]).tolist())
        console.print(f"  {name}: withdrew 1 client (only the pseudonym of its local ID is "
                      f"sent); the unit queued run {withdrawal['run_id']}")  # fmt: skip
    with UnitClient(unit.url, unit.admin_token) as admin:
        run = admin.wait(project, withdrawal["run_id"], poll=0.2)
    if run["status"] != "done":
        raise UnitError(f"the demo's second run failed: {run['error']}")
    summary = run["summary"]
    console.print(f"  the unit: {summary['updated_records']} records updated, "
                  f"{summary['moved_records']} moved to another entity, "
                  f"{summary['withdrawn_records']} withdrawn")  # fmt: skip
    with UnitClient(unit.url, token) as party:
        now = _release_rows(party.mapping(project, sent["id"]))
        before = _release_rows(party.mapping(project, first_upload))
    keys = _keys(folder / f"{name}-next-quarter.keys.csv")
    kept = sum(linked[(name, keys[row])] == linkage_id for row, linkage_id in now)
    first = _keys(folder / f"{name}.keys.csv")
    held = {first[row] for row, _ in before}
    gone = leaver not in held
    console.print(f"  {kept} of {len(movers)} movers kept their linkage ID; the withdrawn "
                  f"client is {'in no release' if gone else 'STILL RELEASED'}")  # fmt: skip
    return kept, len(movers), gone


def _keys(path: Path) -> dict[int, str]:
    return dict(enumerate(read_key_map(path)))


def _release_rows(text: str) -> list[tuple[int, str]]:
    reader = csv.reader(io.StringIO(text))
    next(reader)
    return [(int(row), value) for _, row, value in reader]


def _council_ids(data_dir: Path, project: str, partners: dict[str, Path]) -> dict[Any, str]:
    """The council's linkage IDs, read the way the evaluator may: from the unit's files."""
    engine = make_engine(f"sqlite:///{data_dir / 'unit.db'}")
    try:
        with session_factory(engine)() as session:
            p = session.get(Project, project)
            assert p is not None and p.current_run_id is not None
            uploads = session.query(Upload).filter(Upload.project_id == project).all()
            run = Storage(data_dir).run_folder(project, p.current_run_id)
    finally:
        engine.dispose()
    keys = _keys(partners["council"] / "council.keys.csv")
    digest = _digest(partners["council"] / "council.plk")
    (upload,) = [u for u in uploads if u.content_digest == digest]
    ids = np.load(run.ids(upload.id))
    return {("council", keys[i]): str(v) for i, v in enumerate(ids)}


def _digest(path: Path) -> str:
    return read_header(path).content_digest
