"""The operator's offline linkage, `pacelink link`: encoding files in, GROUPS.csv out.

`pacelink link` links encoding files offline, on the operator's side: it checks that every
file was made with the same schema and secret, links them, and writes GROUPS.csv
(`entity_id,party,row`: party is the file's position, 0-based; row is the encoding row in
that file, 0-based as in its key map).
"""

from __future__ import annotations

import contextlib
import csv
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.progress import (
    BarColumn,
    Progress,
    SpinnerColumn,
    TaskProgressColumn,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.table import Table

from encoder.atomic import atomic_write
from encoder.cli import fail, user_errors
from encoder.fileformat import PlkHeader, read_encodings
from linkage_unit.commands.threshold import parse_threshold
from linkage_unit.matching.blocking import DEFAULT_BLOCKING, BlockingConfig
from linkage_unit.matching.gpu import available as gpu_available
from linkage_unit.matching.linkage import link_encodings
from linkage_unit.matching.solving import DEFAULT_DUPLICATES

__all__ = ["check_compatible", "link"]

err = Console(stderr=True)
out = Console()


def check_compatible(headers: Sequence[PlkHeader], paths: list[Path]) -> None:
    """Refuse files that cannot be linked together, saying which file differs and how."""
    first, first_path = headers[0], paths[0]
    for header, path in zip(headers[1:], paths[1:], strict=True):
        if header.schema_fingerprint != first.schema_fingerprint:
            fail(f"{path} was encoded with a different schema than {first_path}")
        if header.key_check_value != first.key_check_value:
            fail(f"{path} was encoded with a different secret than {first_path}")
        if header.bit_length != first.bit_length:
            fail(f"{path} has {header.bit_length}-bit encodings, {first_path} "
                 f"{first.bit_length}-bit")  # fmt: skip


def link(
    files: Annotated[list[Path], typer.Argument(metavar="A.plk B.plk [C.plk ...]")],
    out_path: Annotated[Path, typer.Option("--out", help="GROUPS.csv to write.")],
    threshold: Annotated[
        str, typer.Option("--threshold", help="Dice threshold in (0, 1], or 'auto'.")
    ] = "auto",
    exhaustive: Annotated[
        bool, typer.Option("--exhaustive", help="Compare every pair (no blocking).")
    ] = False,
    duplicates: Annotated[
        str,
        typer.Option(
            "--duplicates",
            help="linked (default): a party's duplicate records (matching each other) share "
            "an entity; forbid: one record per party per entity; allow: no party constraint.",
        ),
    ] = DEFAULT_DUPLICATES,
    scheduler: Annotated[
        str | None,
        typer.Option(
            "--scheduler",
            help="Dask scheduler address (tcp://host:8786): the "
            "comparisons run on its workers, with the same result.",
        ),
    ] = None,
    scratch: Annotated[
        Path | None,
        typer.Option(
            "--scratch",
            help="With --scheduler: a folder every Dask worker can "
            "read, for the encodings they compare (default: beside --out).",
        ),
    ] = None,
    workers: Annotated[int | None, typer.Option("--workers", min=1, help="Threads.")] = None,
    device: Annotated[
        str,
        typer.Option(
            "--device",
            help="cpu, or gpu: score every pair on a CUDA GPU (no "
            "blocking; same result as --exhaustive).",
        ),
    ] = "cpu",
) -> None:
    """Link encoding files offline and write GROUPS.csv (entity_id,party,row)."""
    if len(files) < 2:
        fail("link needs at least two encoding files")
    if duplicates not in ("forbid", "linked", "allow"):
        fail(f"--duplicates {duplicates!r}: expected 'forbid', 'linked' or 'allow'")
    if scratch is not None and scheduler is None:
        fail("--scratch is for the Dask workers: add --scheduler")
    if device not in ("cpu", "gpu"):
        fail(f"--device {device!r}: expected 'cpu' or 'gpu'")
    if device == "gpu":
        if scheduler is not None:
            fail("--device gpu runs on this machine's GPU: leave out --scheduler")
        if not gpu_available():
            fail("--device gpu: numba finds no CUDA GPU on this machine")
    if not out_path.parent.is_dir():
        fail(f"{out_path.parent}: output folder does not exist")
    chosen = parse_threshold(threshold)
    try:
        encodings = [read_encodings(path) for path in files]
    except user_errors() as exc:
        fail(str(exc))
    check_compatible([e.plk_header for e in encodings], files)
    blocking = BlockingConfig(exhaustive=True) if exhaustive else DEFAULT_BLOCKING
    columns = (
        SpinnerColumn(),
        TextColumn("[progress.description]{task.description}"),
        BarColumn(),
        TaskProgressColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
    )
    with contextlib.ExitStack() as stack, Progress(*columns, console=err,
                                                   transient=False) as bar:  # fmt: skip
        task = bar.add_task("reading encodings", total=1.0)

        def report(description: str, fraction: float) -> None:
            bar.update(task, description=description, completed=fraction)

        if scheduler is not None and scratch is None:
            # Removed afterwards; beside the output, which the operator chose to be writable.
            scratch = Path(stack.enter_context(tempfile.TemporaryDirectory(
                prefix=".pacelink-scratch-", dir=out_path.parent)))  # fmt: skip
        try:
            groups, summary = link_encodings(
                [e.bits for e in encodings],
                chosen,
                blocking=blocking,
                duplicates=duplicates,  # type: ignore[arg-type]
                scheduler=scheduler,
                workers=workers,
                progress=report,
                scratch=scratch,
                device=device,  # type: ignore[arg-type]  # checked above
            )
        except OSError as exc:
            if scheduler is None:
                raise
            # The scheduler is unreachable, or the scratch folder is not writable.
            fail(f"linking on Dask failed: {exc}")
    _write_groups(out_path, groups.entity, groups.party, groups.row)
    table = Table(title="linkage", show_header=False)
    table.add_row("records", " + ".join(f"{n:,}" for n in summary.records))
    table.add_row("blocking", summary.blocking)
    table.add_row("comparisons", f"{summary.comparisons:,}")
    table.add_row("candidates", f"{summary.candidates:,}")
    table.add_row("threshold", f"{summary.threshold:.4f} ({summary.threshold_method})")
    if summary.estimated_precision is not None and summary.estimated_recall is not None:
        table.add_row(
            "estimated precision / recall",
            f"{summary.estimated_precision:.4f} / {summary.estimated_recall:.4f}",
        )
    if summary.duplicates_threshold is not None:
        table.add_row("threshold within a party", f"{summary.duplicates_threshold:.4f}")
    table.add_row("entities", f"{summary.entities:,}")
    table.add_row("records linked to another", f"{summary.linked_records:,}")
    table.add_row("time", f"{summary.seconds:.1f} s")
    table.add_row("written", str(out_path))
    out.print(table)


def _write_groups(path: Path, entity: Any, party: Any, row: Any) -> None:
    """GROUPS.csv, whole or not at all (mode 0600: it says who is who across partners)."""
    with atomic_write(path) as fh:
        writer = csv.writer(fh)
        writer.writerow(("entity_id", "party", "row"))
        writer.writerows(zip(entity.tolist(), party.tolist(), row.tolist(), strict=True))
