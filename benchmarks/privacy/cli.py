"""``pacelink schema assess``: a schema's privacy assessment, before partners agree it.

The command group is a ``pacelink.commands`` plug-in, so the encoder's command line offers it
without importing the harness (or the synthetic-data generator it needs) for other commands.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from benchmarks.privacy import ATTACKS
from encoder.cli import fail

__all__ = ["schema"]

schema = typer.Typer(
    help="Linkage schemas: assess a schema's privacy and linkage quality before agreeing it.",
    no_args_is_help=True,
)
_out = Console(highlight=False)
_err = Console(stderr=True, highlight=False)


@schema.command("assess")
def assess_command(
    schema_file: Annotated[
        str, typer.Argument(metavar="SCHEMA", help="Schema file, or 'pace-default'.")
    ],
    out: Annotated[
        Path,
        typer.Option("--out", help="Folder for assessment.json and assessment.png."),
    ] = Path("schema-assessment"),
    records: Annotated[
        int, typer.Option(min=200, help="Synthetic records encoded and attacked.")
    ] = 2000,
    overlap: Annotated[
        float,
        typer.Option(min=0.0, max=1.0, help="Share of encoded people in the attacker's register."),
    ] = 1.0,
    attacks: Annotated[
        str, typer.Option(help="Comma-separated attacks: " + ", ".join(ATTACKS) + ".")
    ] = ",".join(ATTACKS),
    quality_people: Annotated[
        int,
        typer.Option(
            min=0, help="Synthetic people in the linkage-quality scenarios (0: skip quality)."
        ),
    ] = 2000,
    seed: Annotated[int, typer.Option(help="Seed of the synthetic data and the attacks.")] = 0,
) -> None:
    """Attack the schema's encodings of synthetic UK data and report who they re-identify.

    The attacker holds the plaintext of a register of the population and the encodings, knows
    the schema but not the secret. Reported: the share of encoded records each attack
    re-identifies (one to one), and the pairwise F1 the schema gives on synthetic
    partnerships, beside today's unhardened default.
    """
    # The harness (numpy, scipy, the synthetic generator) loads only when the command runs,
    # so that listing the plug-in works without the bench extra and this says what is missing.
    try:
        from benchmarks.privacy.assess import assess, plot_assessment  # noqa: PLC0415
        from benchmarks.privacy.encodings import variant  # noqa: PLC0415
    except ImportError as exc:  # the generator's faker and nicknames come with the extra
        fail(
            f"pacelink schema assess needs the benchmark extras (missing {exc.name}): "
            "pip install 'pacelink\\[bench]'"  # rich markup: an escaped bracket
        )
    # clkhash (~0.1 s): `pacelink schema --help` loads this plug-in without it.
    from encoder.schema import DEFAULT_SCHEMA_NAME, SchemaInvalid, load_schema  # noqa: PLC0415

    try:
        loaded = load_schema(schema_file)
    except SchemaInvalid as exc:
        fail(str(exc))
    chosen = [a.strip() for a in attacks.split(",") if a.strip()]
    unknown = [a for a in chosen if a not in ATTACKS]
    if unknown or not chosen:
        fail(
            f"--attacks: unknown attack(s) {', '.join(unknown) or '(none)'}; "
            f"choose from {', '.join(ATTACKS)}"
        )
    label = DEFAULT_SCHEMA_NAME if schema_file == DEFAULT_SCHEMA_NAME else Path(schema_file).name
    with _err.status("assessing") as status:

        def progress(line: str) -> None:
            status.update(line)

        result = assess(
            loaded.raw,
            source=label,
            records=records,
            overlap=overlap,
            attacks=chosen,
            quality_people=quality_people,
            baseline_doc=variant("none"),
            seed=seed,
            progress=progress,
        )
    out.mkdir(parents=True, exist_ok=True)
    doc: dict[str, Any] = result.as_dict()
    (out / "assessment.json").write_text(json.dumps(doc, indent=1) + "\n", encoding="utf-8")
    plot_assessment(result, out / "assessment.png")
    table = Table(
        title=f"Privacy assessment of {label} ({records:,} records, overlap {overlap:.0%})"
    )
    table.add_column("attack")
    table.add_column("re-identified", justify="right")
    table.add_column("seconds", justify="right")
    for a in result.attacks:
        table.add_row(a.attack, f"{a.reidentified:.1%}", f"{a.seconds:.0f}")
    _out.print(table)
    for name, f1 in result.quality.items():
        base = result.baseline_quality.get(name)
        against = f" (unhardened default {base:.4f}, {f1 - base:+.4f})" if base is not None else ""
        _out.print(f"linkage F1, {name}: {f1:.4f}{against}")
    _out.print(f"wrote {out / 'assessment.json'} and {out / 'assessment.png'}")
