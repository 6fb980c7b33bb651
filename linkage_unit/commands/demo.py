"""`pacelink demo`: the main job end to end on an embedded unit, for anyone to try."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from linkage_unit.demo import run_demo

__all__ = ["demo"]

out = Console()


def demo(
    workdir: Annotated[
        Path | None, typer.Option(help="Keep the demo's files here (default: temporary).")
    ] = None,
    keep_running: Annotated[
        bool,
        typer.Option(
            help="Keep the demo's unit up afterwards (Ctrl-C stops it), so the "
            "web console can be explored."
        ),
    ] = False,
) -> None:
    """Run the main job end to end: three partners encode, upload; the unit links; releases."""
    run_demo(workdir, out, keep_running=keep_running)
