"""How a command reaches a linkage unit: the shared options, party tokens and the client.

Used by the partner's and the operator's commands alike; imports the HTTP client (httpx)
and nothing of the service.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated

import typer

from encoder.atomic import atomic_write
from encoder.cli import fail
from encoder.keys import SecretError, check_private_file
from linkage_unit.client import UnitClient, UnitError

__all__ = ["CaCert", "ProjectId", "TokenFile", "UnitUrl", "connect", "party_token", "write_private"]

UnitUrl = Annotated[str, typer.Option("--unit", help="The linkage unit's URL.")]
ProjectId = Annotated[str, typer.Option("--project", help="The project's ID.")]
CaCert = Annotated[
    Path | None, typer.Option("--ca-cert", help="CA bundle to trust (self-signed unit).")
]
TokenFile = Annotated[
    Path | None, typer.Option("--token-file", help="File holding your party token.")
]


def party_token(token_file: Path | None) -> str:
    """The party token from `--token-file`, else `PACELINK_TOKEN`; exits non-zero without one."""
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
def connect(url: str, token: str, ca_cert: Path | None) -> Iterator[UnitClient]:
    """A client of the unit at `url`; a refusal or failure of the unit exits non-zero."""
    try:
        with UnitClient(url, token, verify=str(ca_cert) if ca_cert else True) as client:
            yield client
    except UnitError as exc:
        fail(str(exc))


def write_private(path: Path, text: str) -> None:
    """Write `text` to `path` (mode 0600), whole or not at all."""
    if not path.parent.is_dir():
        fail(f"{path.parent}: output folder does not exist")
    with atomic_write(path) as fh:
        fh.write(text)
