"""The partner's commands that talk to the unit: `pacelink upload`, `withdraw` and `results`.

They need the encoder and the HTTP client only, never the service: a partner installs and
runs them on its own premises. Tokens come from a file or `PACELINK_TOKEN`, never from argv.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from encoder.cli import fail, user_errors
from encoder.fileformat import read_encodings
from encoder.keymap import join_release, read_key_map, read_local_ids, upload_of_key_map
from encoder.keys import load_record_key
from linkage_unit.client import UnitError
from linkage_unit.commands.connection import (
    CaCert,
    ProjectId,
    TokenFile,
    UnitUrl,
    connect,
    party_token,
    write_private,
)
from linkage_unit.policy import WITHHELD

__all__ = ["results", "upload", "withdraw"]

err = Console(stderr=True)
out = Console()


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
    if kind not in (None, "snapshot", "delta"):
        fail(f"--as {kind!r}: expected snapshot or delta")
    try:
        header = read_encodings(file).plk_header  # refuse a damaged file before sending it
    except user_errors() as exc:
        fail(str(exc))
    if header.record_keys is None:
        err.print(
            f"[yellow]warning:[/] {file} has no record keys (encoded without --record-key): the "
            "unit will take a changed client in a later upload for a new one, and cannot "
            "withdraw single records"
        )
    size = file.stat().st_size
    with (
        connect(unit_url, party_token(token_file), ca_cert) as client,
        err.status(f"uploading {file.name} ({size:,} bytes)"),
    ):
        result = client.upload(project, file, kind)
    out.print(
        f"uploaded {header.record_count:,} records as {result['kind']} [bold]{result['id']}[/]"
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
    try:
        key = load_record_key(record_key_file)
        local_ids = read_local_ids(ids_file)
    except user_errors() as exc:
        fail(str(exc))
    pseudonyms = key.pseudonyms(local_ids).tolist()
    with connect(unit_url, party_token(token_file), ca_cert) as client:
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
    kind, _, other = release.partition(":")
    if kind not in ("mapping", "counts", "flags") or (kind == "flags") != bool(other):
        fail(f"--release {release!r}: expected mapping, counts or flags:<party>")
    with connect(unit_url, party_token(token_file), ca_cert) as client:
        if kind == "counts":
            data = client.counts(project)
            write_private(out_path, json.dumps(data, indent=2) + "\n")
            _print_counts(data)
            return
        if keys is None:
            fail(f"--release {kind} needs --keys OUT.keys.csv to join back to your IDs")
        try:
            # Read before fetching: a release fetched is audited, so a bad key map asks none.
            local = read_key_map(keys)
            chosen = upload_id or upload_of_key_map(keys, client.uploads(project), project)
        except user_errors() as exc:
            fail(str(exc))
        if chosen is None:
            fail(f"cannot tell which upload {keys} belongs to: pass --upload ID")
        text = client.mapping(project, chosen) if kind == "mapping" else client.flags(
            project, other, chosen
        )  # fmt: skip
    column = "linkage_id" if kind == "mapping" else f"in_{other}"
    try:
        joined = join_release(
            text, local, "mapping" if kind == "mapping" else "flags", column,
            key_map=keys, upload_id=chosen,
        )  # fmt: skip
    except user_errors() as exc:
        fail(str(exc))
    write_private(out_path, joined.csv)
    note = f" ({joined.withdrawn:,} of the key map's records were withdrawn since)"
    out.print(f"wrote {joined.written:,} rows to {out_path}{note if joined.withdrawn else ''}")


def _print_counts(data: dict[str, Any]) -> None:
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
