"""`pacelink demo`: the main job end to end on the embedded default, with measured quality.

Three synthetic partners of a PACE-style partnership (skills agency, benefits department,
council; files shipped in ``linkage_unit/data/demo``) share a partnership secret. Each
encodes its own file on its premises, uploads the encodings, and after the unit has linked
them fetches what the project's sharing policy releases to it. The linkage unit runs
embedded: SQLite and files in a temporary folder, the API on loopback, an in-process
worker. At the end, the linkage IDs the partners received are compared with the synthetic
ground truth (which no partner or unit sees) to report precision, recall and F1.
"""

from __future__ import annotations

import csv
import io
import itertools
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any, Final

from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from encoder.encode import EncodeOptions, encode_file
from encoder.keymap import read_key_map
from encoder.keys import generate_secret, write_secret
from encoder.schema import load_schema
from linkage_unit.client import UnitClient, UnitError
from linkage_unit.embedded import EmbeddedUnit

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

    def pairs(labels: dict[tuple[str, str], str]) -> set[tuple[tuple[str, str], ...]]:
        groups: dict[str, list[tuple[str, str]]] = {}
        for record, label in labels.items():
            groups.setdefault(label, []).append(record)
        out: set[tuple[tuple[str, str], ...]] = set()
        for members in groups.values():
            for a, b in itertools.combinations(sorted(members), 2):
                if a[0] != b[0]:
                    out.add((a, b))
        return out

    true = pairs({r: truth[r] for r in linked})
    found = pairs(linked)
    hit = len(true & found)
    precision = hit / len(found) if found else 1.0
    recall = hit / len(true) if true else 1.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return precision, recall, f1, len(true), len(found)


def run_demo(workdir: Path | None, console: Console) -> DemoResult:
    """Run the demo, printing as it goes; returns the measured quality."""
    started = time.perf_counter()
    with _workdir(workdir) as base, EmbeddedUnit(base / "unit") as unit:
        console.rule("[bold]pacelink demo")
        console.print(f"linkage unit (embedded: SQLite, worker in-process) at {unit.url}")
        schema = load_schema("pace-default")
        secret = generate_secret()
        partners: dict[str, Path] = {}
        console.print("\n[bold]1. Each partner encodes its own file on its premises[/]")
        table = Table("partner", "records in", "encoded", "no consent", "rejected")
        for name in PARTNERS:
            folder = base / name
            folder.mkdir(exist_ok=True)
            (folder / f"{name}.csv").write_text(_data(f"{name}.csv"), encoding="utf-8")
            write_secret(folder / "partnership.key", secret, overwrite=True)
            report = encode_file(
                folder / f"{name}.csv", schema, secret, folder / f"{name}.plk",
                EncodeOptions(id_column="local_id", consent_column=_CONSENT.get(name)),
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
            for name in PARTNERS:
                with UnitClient(unit.url, tokens[name]) as party:
                    done = party.upload(project, partners[name] / f"{name}.plk")
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

        with UnitClient(unit.url, unit.admin_token) as admin:
            audit_report = admin.verify_audit()
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
        console.print(f"audit log: {audit_report['entries']} entries, "
                      f"{'intact' if audit_report['ok'] else 'TAMPERED'}")  # fmt: skip
        seconds = time.perf_counter() - started
        console.print(f"done in {seconds:.1f} s")
        return DemoResult(p, r, f1, n_true, n_found, summary["entities"], seconds,
                          audit_report["entries"], audit_report["ok"])  # fmt: skip


def _keys(path: Path) -> dict[int, str]:
    return dict(enumerate(read_key_map(path)))


def _release_rows(text: str) -> list[tuple[int, str]]:
    reader = csv.reader(io.StringIO(text))
    next(reader)
    return [(int(row), value) for _, row, value in reader]


def _council_ids(data_dir: Path, project: str, partners: dict[str, Path]) -> dict[Any, str]:
    """The council's linkage IDs, read the way the evaluator may: from the unit's files."""
    import numpy as np

    from linkage_unit.database import Project, Upload, make_engine, session_factory

    engine = make_engine(f"sqlite:///{data_dir / 'unit.db'}")
    try:
        with session_factory(engine)() as session:
            p = session.get(Project, project)
            assert p is not None and p.current_run_id is not None
            uploads = session.query(Upload).filter(Upload.project_id == project).all()
            run_dir = data_dir / "projects" / project / "runs" / p.current_run_id / "ids"
    finally:
        engine.dispose()
    keys = _keys(partners["council"] / "council.keys.csv")
    digest = _digest(partners["council"] / "council.plk")
    (upload,) = [u for u in uploads if u.content_digest == digest]
    ids = np.load(run_dir / f"{upload.id}.npy")
    return {("council", keys[i]): str(v) for i, v in enumerate(ids)}


def _digest(path: Path) -> str:
    from encoder.fileformat import read_header

    return read_header(path).content_digest
