"""The `pacelink` command line: partner commands here, further command groups from plug-ins.

The linkage unit adds its commands through the `pacelink.commands` entry-point group, so
the encoder never imports the linkage unit. A plug-in is imported only when its command is
invoked or listed (`pacelink --help`), so `pacelink encode` never loads the service. Every
failure exits non-zero with a one-line message naming the file, row or field; tracebacks
only with PACELINK_DEBUG=1.
"""

from __future__ import annotations

import json
import os
import sys
import time
from collections.abc import Callable
from importlib.metadata import version
from pathlib import Path
from typing import Annotated, Any, NoReturn

import typer
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.table import Table

from encoder.atomic import atomic_write
from encoder.header_row import InputError
from encoder.keys import (
    SecretError,
    generate_record_key,
    generate_secret,
    load_record_key,
    load_secret,
    write_record_key,
    write_secret,
)
from encoder.plugins import PluginGroup, load_plugins

__all__ = ["NO_RECORD_KEY_WARNING", "app", "fail", "load_plugins", "main", "user_errors"]

app = typer.Typer(
    name="pacelink",
    cls=PluginGroup,
    help="Privacy-preserving record linkage for public-service partnerships.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
err = Console(stderr=True)
out = Console()


def user_errors() -> tuple[type[Exception], ...]:
    """Errors whose messages are written for people (and never carry identifiers).

    The modules are imported here, not at the top, so that light commands start fast:
    `encoder.encode` loads pandas and numba (about a second), `keygen` needs none of them.
    """
    from encoder.encode import EncodeError  # noqa: PLC0415  (pandas, numba: see above)
    from encoder.fileformat import EncodingFileError  # noqa: PLC0415  (numpy, pydantic)
    from encoder.keymap import KeyMapError  # noqa: PLC0415  (pyarrow)
    from encoder.schema import SchemaInvalid  # noqa: PLC0415  (clkhash)

    return (EncodeError, InputError, SchemaInvalid, SecretError, EncodingFileError, KeyMapError)


def fail(message: str, code: int = 2) -> NoReturn:
    """Print a one-line error and exit non-zero."""
    err.print(f"[bold red]error:[/] {message}", highlight=False, soft_wrap=True)
    raise typer.Exit(code)


def _guarded(func: Callable[[], Any]) -> Any:
    try:
        return func()
    except Exception as exc:
        if isinstance(exc, user_errors()):
            fail(str(exc))
        raise


#: Printed when encoding without --record-key: what the partner gives up.
NO_RECORD_KEY_WARNING = (
    "no --record-key: the linkage unit will treat every record of a later delivery as new "
    "and cannot withdraw single records (create a key once with `pacelink keygen "
    "--record-key --out FILE`)"
)


@app.command()
def keygen(
    out_path: Annotated[Path, typer.Option("--out", help="File to create (mode 0600).")],
    record_key: Annotated[
        bool,
        typer.Option(
            "--record-key",
            help="Create your own record key instead of a partnership secret. Keep it beside "
            "your key maps and never share it (not with the other partners, not with the "
            "linkage unit). You need the same key for every later delivery and for "
            "withdrawals: losing it means your next upload looks like all-new clients.",
        ),
    ] = False,
    force: Annotated[bool, typer.Option(help="Overwrite an existing file.")] = False,
) -> None:
    """Create a new 256-bit partnership secret, or (--record-key) your own record key.

    Share the partnership secret with the other partners by a secure route; never with the
    linkage unit. A record key is yours alone: keep it beside your key maps, never share
    it, and use the same key for every delivery and for withdrawals; losing it means your
    next upload looks like all-new clients.
    """
    if record_key:
        key = generate_record_key()
        _guarded(lambda: write_record_key(out_path, key, overwrite=force))
        out.print(
            f"wrote a record key to {out_path} (readable by you only; check value "
            f"{key.check_value}). Keep it beside your key maps, back it up, never share it: "
            "every later delivery and every withdrawal needs this same key",
            soft_wrap=True,
        )
        return
    _guarded(lambda: write_secret(out_path, generate_secret(), overwrite=force))
    out.print(f"wrote a 256-bit secret to {out_path} (readable by you only)")


def _parse_mapping(items: list[str]) -> dict[str, str]:
    mapping: dict[str, str] = {}
    for item in items:
        feature, sep, column = item.partition("=")
        if not sep or not feature.strip() or not column.strip():
            fail(f"--column {item!r}: expected FEATURE=COLUMN")
        mapping[feature.strip()] = column.strip()
    return mapping


@app.command()
def encode(
    input_path: Annotated[Path, typer.Argument(metavar="INPUT", help="CSV, XLSX or Parquet.")],
    schema_path: Annotated[
        str,
        typer.Option(
            "--schema", help="Linkage schema file, or a bundled one: pace-default, pace-no-salt."
        ),
    ],
    out_path: Annotated[Path, typer.Option("--out", help="Encoding file to write (.plk).")],
    secret_file: Annotated[
        Path | None,
        typer.Option("--secret-file", help="File holding the secret (else PACELINK_SECRET)."),
    ] = None,
    id_column: Annotated[
        str | None, typer.Option("--id-column", help="Column of your local record ID.")
    ] = None,
    record_key_file: Annotated[
        Path | None,
        typer.Option(
            "--record-key",
            help="Your own record key file (pacelink keygen --record-key): the .plk gets a "
            "pseudonym of each local ID, so the linkage unit can recognise updated records "
            "and withdraw records. Needs --id-column; use the same key for every delivery.",
        ),
    ] = None,
    column: Annotated[
        list[str] | None,
        typer.Option("--column", help="FEATURE=COLUMN, where a column is named differently."),
    ] = None,
    absent: Annotated[
        list[str] | None,
        typer.Option(
            "--absent",
            metavar="FEATURE",
            help="A schema feature your records do not hold (repeatable): encoded as missing "
            "in every record, and recorded in the report and the .plk header, so the linkage "
            "unit knows which features your file holds.",
        ),
    ] = None,
    consent_column: Annotated[
        str | None, typer.Option("--consent-column", help="Only records with consent are encoded.")
    ] = None,
    consent_values: Annotated[
        str, typer.Option("--consent-values", help="Comma-separated values meaning yes.")
    ] = "y,yes,true,1,t",
    report_path: Annotated[
        Path | None, typer.Option("--report", help="Write the encode report (JSON) here.")
    ] = None,
    workers: Annotated[int, typer.Option("--workers", min=1, help="Worker threads.")] = 2,
    delimiter: Annotated[
        str | None, typer.Option("--delimiter", help="CSV delimiter (detected if not given).")
    ] = None,
    encoding: Annotated[
        str, typer.Option("--encoding", help="CSV encoding: auto, utf-8, cp1252, ...")
    ] = "auto",
    sheet: Annotated[str | None, typer.Option("--sheet", help="XLSX sheet name.")] = None,
    skip_rows: Annotated[
        int,
        typer.Option(
            "--skip-rows",
            min=0,
            help="Lines (CSV) or rows (XLSX) above the header to skip, e.g. 1 for a title row. "
            "Row numbers in messages and rejects still count them, as a spreadsheet does.",
        ),
    ] = 0,
    date_format: Annotated[
        str | None,
        typer.Option(
            "--date-format",
            help="strptime format of dates, e.g. %d/%m/%Y (else detected, day-first); "
            "checked before the file is read.",
        ),
    ] = None,
    max_reject_rate: Annotated[
        float,
        typer.Option(
            "--max-reject-rate",
            min=0.0,
            max=1.0,
            help="Fail, writing nothing, when more than this share of the records with consent "
            "is rejected (usually swapped or unmapped columns); 1 never fails.",
        ),
    ] = 0.5,
    force: Annotated[
        bool,
        typer.Option(
            "--force",
            help="Overwrite the outputs (.plk, key map, rejects, report) of an earlier run.",
        ),
    ] = False,
    chunk_rows: Annotated[int, typer.Option("--chunk-rows", min=1000, hidden=True)] = 50_000,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bar.")] = False,
) -> None:
    """Encode a partner file into OUT.plk, with OUT.keys.csv and OUT.rejects.csv beside it.

    OUT.plk goes to the linkage unit. OUT.keys.csv (encoding row from 0 → your local ID)
    and OUT.rejects.csv (input rows, numbered as your spreadsheet shows them, that were
    rejected or had a value treated as missing, and why) stay on your premises. Existing
    outputs are never overwritten without --force; local IDs must be unique.
    """
    # pandas and numba load here, only for the command that encodes (about a second).
    from encoder.encode import EncodeOptions, encode_file  # noqa: PLC0415

    if delimiter == "\\t" or (delimiter or "").lower() == "tab":
        delimiter = "\t"
    mapping = _parse_mapping(column or [])
    if record_key_file is not None and id_column is None:
        fail(
            "--record-key needs --id-column: pseudonyms are made from your local record IDs "
            "(row numbers change from one delivery to the next)"
        )
    record_key = (
        None if record_key_file is None else _guarded(lambda: load_record_key(record_key_file))
    )
    options: EncodeOptions = _guarded(
        lambda: EncodeOptions(
            id_column=id_column,
            columns=mapping,
            consent_column=consent_column,
            consent_values=frozenset(
                v.strip().lower() for v in consent_values.split(",") if v.strip()
            ),
            date_format=date_format,
            workers=workers,
            chunk_rows=chunk_rows,
            max_reject_rate=max_reject_rate,
            record_key=record_key,
            absent=frozenset(a.strip() for a in absent or ()),
        )
    )
    if report_path is not None and not report_path.parent.is_dir():
        fail(f"{report_path.parent}: the folder for --report does not exist")
    if report_path is not None and report_path.exists() and not force:
        fail(f"{report_path} already exists; refusing to overwrite it (pass --force to overwrite)")

    def run() -> Any:
        from encoder.schema import load_schema  # noqa: PLC0415  (clkhash: not for keygen)

        schema = load_schema(schema_path)
        secret = load_secret(secret_file)
        show = not quiet and err.is_terminal
        with Progress(
            TextColumn("[bold]encoding"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[rate]}"),
            TimeElapsedColumn(),
            TimeRemainingColumn(),
            console=err,
            disable=not show,
            transient=True,
        ) as bar:
            task = bar.add_task("encode", total=None, rate="")
            started = time.perf_counter()

            def progress(records: int, expected: int | None) -> None:
                rate = records / max(time.perf_counter() - started, 1e-9)
                total = max(expected, records) if expected is not None else None
                bar.update(task, completed=records, total=total, rate=f"{rate:,.0f} rec/s")

            return encode_file(
                input_path,
                schema,
                secret,
                out_path,
                options,
                delimiter=delimiter,
                encoding=encoding,
                sheet=sheet,
                skip_rows=skip_rows,
                overwrite=force,
                progress=progress,
            )

    report = _guarded(run)
    if record_key is None:  # after the run: a failure's message stays the only line
        err.print(
            f"[bold yellow]warning:[/] {NO_RECORD_KEY_WARNING}", highlight=False, soft_wrap=True
        )
    if report_path is not None:
        with atomic_write(report_path) as fh:
            fh.write(report.to_json())
    with_consent = report.records_in - report.excluded_no_consent
    table = Table(title=f"encoded {input_path.name}", show_header=False)
    table.add_row("records in", f"{report.records_in:,}")
    table.add_row("encoded", f"{report.encoded:,}")
    table.add_row("excluded (no consent)", f"{report.excluded_no_consent:,}")
    table.add_row("rejected", f"{report.rejected:,}{_rate(report.rejected, with_consent)}")
    for name, count in sorted(report.rejected_by_field.items()):
        table.add_row(f"  rejected for {name}", f"{count:,}")
    for name, count in sorted(report.invalid_treated_as_missing.items()):
        table.add_row(f"  invalid {name}, encoded as missing", f"{count:,}")
    if report.decoys:
        table.add_row(
            "decoys added", f"{report.decoys:,} (rows with an empty local_id in the key map)"
        )
    if report.absent:
        table.add_row("absent (missing in every record)", ", ".join(report.absent))
    table.add_row("record keys", _record_keys_text(report.record_key_check_value))
    table.add_row("throughput", f"{report.records_per_second:,.0f} records/s")
    table.add_row("to the linkage unit", str(report.output))
    table.add_row("stays with you", f"{report.key_map}, {report.rejects_file}")
    out.print(table)


def _record_keys_text(check_value: str | None) -> str:
    if check_value is None:
        return "none (every record counts as new in a later delivery)"
    return f"yes, record key check value {check_value}"


def _rate(part: int, whole: int) -> str:
    return f" ({part / whole:.1%} of those with consent)" if whole else ""


def _histogram(edges: list[int], counts: list[int], width: int = 40) -> list[str]:
    peak = max([*counts, 1])
    lines = []
    for lo, hi, c in zip(edges[:-1], edges[1:], counts, strict=True):
        if c:
            lines.append(
                f"{lo:5d}-{hi - 1:<5d} {'█' * max(1, round(width * c / peak)):<{width}} {c}"
            )
    return lines


@app.command()
def inspect(
    file: Annotated[Path, typer.Argument(metavar="FILE.plk")],
    as_json: Annotated[bool, typer.Option("--json", help="Print the header as JSON.")] = False,
) -> None:
    """Show an encoding file's header, popcount histogram and field coverage."""
    from encoder.fileformat import read_encodings  # noqa: PLC0415  (numpy: not for keygen)

    enc = _guarded(lambda: read_encodings(file))
    header = enc.header
    if as_json:
        sys.stdout.write(json.dumps(header, indent=2) + "\n")
        return
    table = Table(title=str(file), show_header=False)
    for key in (
        "format_version", "encoder_version", "created_at", "record_count", "bit_length",
        "schema_fingerprint", "key_check_value", "content_digest",
    ):  # fmt: skip
        table.add_row(key, str(header[key]))
    keys = header.get("record_keys")  # absent in v1 files and without --record-key
    table.add_row("record keys", _record_keys_text(None if keys is None else keys["check_value"]))
    pop = header["popcount"]
    table.add_row(
        "popcount",
        f"mean {pop['mean']:.1f}, sd {pop['std']:.1f}, min {pop['min']}, max {pop['max']}",
    )
    summary = header.get("input_summary")
    if summary is not None:  # absent in files from older encoders
        with_consent = summary["records_in"] - summary["excluded_no_consent"]
        table.add_row("records in (input file)", f"{summary['records_in']:,}")
        table.add_row("excluded (no consent)", f"{summary['excluded_no_consent']:,}")
        table.add_row(
            "rejected", f"{summary['rejected']:,}{_rate(summary['rejected'], with_consent)}"
        )
    # `absent` is written only for features the file does not hold (and never by older
    # encoders): a feature without it is held.
    absent = [f["name"] for f in header["features"] if f.get("absent", False)]
    table.add_row("absent features", ", ".join(absent) if absent else "none")
    out.print(table)
    n = header["record_count"]
    cov = Table(title="field coverage", show_header=True)
    cov.add_column("feature")
    cov.add_column("present", justify="right")
    cov.add_column("share", justify="right")
    for f in header["features"]:
        if f.get("absent", False):
            cov.add_row(f["name"], "absent", "not held")
            continue
        cov.add_row(f["name"], f"{f['present']:,}", f"{f['present'] / n:.1%}" if n else "-")
    out.print(cov)
    out.print("popcount histogram (set bits per record)")
    for line in _histogram(pop["histogram_edges"], pop["histogram_counts"]):
        out.print(line, highlight=False)


@app.command("validate-schema")
def validate_schema(
    schema_path: Annotated[
        str, typer.Argument(metavar="SCHEMA", help="File, or pace-default or pace-no-salt.")
    ],
) -> None:
    """Check a linkage schema; print its features and fingerprint."""
    from encoder.schema import load_schema  # noqa: PLC0415  (clkhash: not for keygen)

    schema = _guarded(lambda: load_schema(schema_path))
    table = Table(title=f"{schema.source}: valid", show_header=True)
    for col in ("feature", "comparison", "strategy", "standardise", "optional"):
        table.add_column(col)
    for f in schema.hashed_features:
        h = schema.raw["features"][f.index]["hashing"]
        table.add_row(
            f.name,
            json.dumps(h["comparison"]),
            json.dumps(h["strategy"]),
            (
                "from "
                + " + ".join(f.extension.derived_from)
                + (f" ({f.extension.derive})" if f.extension.derive else "")
                if f.extension.derived_from
                else f.extension.standardise or "-"
            ),
            "-" if f.extension.derived_from else "yes" if f.extension.optional else "no",
        )
    out.print(table)
    hardening = schema.hardening
    length = f"bit length {schema.bit_length}"
    if hardening.balanced:
        length += f" (a balanced {schema.filter_length}-bit filter)"
    out.print(f"{length}, fingerprint {schema.fingerprint}", soft_wrap=True)
    out.print(f"hardening: {hardening.describe()}", soft_wrap=True, highlight=False)


@app.callback(invoke_without_command=True)
def _root(
    show_version: Annotated[bool, typer.Option("--version", help="Print the version.")] = False,
) -> None:
    if show_version:
        out.print(f"pacelink {version('pacelink')}")
        raise typer.Exit(0)


def main() -> None:
    """Console-script entry point."""
    load_plugins()
    try:
        app()
    except SystemExit:
        raise
    except KeyboardInterrupt:
        err.print("interrupted")
        sys.exit(130)
    except Exception as exc:  # last line of defence: a message, never a traceback
        if os.environ.get("PACELINK_DEBUG") == "1":
            raise
        err.print(
            f"[bold red]internal error:[/] {type(exc).__name__} (rerun with PACELINK_DEBUG=1 "
            "for details and report it)",
            highlight=False,
        )
        sys.exit(3)
