"""Builds `docs/benchmarks.md` from the benchmark outputs in `benchmarks/results/`.

    python -m benchmarks.report

Every figure in the page comes from a results file written by a benchmark script; nothing
is typed in by hand (the match-quality plots in `docs/img/` are drawn here too, from
`quality.json`). A benchmark whose results file is absent is listed as not yet run.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from typing import Any, Final

from benchmarks import quality
from benchmarks.harness import REPO, RESULTS
from benchmarks.lifecycle import markdown as lifecycle_markdown
from benchmarks.privacy.__main__ import table as privacy_table
from encoder.schema import load_schema

__all__ = ["GENERATOR_TEXT", "build", "main"]

DOC = REPO / "docs" / "benchmarks.md"
IMG = DOC.parent / "img"


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


def _link_parties(r: dict[str, Any]) -> list[str]:
    t, off, unit, loss = r["targets"], r["offline"], r["unit"], r["blocking_loss"]
    met = unit["run_seconds"] <= t["unit_seconds"] and unit["peak_rss_gib"] <= t["unit_peak_gib"]
    return [
        f"Command: `python -m benchmarks.link_scale --parties {r['parties']} --records "
        f"{r.get('records_requested', round(r['records'][0], -6))}`.",
        "",
        f"Machine: {_machine(r['machine'])}. {r['parties']} synthetic partners "
        f"({' + '.join(f'{n:,}' for n in r['records'])} = {sum(r['records']):,} records; "
        "70 % each of one population, the catalogue's partner profiles in turn), encoded "
        f"with `pace-default` and record keys, linked at threshold {r['threshold']} with "
        f"{r['blocking']}. There is no reference tool that links this many (the field's "
        "public failure point is anonlink-entity-service's six hospitals of a million), so "
        "these are absolute figures against the targets.",
        "",
        f"- Through the unit (`pacelink unit serve`, SQLite, one worker process; "
        f"{r['parties']} uploads over HTTP in {unit['upload_seconds']:.0f} s, then one run): "
        f"run **{unit['run_seconds']:.0f} s** (target <= {t['unit_seconds']} s), unit peak "
        f"memory **{unit['peak_rss_gib']:.2f} GiB** (target <= {t['unit_peak_gib']} GiB): "
        f"{'met' if met else '**not met**'}. {unit['comparisons']:,} comparisons, "
        f"{unit['entities']:,} entities.",
        f"- Offline (`link_encodings`, one process): {off['seconds']:.0f} s, peak "
        f"{off['peak_rss_gib']:.2f} GiB, {off['candidates']:,} candidates.",
        f"- The unit's entities are the offline ones, record for record: "
        f"**{'yes' if unit['same_entities_as_offline'] else 'NO'}**.",
        f"- Blocking kept **{loss['true_match_completeness']:.2%}** of the true matches "
        f"that exhaustive comparison finds (party 0 against party 1, {loss['sample_rows']:,} "
        f"sampled rows; target: lose at most {t['max_true_match_loss']:.1%}).",
    ]


def _link_spine(r: dict[str, Any]) -> list[str]:
    t, ext, dask = r["targets"], r["extrapolated"], r.get("dask")
    lines = [
        "Command: `python -m benchmarks.link_scale --spine`.",
        "",
        f"Machine: {_machine(r['machine'])}. One party against a spine (two partners of 70 % "
        f"of one population), linked offline at threshold {r['threshold']} with "
        f"{r['blocking']}; blocking's loss from a sample of the party's rows compared "
        "exhaustively with the whole spine.",
        "",
        "| records a side | time (s) | peak memory (GiB) | comparisons | true matches kept |",
        "|---:|---:|---:|---:|---:|",
    ]
    for p in r["points"]:
        lines.append(f"| {p['records'][0]:,} | {p['seconds']:.1f} | {p['peak_rss_gib']:.2f} | "
                     f"{p['comparisons']:,} | {p['true_match_completeness']:.2%} |")  # fmt: skip
    key = f"at_{ext['records']}"
    lines += [
        "",
        f"- **Extrapolated** (not measured) to {ext['records']:,} a side from a power law "
        f"fitted to these sizes: about **{ext['seconds'][key] / 60:.0f} min** (time grows "
        f"as n^{ext['seconds']['exponent']:.2f}) and **{ext['peak_rss_gib'][key]:.0f} GiB** "
        f"(a straight line, {ext['peak_rss_gib']['gib_per_million']:.2f} GiB per million "
        "records a side).",
    ]
    if dask:
        ok = dask["efficiency"] >= t["dask_efficiency"]
        lines.append(
            f"- Dask (LocalCluster, one thread per worker process, {dask['records']:,} a "
            f"side, blocked comparison only): one worker {dask['one_worker_seconds']:.1f} s, "
            f"two workers {dask['two_workers_seconds']:.1f} s: parallel efficiency "
            f"**{dask['efficiency']:.0%}** (target >= {t['dask_efficiency']:.0%}: "
            f"{'met' if ok else '**not met**'}); the same candidates: "
            f"{'yes' if dask['same_candidates'] else 'NO'}."
        )
        if "threads_efficiency" in dask:
            one, two = dask["threads_seconds"]
            lines.append(
                f"- The same pass in one process, without Dask, on one numba thread and on "
                f"two: {one:.1f} s and {two:.1f} s, an efficiency of "
                f"**{dask['threads_efficiency']:.0%}**: what this machine's two cores give "
                "this memory-bound work without any cluster."
            )
    return lines


def _service_load(r: dict[str, Any]) -> list[str]:
    setup, lat = r["setup"], r["status_poll_latency_ms"]
    return [
        f"Command: `{r['command']}`.",
        "",
        f"Machine: {_machine(r['machine'])}. {setup['unit']}, {setup['transport']}; "
        f"{setup['partners']} partners upload {setup['records_per_partner']:,}-record "
        f"{setup['bit_length']}-bit encoding files concurrently while {setup['pollers']} "
        "clients poll project and run status with party tokens. There is no reference tool "
        "for a linkage unit's API, so these are absolute figures.",
        "",
        f"- Errors: **{r['errors']}** (target {r['targets']['errors']}).",
        f"- Uploads: {r['uploads']} files, {r['upload_bytes_total'] / 1e6:,.0f} MB in "
        f"{r['upload_seconds_total']:.2f} s: **{r['uploads_per_second']:.2f} uploads/s**, "
        f"{r['upload_megabytes_per_second']:.0f} MB/s.",
        f"- Status polls during the uploads: {r['status_polls']}; latency p50 "
        f"{lat['p50']:.0f} ms, p95 {lat['p95']:.0f} ms, **p99 {lat['p99']:.0f} ms**.",
        f"- Peak memory of the unit (server and worker): {r['server_peak_rss_mib']:.0f} MiB.",
    ]


def _quality_plots(name: str, r: dict[str, Any]) -> list[str]:
    """Draw one scenario's two figures into docs/img; the Markdown lines showing them."""
    # matplotlib takes ~0.3 s to import, and Agg must be chosen before pyplot is imported.
    import matplotlib  # noqa: PLC0415

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # noqa: PLC0415

    IMG.mkdir(parents=True, exist_ok=True)
    pl = r["pacelink"]
    auto = pl["auto"]["threshold"]
    out = []

    fig, ax = plt.subplots(figsize=(7, 4))
    curve = pl["curve"]
    t = [row["threshold"] for row in curve]
    for key, style in (("precision", "-"), ("recall", "-"), ("f1", "-")):
        ax.plot(t, [row[key] for row in curve], style, label=f"pacelink {key}")
    if "anonlink" in r:
        an = r["anonlink"]["curve"]
        ax.plot([row["threshold"] for row in an], [row["f1"] for row in an], "--",
                label="clkhash + anonlink F1")  # fmt: skip
    if "splink" in r:
        ax.axhline(r["splink"]["at_0_5"]["f1"], color="grey", linestyle=":",
                   label="Splink F1 (plain text, p >= 0.5)")  # fmt: skip
    ax.axvline(auto, color="black", linewidth=1, label=f"auto threshold {auto:.3f}")
    ax.set_ylim(0.5, 1.005)
    ax.set_xlabel("Dice threshold")
    ax.set_ylabel("pairwise measure")
    ax.set_title(f"{name}: precision, recall and F1 against the threshold")
    ax.legend(fontsize=8, loc="lower left")
    fig.tight_layout()
    curves = IMG / f"quality-{name}-threshold.png"
    fig.savefig(curves, dpi=90)
    plt.close(fig)
    out.append(f"![{name}: measures against the threshold](img/{curves.name})")

    hist = pl["histogram"]
    edges = hist["edges"]
    fig, ax = plt.subplots(figsize=(7, 4))
    ax.stairs(hist["nonmatch"], edges, fill=True, alpha=0.5, label="non-matches")
    ax.stairs(hist["match"], edges, fill=True, alpha=0.5, label="true matches")
    ax.axvline(auto, color="black", linewidth=1, label=f"auto threshold {auto:.3f}")
    ax.axvline(pl["best"]["threshold"], color="black", linestyle="--", linewidth=1,
               label=f"best fixed threshold {pl['best']['threshold']:.2f}")  # fmt: skip
    ax.set_yscale("log")
    ax.set_xlabel("Dice score of the pair (one-to-one solved at 0.5)")
    ax.set_ylabel("pairs")
    ax.set_title(f"{name}: scores of solved pairs by truth")
    ax.legend(fontsize=8)
    fig.tight_layout()
    scores = IMG / f"quality-{name}-scores.png"
    fig.savefig(scores, dpi=90)
    plt.close(fig)
    out.append(f"![{name}: score histogram](img/{scores.name})")
    return out


def _quality(r: dict[str, Any]) -> list[str]:
    scenarios = r["scenarios"]
    lines = [
        f"Command: `{r['command'].strip()}` ({r['seconds'] / 60:.1f} minutes). Method and "
        "definitions: the docstring of `benchmarks/quality/__init__.py`.",
        "",
        f"Machine: {_machine(r['machine'])}. Synthetic scenarios of {r['people']:,} people "
        f"(seed {r['seed']}); pacelink encodes with the bundled `pace-default` schema "
        "(FEBRL4: the clkhash tutorial's FEBRL schema). Pairwise measures count pairs of "
        "records from different files; cluster measures count entities that hold exactly "
        "one person's records.",
        "",
    ]
    if r.get("schema_fingerprint") != load_schema("pace-default").fingerprint:
        lines += [
            "**These figures were measured with an earlier `pace-default`** (before it was "
            "salted with the year of birth, [privacy.md](privacy.md)); rerun the benchmark to "
            "refresh them. The salted default's pacelink F1 on these scenarios is in "
            "[privacy.md](privacy.md).",
            "",
        ]
    for name, s in scenarios.items():
        records = " + ".join(f"{n:,}" for n in s["records"])
        extra = ""
        if "pacelink" in s:
            pl = s["pacelink"]
            extra = (
                f"; {pl['rejected_records']} records rejected by the encoder; "
                f"{pl['density']:.0%} of bits set; auto: {pl['auto_method']}"
            )
        lines.append(f"- **{name}**: {s['description']} ({records} records{extra}).")
    lines += ["", *quality.table(scenarios), ""]
    by_variation = quality.variation_table(scenarios)
    if by_variation:
        lines += [
            "Recall by variation (`benchmarks/quality/variations.py`): of the true pairs in "
            "which either record got a variation (recorded by the generator, outside the "
            "partner files), the share each tool put in one entity; `none`: pairs with no "
            "recorded variation.",
            "",
            *by_variation,
            "",
        ]
    if "febrl4" in scenarios and "published_clkhash_anonlink" in scenarios["febrl4"]:
        pub = scenarios["febrl4"]["published_clkhash_anonlink"]
        lines += [
            f"FEBRL4, published clkhash/anonlink tutorial figures: precision "
            f"{pub['precision']:.3f}, recall {pub['recall']:.3f} at threshold "
            f"{pub['threshold']}.",
            "",
        ]
    lines += [
        "Targets of issue 13 (pacelink at `auto`): F1 within 0.5 % of Splink's (EM-trained "
        "without labels, p >= 0.5, plain text); above clkhash + anonlink's best fixed "
        "threshold (chosen with the labels); estimated precision and recall within 1 "
        "percentage point of the true pairwise ones. As a check on the threshold estimate: "
        "F1 within 0.5 % of pacelink's own best fixed threshold. The product's default is "
        "duplicates linked.",
        "",
        "| scenario | auto F1 | best fixed F1 | within 0.5 % | Splink F1 | within 0.5 % "
        "| anonlink best F1 | above | estimate error P / R | within 1 point |",
        "|---|---:|---:|---|---:|---|---:|---|---|---|",
    ]

    def yes(value: Any) -> str:
        return "n/a" if value is None else ("**yes**" if value else "**no**")

    # Recomputed from the scenarios, so that a results file written before a target changed
    # is judged against the current targets.
    for name, tg in quality.targets(scenarios).items():
        error = tg.get("estimate_error")
        shown = "n/a" if error is None else f"{error['precision']:+.3f} / {error['recall']:+.3f}"
        lines.append(
            f"| {name} | {tg['auto_f1']:.4f} | {tg['best_fixed_f1']:.4f} "
            f"| {yes(tg['auto_within_0.5%_of_best'])} | {tg.get('splink_f1', math.nan):.4f} "
            f"| {yes(tg.get('auto_within_0.5%_of_splink'))} "
            f"| {tg.get('anonlink_best_f1', math.nan):.4f} "
            f"| {yes(tg.get('auto_above_anonlink_best'))} "
            f"| {shown} | {yes(tg.get('estimate_within_1_point'))} |"
        )
    inc = scenarios.get("incremental", {}).get("incremental")
    if inc:
        lines += [
            "",
            f"Incremental linkage (`link_changes`, as the unit's runs: batch 1 at `auto`, "
            f"threshold {inc['threshold']:.3f}, then batch 2 as deltas): "
            f"**{inc['stable_share']:.2%}** of the {inc['people_batch1']:,} people of batch 1 "
            f"keep their linkage ID after batch 2 ({inc['records']:,} records, "
            f"{inc['entities']:,} entities"
            + (
                f"; {inc['updated_records']:,} records updated, {inc['moved_records']} moved"
                if "updated_records" in inc
                else ""
            )
            + ").",
        ]
    lines += ["", "Estimated (label-free) against true pairwise quality at the auto threshold:", ""]
    lines += [
        "| scenario | duplicates | threshold | estimated P / R | true P / R |",
        "|---|---|---:|---|---|",
    ]
    for name, s in scenarios.items():
        for key, rule in (("pacelink", "forbid"), ("pacelink_linked", "linked")):
            if key not in s:
                continue
            pl = s[key]
            est_p, est_r = pl["estimated_precision"], pl["estimated_recall"]
            est = "n/a" if est_p is None else f"{est_p:.3f} / {est_r:.3f}"
            lines.append(
                f"| {name} | {rule} | {pl['auto']['threshold']:.3f} | {est} "
                f"| {pl['auto']['precision']:.3f} / {pl['auto']['recall']:.3f} |"
            )
    for name, s in scenarios.items():
        if "pacelink" in s and "curve" in s["pacelink"]:
            lines += ["", f"### {name}", "", *_quality_plots(name, s)]
    return lines


def _lifecycle(r: dict[str, Any]) -> list[str]:
    lines = lifecycle_markdown(r)
    forbid = RESULTS / "lifecycle-forbid.json"
    if forbid.exists():
        lines += ["", "The same lifecycle with `duplicates: forbid` (one record per party per "
                  "entity):", ""]  # fmt: skip
        lines += lifecycle_markdown(json.loads(forbid.read_text(encoding="utf-8")))
    return lines


def _console_load(r: dict[str, Any]) -> list[str]:
    lines = [
        "Command: `python -m benchmarks.console_load`.",
        "",
        f"Machine: {_machine(r['machine'])}. A unit started as its own process (`pacelink unit "
        "serve`, SQLite, one worker); every console view loaded "
        f"{r['repeats']} times over HTTP on loopback. The first load of a view is shown apart; "
        "p50, p95 and max are over all loads. There is no reference tool (no other linkage "
        "unit has a console), so these are absolute figures against the targets.",
        "",
    ]
    for scale, title in (("demo", "demo project"), ("large", "large project")):
        block = r[scale]
        target = r["targets_p95_ms"][scale]
        verdict = "met" if block["target_met"] else "**not met**"
        lines += [
            f"**{title}** ({block['records']:,} records): worst p95 "
            f"**{block['worst_p95_ms']:.0f} ms** (target < {target:.0f} ms: {verdict}).",
            "",
            "| view | first load (ms) | p50 (ms) | p95 (ms) | max (ms) |",
            "|---|---:|---:|---:|---:|",
        ]
        for view, v in block["views"].items():
            lines.append(f"| {view} | {v['first_ms']:.0f} | {v['p50_ms']:.0f} | "
                         f"{v['p95_ms']:.0f} | {v['max_ms']:.0f} |")  # fmt: skip
        lines.append("")
    return lines


def _privacy(r: dict[str, Any]) -> list[str]:
    return [
        f"Machine: {_machine(r['machine'])}. Attacks on encodings of synthetic UK records "
        "(re-identified: share of the encoded records, register overlap 100 %) and each "
        "encoding's pacelink F1 at `--threshold auto`; method, validation and the choice of "
        "the hardened default in [privacy.md](privacy.md).",
        "",
        *privacy_table(r),
    ]


SECTIONS: dict[str, tuple[str, Callable[[dict[str, Any]], list[str]]]] = {
    "encode_speed": ("Encoding speed and memory", _encode_speed),
    "compare_speed": ("Comparison (Dice) speed", _compare_speed),
    "link_scale": ("Linkage at scale", _link_scale),
    "link_scale_parties": ("Many partners through the unit", _link_parties),
    "link_scale_spine": ("A party against a spine, and Dask", _link_spine),
    "quality": ("Match quality", _quality),
    "privacy": ("Privacy attacks", _privacy),
    "service_load": ("Linkage unit under load", _service_load),
    "lifecycle": ("Record lifecycle through the service", _lifecycle),
    "console_load": ("Web console", _console_load),
}


GENERATOR_TEXT: Final = (
    "**The generator** (`python -m benchmarks.synthetic --help`) draws a seeded population of "
    "working-age Scots and renders each partner's file with that partner's columns, formats "
    "and error profile. Since issue 13 it no longer flatters pacelink: an independent "
    "evaluation on a partnership generated differently found recall of 0.45 to 0.84 on "
    "records with particular variations, which the presets `typical` and `messy` barely "
    "produced. The widened presets `wide-typical` and `wide-messy` add, each as its own "
    "`ErrorProfile` rate: one DOB digit wrong (misread, not a keyboard typo; `dob_digit`), a "
    "middle name in the given-name field (`middle_name`), a double surname recorded as one "
    "part (`surname_part`), and higher rates of names swapped, day and month swapped, DOB "
    "missing, surname changes, nicknames and within-partner duplicates (independent errors). "
    "A partner may lack columns altogether (`PartnerSpec.absent`: no column, not blank "
    "values) and may keep a previous surname (`has_previous_surname`). The generator records "
    "which variations each record got (`Scenario.variations`, `variations.csv`), outside the "
    "partner files, so that recall can be broken down by variation. The `heterogeneous` "
    "scenario is five partners: skills agency and benefits department (with a "
    "previous-surname column), a council extract without sex, a union-learning list without "
    "postcode, community referrals with names, date of birth and sex only. The old presets "
    "and scenarios are unchanged (a test pins their digests).",
    "",
    "**The held-out population** (scenarios ending in `-held-out`; `python -m "
    "benchmarks.quality --population held-out`) is **held out: never used to choose a "
    "parameter**. It is drawn from independently built tables (US and New Zealand given "
    "names and surnames, English surnames with flattened frequencies, none of the Scottish "
    "tables), four times as many double-barrelled surnames, a younger age profile, households "
    "weighted to rural postcode areas, and its own random stream; fewer than half of its 50 "
    "commonest surnames are among the standard population's. Quality measured on it shows "
    "whether a setting tuned on the standard population carries over.",
)
"""The description of the synthetic data at the top of the page."""


def build() -> str:
    """The page's Markdown."""
    out = [
        "# Benchmarks",
        "",
        "Generated by `python -m benchmarks.report` from `benchmarks/results/*.json`; rerun a",
        "benchmark, then this command, to refresh a figure. Speed figures are ratios to the",
        "reference tool measured in the same run, because the machines are shared and noisy.",
        "",
        "Every benchmark draws its data from `benchmarks.synthetic` (same seed, same data: a",
        "test pins a digest of it) or FEBRL4 (encoded with `schemas/febrl4.json`), measures",
        "match quality with `linkage_unit.matching.evaluation` (as `pacelink demo` does), and",
        "records the machine and peak memory with `benchmarks.harness`.",
        "",
        *GENERATOR_TEXT,
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
    """Write ``docs/benchmarks.md`` from the results."""
    DOC.parent.mkdir(parents=True, exist_ok=True)
    DOC.write_text(build(), encoding="utf-8")
    print(f"wrote {DOC}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
