"""Builds `docs/benchmarks.md` from the benchmark outputs in `benchmarks/results/`.

    python -m benchmarks.report

Every figure in the page comes from a results file written by a benchmark script; nothing
is typed in by hand. A benchmark whose results file is absent is listed as not yet run.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

__all__ = ["build", "main"]

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results"
DOC = HERE.parent / "docs" / "benchmarks.md"


def _machine(m: dict[str, Any]) -> str:
    return f"{m.get('cpu', '?')}, {m.get('cores', '?')} cores, {m.get('memory_gib', '?')} GiB"


def _runs(values: list[float] | None) -> str:
    return ", ".join(f"{v:.2f}" for v in values) if values else "not recorded"


def _encode_speed(r: dict[str, Any]) -> list[str]:
    lines = [
        "Command: `python -m benchmarks.encode_speed` (or `make bench-encode`).",
        "",
        f"Machine: {_machine(r['machine'])}. Schema: bundled `pace-default` "
        f"(`{r['schema'][:19]}…`). {r['records']:,} canonical synthetic records, "
        f"{r['workers']} workers each, best of {r.get('repeat', 1)} runs.",
        "",
        "| tool | records/s | seconds |",
        "|---|---:|---:|",
        f"| clkhash `generate_clk_from_csv` | {r['clkhash_records_per_second']:,.0f} "
        f"| {r['clkhash_seconds']:.2f} |",
        f"| pacelink `encode` | {r['pacelink_records_per_second']:,.0f} "
        f"| {r['pacelink_seconds']:.2f} |",
        "",
        f"- Speed-up over clkhash: **{r['ratio']:.1f}x** (target ≥ 10x). All timed runs "
        f"(seconds): clkhash {_runs(r.get('clkhash_runs_seconds'))}, pacelink "
        f"{_runs(r.get('pacelink_runs_seconds'))}.",
        f"- pacelink throughput: **{r['pacelink_records_per_second']:,.0f} records/s** "
        "(target ≥ 250,000 on 2 cores).",
        f"- Output identical to clkhash, record for record: **{r['identical_output']}**.",
    ]
    if "peak_pss_gib" in r:
        lines.append(
            f"- Peak memory encoding {r['memory_records']:,} rows (PSS of all processes): "
            f"**{r['peak_pss_gib']:.2f} GiB** (target < 1 GiB), at "
            f"{r['memory_run_records_per_second']:,.0f} records/s end to end."
        )
    return lines


def _compare_speed(r: dict[str, Any]) -> list[str]:
    m = r["machine"]
    lines = [
        "Command: `python -m benchmarks.compare_speed`.",
        "",
        f"Machine: {m['cpu']} ({m.get('llvm_host_cpu', '?')}), {m['cores']} cores, AVX-512 "
        f"VPOPCNTDQ: {m.get('avx512_vpopcntdq', '?')}. Random {r['bits']}-bit filters "
        f"({r['density'][0]:.0%}-{r['density'][1]:.0%} of bits set, "
        f"{r['duplicate_fraction']:.0%} near-duplicates), threshold {r['threshold']}, best of "
        f"{r['repeat']} runs. anonlink's `dice_coefficient_accelerated` runs in 2 processes, "
        "pacelink's `dice_candidates` in 2 threads.",
        "",
        "| size | anonlink comparisons/s | pacelink comparisons/s | speed-up | identical |",
        "|---|---:|---:|---:|---|",
    ]
    for run in r["runs"]:
        anon = run["anonlink"]
        note = (
            f" (measured on {anon['rows_a_measured']:,} rows of A, extrapolated)"
            if anon["extrapolated"]
            else ""
        )
        anon_rate = anon["comparisons_per_second"] / 1e9
        lines.append(
            f"| {run['rows_a']:,} x {run['rows_b']:,} | {anon_rate:.3f} G"
            f"{note} | {run['pacelink']['comparisons_per_second'] / 1e9:.2f} G "
            f"| **{run['speedup']:.1f}x** | {run['identical_output']} |"
        )
    targets = r.get("targets", {})
    lines += [
        "",
        f"Targets: at least {targets.get('speedup', 10):.0f}x anonlink and "
        f"{targets.get('pacelink_comparisons_per_second', 1.5e9) / 1e9:.1f} billion "
        "comparisons/s on 2 cores.",
    ]
    return lines


def _link_scale(r: dict[str, Any]) -> list[str]:
    t = r["targets"]
    a, b = r["records"]
    return [
        "Command: `python -m benchmarks.link_scale`.",
        "",
        f"Machine: {_machine(r['machine'])}. Two synthetic partners of {a:,} and {b:,} "
        f"records (two-party scenario, typical errors), encoded with `pace-default`, linked "
        f"from their `.plk` files at threshold {r['threshold']} with {r['blocking']}.",
        "",
        f"- Linking time: **{r['link_seconds']:.1f} s** (target <= {t['seconds']} s); "
        f"{r['comparisons']:,} comparisons, {r['candidates']:,} candidates, "
        f"{r['entities']:,} entities.",
        f"- Peak memory of the linking process: **{r['link_peak_rss_gib']:.2f} GiB** "
        f"(target <= {t['peak_gib']} GiB).",
        f"- Blocking kept **{r['true_match_completeness']:.2%}** of the true matches that "
        f"exhaustive comparison finds, and {r['pair_completeness']:.2%} of all exhaustive "
        f"candidates (measured on {r['sample_rows']:,} sampled rows of A against all of B; "
        f"target: lose at most {t['max_true_match_loss']:.1%}).",
    ]


SECTIONS: dict[str, tuple[str, Callable[[dict[str, Any]], list[str]]]] = {
    "encode_speed": ("Encoding speed and memory", _encode_speed),
    "compare_speed": ("Comparison (Dice) speed", _compare_speed),
    "link_scale": ("Linkage at scale", _link_scale),
}


def build() -> str:
    """The page's Markdown."""
    out = [
        "# Benchmarks",
        "",
        "Generated by `python -m benchmarks.report` from `benchmarks/results/*.json`; rerun a",
        "benchmark, then this command, to refresh a figure. Speed figures are ratios to the",
        "reference tool measured in the same run, because the machines are shared and noisy.",
        "",
    ]
    for name, (title, render) in SECTIONS.items():
        out += [f"## {title}", ""]
        path = RESULTS / f"{name}.json"
        if path.exists():
            out += render(json.loads(path.read_text(encoding="utf-8")))
        else:
            out.append(f"Not yet run (`python -m benchmarks.{name}`).")
        out.append("")
    return "\n".join(out)


def main() -> int:
    DOC.parent.mkdir(parents=True, exist_ok=True)
    DOC.write_text(build(), encoding="utf-8")
    print(f"wrote {DOC}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
