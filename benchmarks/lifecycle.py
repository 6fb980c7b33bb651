"""Record lifecycle: quarterly snapshots and deltas, updates and withdrawals, through the service.

    python -m benchmarks.lifecycle                         # 6,000 people, 4 batches
    python -m benchmarks.lifecycle --duplicates forbid     # the other rule for duplicates
    python -m benchmarks.lifecycle --people 600 --batches 3 --no-reference   # quick

The data are :func:`benchmarks.synthetic.make_lifecycle`'s: a static partner (the benefits
department: one snapshot, withdrawals later) and a delivering partner (the skills agency: a
snapshot, then a quarterly delta of new clients and updated records: moves, surname changes,
corrected name typos and dates of birth; and withdrawals of consent). A real linkage unit is
started as a separate process (`pacelink unit serve`, SQLite in a fresh data folder) and
driven only with the product's commands, run as subprocesses exactly as the operator and the
partners would type them:

* operator: ``pacelink unit project create`` (``pace-default``, threshold ``auto``), then
  ``pacelink unit run --wait`` after every batch;
* each partner: ``pacelink keygen --record-key`` (its own record key; the partnership secret
  of one ``pacelink keygen`` is shared by both), then per delivery ``pacelink encode ...
  --record-key KEY``, ``pacelink upload --as snapshot`` (first delivery) or ``--as delta``,
  ``pacelink withdraw --record-key KEY --ids FILE`` for withdrawals, and after each run
  ``pacelink results --release mapping`` for each of its uploads.

After every batch, against the truth, over the records current then (delivered, not
withdrawn; a record as last delivered):

* cross-partner pairwise precision, recall and F1 (the definitions of
  :mod:`benchmarks.quality`; a record the encoder rejected counts, unlinked);
* linkage-ID stability since the previous batch: the share of people with a record current
  and linked in both batches all of whose such records kept their linkage ID; for everyone,
  and for the people with a record updated in this batch alone (a record the encoder
  rejected before and accepts after a correction gets its first ID: counted apart);
* withdrawn records in a release (target 0), records of the unit's held uploads without a
  linkage ID (target 0), and whether the unit's record count per party (run summary) is the
  number delivered (distinct encoded local IDs) minus the number withdrawn;
* a storage scan: every file under the unit's data folder is searched for the withdrawn
  records' pseudonyms (32 hex digits, either case, and the 16 raw bytes) and their
  encodings (each row's bytes from the partner's ``.plk`` files); an encoding that a record
  still held also has (identical records) is not searched for, and is counted apart.

Control: the same current records linked from scratch, as if the unit had never seen an
earlier batch: each partner's current list encoded afresh (``pacelink encode``) and linked
offline (``pacelink link --threshold T``, T the unit's pinned threshold), through the same
linking function as the unit's runs. The difference between the unit's F1 and this one is
what linking in batches costs; the rest of any change from batch to batch is the data's.

Reference: Splink on the plain text of the same current records, per batch, run as
:mod:`benchmarks.quality` runs it (Fellegi-Sunter, EM-trained, clustered at match
probability 0.5); pacelink's F1 is printed as a ratio to Splink's of the same run.

Targets: at least 99.5% of people keep their linkage ID from batch to batch (updated records
included); F1 at the last batch no lower than F1 at the first minus 0.002; 0 withdrawn
records found in releases or storage. Results go to ``benchmarks/results/lifecycle.json``
(``lifecycle-forbid.json`` with ``--duplicates forbid``); ``python -m benchmarks.report``
puts them in ``docs/benchmarks.md``.

This module is over 500 lines because it is one benchmark: the run that drives the unit
through every batch, the measures it takes after each (above), the storage scan and the
report of its figures; the data come from :mod:`benchmarks.synthetic.lifecycle`.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

import numpy as np
import pandas as pd
from typer.testing import CliRunner

from benchmarks.harness import RESULTS, WORK, machine
from benchmarks.quality import Dataset, party_of, run_splink
from benchmarks.service_load import serve_unit
from benchmarks.synthetic import (
    TRUTH_COLUMN,
    Lifecycle,
    make_lifecycle,
    to_pace_columns,
    write_lifecycle,
)
from encoder.cli import app, load_plugins
from encoder.fileformat import read_encodings
from encoder.keymap import canonical_local_id, read_key_map
from encoder.keys import generate_secret, load_record_key
from linkage_unit.client import UnitClient
from linkage_unit.matching.evaluation import evaluate

__all__ = [
    "TARGET_F1_DROP",
    "TARGET_STABLE_SHARE",
    "ProductError",
    "main",
    "markdown",
    "run_lifecycle",
    "scan_storage",
    "targets",
]


TARGET_STABLE_SHARE: Final = 0.995
"""Share of people (present in two consecutive batches) who must keep their linkage ID."""
TARGET_F1_DROP: Final = 0.002
"""F1 at the last batch may be at most this much below F1 at the first."""
SCHEMA: Final = "pace-default"
_COMMAND_TIMEOUT: Final = 1800.0


class ProductError(RuntimeError):
    """A product command failed: the benchmark reports it instead of working around it."""

    def __init__(self, argv: Sequence[str], returncode: int, output: str) -> None:
        """Record the failed command, its exit status and what it printed."""
        self.argv = list(argv)
        self.returncode = returncode
        self.output = output
        shown = shlex.join(["pacelink", *argv])
        super().__init__(f"`{shown}` exited {returncode}:\n{output.strip()[-3000:]}")


@dataclass
class _Partner:
    """One partner's premises: its keys, token and what it has delivered."""

    name: str
    folder: Path
    record_key: Path
    token_file: Path
    uploads: list[Path] = field(default_factory=list)  # .plk files, in upload order
    encoded: set[str] = field(default_factory=set)  # local IDs the unit was sent
    withdrawn: set[str] = field(default_factory=set)
    rejected: int = 0


class _Pacelink:
    """Runs `pacelink` commands as the operator or a partner types them, and times them.

    In a separate process each (the default: what a partner runs), or, with ``in_process``,
    through the same command-line application in this process (typer's test runner: the same
    argument parsing and command functions, without starting Python and importing the
    encoder's numerical libraries again for every command, which dominates at small sizes).
    """

    def __init__(self, cwd: Path, admin_token: str, *, in_process: bool = False) -> None:
        self.cwd = cwd
        self._admin = admin_token
        self.in_process = in_process
        self.seconds: dict[str, float] = {}
        self.commands: list[str] = []

    def __call__(self, *args: str | Path, admin: bool = False) -> str:
        argv = [str(a) for a in args]
        # Only operator commands get the admin token, as on a real unit.
        admin_token = self._admin if admin else None
        started = time.perf_counter()
        code, output = self._in_process(argv, admin_token) if self.in_process else (
            self._subprocess(argv, admin_token)
        )  # fmt: skip
        name = " ".join(a for a in argv[:2] if not a.startswith("-") and "/" not in a)
        self.seconds[name] = self.seconds.get(name, 0.0) + time.perf_counter() - started
        self.commands.append(shlex.join(["pacelink", *argv]))
        if code != 0:
            raise ProductError(argv, code, output)
        return output

    def _subprocess(self, argv: list[str], admin_token: str | None) -> tuple[int, str]:
        env = {k: v for k, v in os.environ.items() if k != "PACELINK_ADMIN_TOKEN"}
        if admin_token is not None:
            env["PACELINK_ADMIN_TOKEN"] = admin_token
        env["COLUMNS"] = "200"  # rich tables unwrapped in the messages
        done = subprocess.run(
            [sys.executable, "-m", "encoder", *argv], cwd=self.cwd, env=env,
            stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=_COMMAND_TIMEOUT,
            check=False,
        )  # fmt: skip
        return done.returncode, done.stdout + done.stderr

    @staticmethod
    def _in_process(argv: list[str], admin_token: str | None) -> tuple[int, str]:
        load_plugins()  # what `main` does first: the unit's commands join the application
        result = CliRunner().invoke(
            app, argv, env={"PACELINK_ADMIN_TOKEN": admin_token, "COLUMNS": "200"}
        )
        output = result.output
        if result.exception is not None and not isinstance(result.exception, SystemExit):
            output += f"\n{type(result.exception).__name__}: {result.exception}"
        return result.exit_code, output


# --------------------------------------------------------------------------------------
# partner-side facts the evaluator reads back (the partner's own files)
# --------------------------------------------------------------------------------------


def _key_map(plk: Path) -> list[str]:
    """Local IDs by encoding row, from the key map `pacelink encode` wrote beside the file."""
    return read_key_map(plk.with_name(plk.stem + ".keys.csv"))


def _rows_of(plk: Path) -> dict[str, bytes]:
    """Each local ID's encoding (its row's packed bytes) in one `.plk` file."""
    bits = np.asarray(read_encodings(plk).bits)
    return {local_id: bits[row].tobytes() for row, local_id in enumerate(_key_map(plk))}


def _pseudonyms(record_key: Path, local_ids: Iterable[str]) -> dict[str, str]:
    """The pseudonym (32 hex digits) the encoder writes for each local ID under a record key."""
    ids = list(local_ids)
    made = load_record_key(record_key).pseudonyms([canonical_local_id(i) for i in ids])
    return dict(zip(ids, (str(v) for v in made.tolist()), strict=True))


# --------------------------------------------------------------------------------------
# storage scan
# --------------------------------------------------------------------------------------


def scan_storage(
    folder: Path, patterns: dict[str, bytes], *, only: Sequence[str] | None = None
) -> dict[str, list[str]]:
    """Search every file under ``folder`` for byte strings.

    Args:
        folder: The unit's data folder (its database, uploads, indexes, everything).
        patterns: Byte strings by a label.
        only: Search only the files of these names, directly in ``folder``.

    Returns:
        For each label found, the files (relative to ``folder``) it was found in.
    """
    found: dict[str, list[str]] = {}
    paths = (folder / n for n in only) if only is not None else folder.rglob("*")
    for path in sorted(paths):
        if not path.is_file() or path.is_symlink():
            continue
        try:
            data = path.read_bytes()
        except OSError:  # removed while the unit worked (a temporary file): not stored
            continue
        name = str(path.relative_to(folder))
        for label, needle in patterns.items():
            if needle and needle in data:
                found.setdefault(label, []).append(name)
    return found


def _scan_patterns(
    partners: Sequence[_Partner], withdrawn: dict[str, set[str]]
) -> tuple[dict[str, bytes], int]:
    """What a withdrawn record leaves if the unit kept it: pseudonyms and encodings.

    Returns:
        The patterns by label, and how many withdrawn records' encodings were left out
        because a record still held has the same encoding (the unit keeps that one).
    """
    patterns: dict[str, bytes] = {}
    held_rows: set[bytes] = set()
    gone_rows: dict[str, set[bytes]] = {}
    for p in partners:
        gone = withdrawn.get(p.name, set())
        latest: dict[str, bytes] = {}
        for plk in p.uploads:
            for local_id, row in _rows_of(plk).items():
                if local_id in gone:
                    gone_rows.setdefault(f"{p.name}:{local_id}", set()).add(row)
                else:
                    latest[local_id] = row  # a later upload replaces the record
        held_rows |= set(latest.values())
        for local_id, pseudonym in _pseudonyms(p.record_key, sorted(gone)).items():
            label = f"{p.name}:{local_id}"
            patterns[f"{label} pseudonym hex"] = pseudonym.lower().encode()
            patterns[f"{label} pseudonym HEX"] = pseudonym.upper().encode()
            patterns[f"{label} pseudonym bytes"] = bytes.fromhex(pseudonym)
    shared = 0
    for label, rows in gone_rows.items():
        for k, row in enumerate(sorted(rows)):
            if row in held_rows:
                shared += 1
            else:
                patterns[f"{label} encoding {k}"] = row
    return patterns, shared


# --------------------------------------------------------------------------------------
# measures
# --------------------------------------------------------------------------------------


def _read_mapping(path: Path) -> dict[str, str]:
    frame = pd.read_csv(path, dtype=str, keep_default_na=False)
    return dict(zip(frame["local_id"], frame["linkage_id"], strict=True))


def _labels(
    current: dict[str, pd.DataFrame], lifecycle: Lifecycle, ids: dict[tuple[str, str], str]
) -> pd.DataFrame:
    """Every current record with its party, person and linkage ID ('' where none)."""
    parts = []
    for k, spec in enumerate(lifecycle.partners):
        frame = current[spec.name]
        local = frame[spec.columns.local_id].astype(str).tolist()
        parts.append(pd.DataFrame({
            "partner": spec.name, "party": k, "local_id": local,
            "person": frame[TRUTH_COLUMN].to_numpy(np.int64),
            "linkage_id": [ids.get((spec.name, i), "") for i in local],
        }))  # fmt: skip
    return pd.concat(parts, ignore_index=True)


def _quality(records: pd.DataFrame) -> dict[str, float | int]:
    labels = records["linkage_id"].to_numpy(dtype=object).copy()
    missing = labels == ""
    # A record without a linkage ID (rejected by the encoder) is linked to nothing.
    labels[missing] = [f"unlinked-{i}" for i in range(int(missing.sum()))]
    entity = pd.factorize(labels)[0].astype(np.int64)
    metrics = evaluate(records["party"].to_numpy(np.int64), records["person"].to_numpy(np.int64),
                       entity).as_dict()  # fmt: skip
    return {k: metrics[k] for k in ("precision", "recall", "f1", "true_pairs",
                                    "predicted_pairs", "correct_pairs")}  # fmt: skip


def _stability(
    before: pd.DataFrame, after: pd.DataFrame, updated: set[tuple[str, str]]
) -> dict[str, float | int | None]:
    """Share of people whose linkage IDs stayed the same from one batch to the next.

    Share of people, with a linked record in both batches, all of whose such records kept
    their ID.

    A record counts when it had a linkage ID before: one the encoder rejected then (no ID)
    and accepts now that its details were corrected gets its first ID, which changes no ID
    anyone held (counted apart, ``first_ids``); one that had an ID and has none now counts
    as changed.
    """
    merged = before.merge(after, on=["partner", "local_id"], suffixes=("_0", "_1"))
    first_ids = int(((merged["linkage_id_0"] == "") & (merged["linkage_id_1"] != "")).sum())
    merged = merged[merged["linkage_id_0"] != ""]
    same = (merged["linkage_id_0"] == merged["linkage_id_1"]).groupby(merged["person_0"]).all()
    keys = zip(merged["partner"], merged["local_id"], strict=True)
    touched = merged.loc[[k in updated for k in keys], "person_0"].unique()
    same_updated = same.loc[touched]
    return {
        "people": len(same),
        "stable_share": float(same.mean()) if len(same) else None,
        "changed_people": int((~same).sum()),
        "updated_people": len(same_updated),
        "updated_stable_share": float(same_updated.mean()) if len(same_updated) else None,
        "updated_changed_people": int((~same_updated).sum()),
        "first_ids": first_ids,
    }


def _splink(current: dict[str, pd.DataFrame], lifecycle: Lifecycle) -> dict[str, Any]:
    """Splink on the plain text of the current records, as the quality benchmark runs it."""
    parties = tuple(party_of(current[s.name], s) for s in lifecycle.partners)
    result = run_splink(Dataset("lifecycle", "current records", parties, {}))
    at_half = result["at_0_5"]
    return {
        "precision": at_half["precision"],
        "recall": at_half["recall"],
        "f1": at_half["f1"],
        "best_f1": result["best"]["f1"],
        "best_probability": result["best"]["threshold"],
        "seconds": result["seconds"],
    }


def _from_scratch(
    pacelink: _Pacelink, lifecycle: Lifecycle, current: dict[str, pd.DataFrame], folder: Path,
    secret: Path, threshold: float, duplicates: str,
) -> dict[str, float | int]:  # fmt: skip
    """The control: the current records encoded afresh and linked offline in one go."""
    folder.mkdir()
    plks = []
    for spec in lifecycle.partners:
        csv_path = folder / f"{spec.name}.csv"
        pace = to_pace_columns(current[spec.name], spec).drop(columns=[TRUTH_COLUMN])
        pace.to_csv(csv_path, index=False, lineterminator="\n", encoding="utf-8")
        plk = folder / f"{spec.name}.plk"
        pacelink("encode", csv_path, "--schema", SCHEMA, "--id-column", "local_id",
                 "--secret-file", secret, "--out", plk, "--quiet")  # fmt: skip
        plks.append(plk)
    groups_path = folder / "groups.csv"
    pacelink("link", *plks, "--threshold", repr(threshold), "--duplicates", duplicates,
             "--out", groups_path)  # fmt: skip
    groups = pd.read_csv(groups_path, dtype={"entity_id": str})
    ids: dict[tuple[str, str], str] = {}
    for k, (spec, plk) in enumerate(zip(lifecycle.partners, plks, strict=True)):
        local = _key_map(plk)
        mine = groups[groups["party"] == k]
        ids.update({(spec.name, local[r]): f"e{e}" for r, e in zip(mine["row"], mine["entity_id"],
                                                                  strict=True)})  # fmt: skip
    return _quality(_labels(current, lifecycle, ids))


# --------------------------------------------------------------------------------------
# the run
# --------------------------------------------------------------------------------------


def _write_token(path: Path, token: str) -> None:
    # A party token is a credential: its file must be private (the upload command checks).
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        fh.write(token + "\n")


def _latest_run(unit_url: str, admin_token: str, project: str) -> dict[str, Any]:
    """The latest run as the operator sees it (`pacelink unit status` shows the same)."""
    with UnitClient(unit_url, admin_token) as admin:
        runs = admin.runs(project)
    latest: dict[str, Any] = runs[0]
    return latest


def run_lifecycle(
    lifecycle: Lifecycle,
    workdir: Path,
    *,
    reference: bool = True,
    in_process: bool = False,
    duplicates: str = "forbid",
    log: Callable[[str], None] = print,
) -> dict[str, Any]:
    """Drive a real unit through a lifecycle's batches with the product's commands; measure.

    Args:
        lifecycle: From :func:`benchmarks.synthetic.make_lifecycle`.
        workdir: An empty folder: the partners' premises, the operator's files, the unit's
            data folder (``unit/``).
        reference: Also run Splink on each batch's plain text (slow at large sizes).
        in_process: Run the commands through the command-line application in this process
            instead of one process each (see :class:`_Pacelink`).
        duplicates: The project's rule for a partner's duplicate clients (``forbid`` or
            ``linked``); the from-scratch control links with the same rule.
        log: Where progress lines go.

    Returns:
        ``{"batches": [per-batch figures], "commands": ..., "seconds_by_command": ...}``.

    Raises:
        ProductError: A product command failed (the message names the command).
    """
    admin_token = generate_secret().value
    files = write_lifecycle(lifecycle, workdir / "data")
    operator = workdir / "operator"
    operator.mkdir()
    pacelink = _Pacelink(workdir, admin_token, in_process=in_process)
    names = [s.name for s in lifecycle.partners]
    data_dir = workdir / "unit"
    batches: list[dict[str, Any]] = []
    with serve_unit(data_dir, admin_token) as (url, _proc):
        log(f"unit at {url}; creating the project")
        tokens_path = operator / "tokens.json"
        party_args = [a for n in names for a in ("--party", n)]
        pacelink("unit", "project", "create", "--unit", url, "--name", "lifecycle benchmark",
                 "--purpose", "Lifecycle benchmark: synthetic data", *party_args,
                 "--schema", SCHEMA, "--threshold", "auto", "--duplicates", duplicates,
                 "--out", tokens_path,
                 admin=True)  # fmt: skip
        created = json.loads(tokens_path.read_text(encoding="utf-8"))
        project: str = created["project_id"]
        secret = workdir / "partnership.key"
        pacelink("keygen", "--out", secret)  # one partner makes it; both hold a copy
        partners: dict[str, _Partner] = {}
        for name in names:
            folder = workdir / name
            folder.mkdir()
            shutil.copyfile(secret, folder / "partnership.key")
            os.chmod(folder / "partnership.key", 0o600)
            token = folder / "party.token"
            _write_token(token, created["parties"][name])
            key = folder / "record.key"
            pacelink("keygen", "--record-key", "--out", key)
            partners[name] = _Partner(name, folder, key, token)

        previous: pd.DataFrame | None = None
        first_f1: float | None = None
        for batch, batch_files in zip(lifecycle.batches, files, strict=True):
            started = time.perf_counter()
            b = batch.number
            log(f"batch {b}: " + ", ".join(
                f"{n} {batch.kinds[n]} of {len(f):,}" for n, f in batch.deliveries.items()
            ) + "; withdrawals " + ", ".join(
                f"{n} {len(i)}" for n, i in batch.withdrawals.items()
            ))  # fmt: skip
            for name in names:
                p = partners[name]
                paths = batch_files.get(name, {})
                if "records" in paths:
                    plk = p.folder / f"batch{b}.plk"
                    report = p.folder / f"batch{b}.report.json"
                    pacelink("encode", paths["records"], "--schema", SCHEMA, "--id-column",
                             "local_id", "--secret-file", p.folder / "partnership.key",
                             "--record-key", p.record_key, "--out", plk, "--report", report,
                             "--quiet")  # fmt: skip
                    p.rejected += int(json.loads(report.read_text(encoding="utf-8"))["rejected"])
                    pacelink("upload", plk, "--unit", url, "--project", project, "--token-file",
                             p.token_file, "--as", batch.kinds[name])  # fmt: skip
                    p.uploads.append(plk)
                    p.encoded |= set(_key_map(plk))
                if "withdrawn" in paths:
                    ids_now = set(batch.withdrawals[name])
                    # A client whose every record the encoder rejected never reached the
                    # unit; the partner withdraws the rest, as the command offers.
                    unknown = ["--allow-unknown"] if ids_now - p.encoded else []
                    pacelink("withdraw", "--unit", url, "--project", project, "--token-file",
                             p.token_file, "--record-key", p.record_key, "--ids",
                             paths["withdrawn"], *unknown)  # fmt: skip
                    p.withdrawn |= ids_now
            pacelink("unit", "run", "--unit", url, "--project", project, "--wait", admin=True)
            run = _latest_run(url, admin_token, project)
            at_unit: dict[str, int] = (run.get("summary") or {}).get("records_by_party", {})

            # Each partner fetches the mapping of each of its uploads; a later upload's row
            # stands for the record as last delivered.
            ids: dict[tuple[str, str], str] = {}
            in_release: list[str] = []
            disagreeing = 0
            for name in names:
                p = partners[name]
                for plk in p.uploads:
                    out = p.folder / f"{plk.stem}.mapping.after{b}.csv"
                    pacelink("results", "--unit", url, "--project", project, "--token-file",
                             p.token_file, "--release", "mapping", "--keys",
                             plk.with_name(plk.stem + ".keys.csv"), "--out", out)  # fmt: skip
                    mapping = _read_mapping(out)
                    in_release += [f"{name}:{i}" for i in mapping if i in p.withdrawn]
                    for local_id, linkage_id in mapping.items():
                        old = ids.get((name, local_id))
                        disagreeing += old is not None and old != linkage_id
                        ids[(name, local_id)] = linkage_id

            # Every record the unit was sent and still holds must have a linkage ID.
            unlinked = sum(
                1 for n in names for i in partners[n].encoded - partners[n].withdrawn
                if (n, i) not in ids
            )  # fmt: skip
            withdrawn = {n: set(partners[n].withdrawn) for n in names}
            patterns, shared = _scan_patterns(list(partners.values()), withdrawn)
            scan_started = time.perf_counter()
            found = scan_storage(data_dir, patterns)
            scan_seconds = time.perf_counter() - scan_started
            # Controls: the unit's log (beside its data folder), and the partners' own
            # folders, whose .plk files hold every withdrawn record: a scan that finds
            # nothing there would be looking for the wrong bytes.
            in_log = scan_storage(data_dir.parent, patterns, only=("unit.log",))
            control = {
                label for p in partners.values() for label in scan_storage(p.folder, patterns)
            }

            current = lifecycle.current(b)
            records = _labels(current, lifecycle, ids)
            quality = _quality(records)
            first_f1 = quality["f1"] if first_f1 is None else first_f1
            scratch = _from_scratch(pacelink, lifecycle, current, workdir / f"scratch{b}",
                                    secret, float(run["threshold_used"]), duplicates)  # fmt: skip
            updated = lifecycle.updates[lifecycle.updates["batch"] == b]
            touched = set(zip(updated["partner"], updated["local_id"], strict=True))
            counts = {
                n: {"delivered": len(partners[n].encoded),
                    "withdrawn": len(partners[n].withdrawn & partners[n].encoded),
                    "at_unit": at_unit.get(n, -1)}
                for n in names
            }  # fmt: skip
            figures: dict[str, Any] = {
                "batch": b,
                "kinds": dict(batch.kinds),
                "delivered": {n: len(f) for n, f in batch.deliveries.items()},
                "withdrawn_now": {n: len(i) for n, i in batch.withdrawals.items()},
                "updates_now": updated["kind"].value_counts().to_dict(),
                "current_records": {n: len(f) for n, f in current.items()},
                "rejected_by_encoder": {n: partners[n].rejected for n in names},
                "quality": quality,
                "threshold": run["threshold_used"],
                "from_scratch": scratch,
                "f1_minus_from_scratch": quality["f1"] - scratch["f1"],
                "held_records_without_linkage_id": unlinked,
                "rows_whose_uploads_disagree": disagreeing,
                "withdrawn_in_releases": len(in_release),
                "withdrawn_in_releases_examples": in_release[:10],
                "records_by_party": counts,
                "counts_reconcile": all(
                    c["at_unit"] == c["delivered"] - c["withdrawn"] for c in counts.values()
                ),
                "storage_scan": {
                    "withdrawn_records": sum(len(v) for v in withdrawn.values()),
                    "patterns": len(patterns),
                    "encodings_shared_with_held_records": shared,
                    "found": len(found),
                    "found_examples": dict(list(found.items())[:10]),
                    "found_in_unit_log": len(in_log),
                    "control_found_in_partner_files": len(control),
                    # The partners' files hold pseudonyms as bytes, never as hex.
                    "control_searchable": sum(not k.lower().endswith(" hex") for k in patterns),
                    "files": sum(1 for f in data_dir.rglob("*") if f.is_file()),
                    "bytes": sum(f.stat().st_size for f in data_dir.rglob("*") if f.is_file()),
                    "seconds": round(scan_seconds, 2),
                },
                "stability": None if previous is None else _stability(previous, records, touched),
                "f1_drop_since_first": first_f1 - quality["f1"],
            }
            if reference:
                log(f"batch {b}: Splink on the plain text")
                splink = _splink(current, lifecycle)
                figures["splink"] = splink
                figures["f1_ratio_to_splink"] = (
                    quality["f1"] / splink["f1"] if splink["f1"] else None
                )
            figures["seconds"] = round(time.perf_counter() - started, 2)
            batches.append(figures)
            log(_row(figures))
            previous = records
    return {
        "batches": batches,
        "project": project,
        "commands_run": "in this process (typer runner)" if in_process else "one process each",
        "seconds_by_command": {k: round(v, 2) for k, v in pacelink.seconds.items()},
        "commands": len(pacelink.commands),
        "command_examples": pacelink.commands[: 8 + 6 * len(names)],
    }


# --------------------------------------------------------------------------------------
# report
# --------------------------------------------------------------------------------------


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{value:.2%}"


def _row(f: dict[str, Any]) -> str:
    s = f["stability"] or {}
    ratio = f.get("f1_ratio_to_splink")
    return (
        f"batch {f['batch']}: P {f['quality']['precision']:.4f} R {f['quality']['recall']:.4f} "
        f"F1 {f['quality']['f1']:.4f}"
        + f" (from scratch {f['from_scratch']['f1']:.4f})"
        + (f" (x{ratio:.4f} Splink's {f['splink']['f1']:.4f})" if ratio is not None else "")
        + f"; stable {_pct(s.get('stable_share'))}, updated {_pct(s.get('updated_stable_share'))}"
        f"; withdrawn in releases {f['withdrawn_in_releases']}, in storage "
        f"{f['storage_scan']['found']}; counts reconcile {f['counts_reconcile']}"
    )


def targets(batches: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """The benchmark's targets, met or not, with the figures."""
    steps = [b["stability"] for b in batches[1:] if b["stability"]]
    stable = [s["stable_share"] for s in steps if s["stable_share"] is not None]
    updated = [s["updated_stable_share"] for s in steps if s["updated_stable_share"] is not None]
    first, last = batches[0]["quality"]["f1"], batches[-1]["quality"]["f1"]
    released = sum(b["withdrawn_in_releases"] for b in batches)
    stored = max((b["storage_scan"]["found"] for b in batches), default=0)
    return {
        "min_stable_share": min(stable, default=None),
        "min_updated_stable_share": min(updated, default=None),
        "stable_share_at_least_99.5%": (
            bool(stable) and min(stable + updated) >= TARGET_STABLE_SHARE
        ),
        "first_f1": first,
        "last_f1": last,
        "last_f1_at_least_first_minus_0.002": last >= first - TARGET_F1_DROP,
        # What linking in batches costs against linking the same records from scratch.
        "max_f1_below_from_scratch": max(
            (b["from_scratch"]["f1"] - b["quality"]["f1"] for b in batches if "from_scratch" in b),
            default=None,
        ),
        "from_scratch_first_f1": batches[0].get("from_scratch", {}).get("f1"),
        "from_scratch_last_f1": batches[-1].get("from_scratch", {}).get("f1"),
        "withdrawn_in_releases": released,
        "withdrawn_found_in_storage": stored,
        "no_withdrawn_record_found": released == 0 and stored == 0,
    }


def markdown(result: dict[str, Any]) -> list[str]:
    """The benchmark's section of `docs/benchmarks.md`, as Markdown lines."""
    m = result["machine"]
    setup = result["setup"]
    lines = [
        f"Command: `{result['command']}` ({result['seconds'] / 60:.1f} minutes).",
        "",
        f"Machine: {m['cpu']}, {m['cores']} cores, {m['memory_gib']} GiB. "
        f"{setup['people']:,} people (seed {setup['seed']}), {setup['batches']} batches: the "
        "benefits department's snapshot, the skills agency's snapshot and quarterly deltas; "
        "a real `pacelink unit serve` driven by the `pacelink` commands over HTTP on loopback; "
        f"project threshold `auto`, duplicates `{setup.get('duplicates', 'forbid')}`. "
        "Control: the same current records encoded afresh and linked from scratch "
        "(`pacelink encode`, `pacelink link --threshold` at the unit's threshold). "
        "Reference: Splink (EM-trained, plain text, p >= 0.5) on the same current records.",
        "",
        "| batch | skills agency sent | updated | withdrawn | P | R | F1 | F1 from scratch "
        "| F1 / Splink | IDs kept (all) | IDs kept (updated) | withdrawn in releases / storage "
        "| counts reconcile |",
        "|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    for f in result["batches"]:
        s = f["stability"] or {}
        ratio = f.get("f1_ratio_to_splink")
        lines.append(
            f"| {f['batch']} | {f['kinds'].get('skills_agency', '-')} "
            f"{f['delivered'].get('skills_agency', 0):,} | {sum(f['updates_now'].values()):,} "
            f"| {sum(f['withdrawn_now'].values()):,} | {f['quality']['precision']:.4f} "
            f"| {f['quality']['recall']:.4f} | **{f['quality']['f1']:.4f}** "
            f"| {f['from_scratch']['f1']:.4f} | {'-' if ratio is None else f'{ratio:.4f}'} "
            f"| {_pct(s.get('stable_share'))} | {_pct(s.get('updated_stable_share'))} "
            f"| {f['withdrawn_in_releases']} / {f['storage_scan']['found']} "
            f"| {f['counts_reconcile']} |"
        )
    t = result["targets"]
    lines += [
        "",
        f"Targets: linkage IDs kept batch to batch >= 99.5% (lowest: "
        f"{_pct(t['min_stable_share'])}, updated people {_pct(t['min_updated_stable_share'])}: "
        f"**{'met' if t['stable_share_at_least_99.5%'] else 'not met'}**); F1 at the last batch "
        f">= F1 at the first - 0.002 ({t['last_f1']:.4f} against {t['first_f1']:.4f}: "
        f"**{'met' if t['last_f1_at_least_first_minus_0.002'] else 'not met'}**; from "
        f"scratch {t['from_scratch_last_f1']:.4f} against {t['from_scratch_first_f1']:.4f}, and "
        f"the unit's F1 is at most {t['max_f1_below_from_scratch']:.4f} below it at any "
        "batch); withdrawn "
        f"records found: {t['withdrawn_in_releases']} in releases, "
        f"{t['withdrawn_found_in_storage']} in the unit's storage (target 0: "
        f"**{'met' if t['no_withdrawn_record_found'] else 'not met'}**).",
    ]
    return lines


def main(argv: Sequence[str] | None = None) -> int:
    """Run the benchmark, print the table, write the results file."""
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.lifecycle", description=__doc__.split("\n", 1)[0]
    )
    parser.add_argument("--people", type=int, default=6_000, help="population size")
    parser.add_argument("--batches", type=int, default=4, help="snapshot + deltas")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=RESULTS, help="results folder")
    parser.add_argument("--no-reference", action="store_true", help="skip Splink")
    parser.add_argument(
        "--duplicates",
        choices=("forbid", "linked"),
        default="linked",
        help="the project's rule for a partner's duplicate clients (the skills agency's list "
        "holds some clients twice); results go to lifecycle.json (linked) or "
        "lifecycle-forbid.json",
    )
    parser.add_argument("--keep", action="store_true", help="keep the work folder")
    parser.add_argument(
        "--in-process",
        action="store_true",
        help="run the pacelink commands in this process (same application, faster start)",
    )
    given = list(argv if argv is not None else sys.argv[1:])
    args = parser.parse_args(given)

    started = time.perf_counter()

    def log(message: str) -> None:
        print(f"[{time.perf_counter() - started:6.1f} s] {message}", flush=True)

    lifecycle = make_lifecycle(args.people, args.seed, batches=args.batches)
    WORK.mkdir(parents=True, exist_ok=True)
    workdir = Path(tempfile.mkdtemp(prefix="lifecycle-", dir=WORK))
    try:
        result = run_lifecycle(lifecycle, workdir, reference=not args.no_reference,
                               in_process=args.in_process, duplicates=args.duplicates,
                               log=log)  # fmt: skip
    except ProductError as exc:
        print(f"product command failed: {exc}", file=sys.stderr)
        print(f"work folder kept: {workdir}", file=sys.stderr)
        return 2
    if not args.keep:
        shutil.rmtree(workdir, ignore_errors=True)
    doc: dict[str, Any] = {
        "benchmark": "lifecycle",
        "command": shlex.join(["python", "-m", "benchmarks.lifecycle", *given]),
        "machine": machine(),
        "setup": {
            "people": args.people,
            "batches": args.batches,
            "seed": args.seed,
            "rates": dataclasses.asdict(lifecycle.rates),
            "schema": SCHEMA,
            "threshold": "auto",
            "duplicates": args.duplicates,
            "unit": "pacelink unit serve (separate process, SQLite, 1 worker process)",
            "reference": None if args.no_reference else "Splink (DuckDB), p >= 0.5",
        },
        **result,
        "targets": targets(result["batches"]),
        "seconds": round(time.perf_counter() - started, 1),
    }
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / ("lifecycle.json" if args.duplicates == "linked" else "lifecycle-forbid.json")
    path.write_text(json.dumps(doc, indent=1, default=str) + "\n", encoding="utf-8")
    print("\n".join(markdown(doc)))
    log(f"wrote {path}")
    return 0 if doc["targets"]["no_withdrawn_record_found"] else 1


if __name__ == "__main__":
    raise SystemExit(main())
