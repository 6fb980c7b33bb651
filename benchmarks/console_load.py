"""Console page times: every view of the web console, on the demo project and on a large one.

    python -m benchmarks.console_load                  # demo project + ~1,000,000 records
    python -m benchmarks.console_load --people 20000   # quick

A real linkage unit is started as a separate process (`pacelink unit serve`, SQLite, one
worker process). Two projects are made through its API, as partners and the operator make
them: the demo's three partners (`linkage_unit/data/demo`, encoded with record keys by
`encode_file`, threshold ``auto``), and the two-party scenario of `benchmarks.synthetic`
with ``--people`` people (70 % coverage each: ~1,000,000 records in all at the default),
encoded, uploaded and linked by a run. Then every console view is loaded ``--repeats``
times over HTTP on loopback, as the operator and as a party (``Authorization: Bearer``,
which the console takes as a browser's sign-in cookie; the same page code answers): the
first load of a view (charts are drawn then, and cached) is reported apart, and p50, p95 and
max over all loads. Releases (mapping and flag downloads) are not views and are not timed.
Results go to `benchmarks/results/console_load.json`.

There is no reference tool (no other linkage unit has a console to time on this machine),
so the figures are absolute, against the targets: p95 < 300 ms on the demo project and
< 1 s on the large one.
"""

from __future__ import annotations

import argparse
import json
import secrets
import shutil
import time
from importlib import resources
from pathlib import Path
from typing import Any, Final

import httpx
import numpy as np

from benchmarks import harness
from benchmarks.harness import RESULTS, machine
from benchmarks.service_load import NO_REFERENCE, serve_unit
from benchmarks.synthetic import TRUTH_COLUMN, make_scenario, to_pace_columns
from encoder.encode import EncodeOptions, encode_file
from encoder.keys import Secret, generate_record_key, generate_secret
from encoder.schema import LinkageSchema, load_schema
from linkage_unit.client import UnitClient
from linkage_unit.demo import PARTNERS, POLICY

__all__ = ["main", "time_views"]

WORK = harness.WORK / "console_load"
TARGETS_MS: Final = {"demo": 300.0, "large": 1000.0}


def _wait(admin: UnitClient, project: str, run_id: str) -> dict[str, Any]:
    run = admin.wait(project, run_id, poll=0.5)
    if run["status"] != "done":
        raise RuntimeError(f"run {run_id} failed: {run['error']}")
    return run


def _project(url: str, admin_token: str, name: str, schema: LinkageSchema,
             files: dict[str, Path], **settings: Any) -> tuple[str, dict[str, str]]:  # fmt: skip
    """Create a project for ``files`` (party name → .plk), upload them, run, wait."""
    with UnitClient(url, admin_token, timeout=600) as admin:
        created = admin.create_project({"name": name, "purpose": "console benchmark",
                                        "schema": schema.raw, "parties": list(files),
                                        **settings})  # fmt: skip
        project, tokens = created["project_id"], created["parties"]
        for party, path in files.items():
            with UnitClient(url, tokens[party], timeout=600) as client:
                client.upload(project, path)
        started = time.perf_counter()
        run = _wait(admin, project, admin.start_run(project)["id"])
        print(f"  {name}: run {run['id']} linked {run['summary']['records']:,} records in "
              f"{time.perf_counter() - started:.1f} s", flush=True)  # fmt: skip
    return project, tokens


def _demo_files(folder: Path, schema: LinkageSchema, secret: Secret) -> dict[str, Path]:
    files = {}
    for name in PARTNERS:
        src = folder / f"{name}.csv"
        data = resources.files("linkage_unit").joinpath(f"data/demo/{name}.csv")
        src.write_text(data.read_text("utf-8"), encoding="utf-8")
        files[name] = folder / f"{name}.plk"
        encode_file(src, schema, secret, files[name],
                    EncodeOptions(id_column="local_id", record_key=generate_record_key(),
                                  consent_column="consent" if name == "skills_agency"
                                  else None))  # fmt: skip
    return files


def _large_files(folder: Path, schema: LinkageSchema, secret: Secret, people: int,
                 seed: int) -> dict[str, Path]:  # fmt: skip
    scenario = make_scenario("two-party", people, seed)
    files = {}
    for spec in scenario.partners:
        extract = to_pace_columns(scenario.batches[spec.name][0], spec)
        src = folder / f"{spec.name}.csv"
        extract.drop(columns=[TRUTH_COLUMN]).to_csv(src, index=False)
        print(f"  encoding {spec.name}: {len(extract):,} records ...", flush=True)
        files[spec.name] = folder / f"{spec.name}.plk"
        options = EncodeOptions(id_column="local_id", record_key=generate_record_key())
        encode_file(src, schema, secret, files[spec.name], options)
    return files


def _records(url: str, admin_token: str, project: str) -> int:
    with UnitClient(url, admin_token) as admin:
        return sum(int(u["record_count"]) for u in admin.uploads(project))


def _views(url: str, admin_token: str, project: str,
           tokens: dict[str, str]) -> dict[str, tuple[str, str]]:  # fmt: skip
    """Every console view of ``project``: name → (path, token)."""
    with UnitClient(url, admin_token) as admin:
        run = admin.project(project)["current_run_id"]
    party = next(iter(tokens))
    base = f"/console/projects/{project}"
    views = {
        "projects": ("/console/", admin_token),
        "project": (base, admin_token),
        "uploads": (f"{base}/uploads", admin_token),
        "runs": (f"{base}/runs", admin_token),
        "run": (f"{base}/runs/{run}", admin_token),
        "run status (live progress)": (f"{base}/runs/{run}/status", admin_token),
        "releases": (f"{base}/releases", admin_token),
        "audit log (with verify)": ("/console/audit", admin_token),
        "party page (operator)": (f"{base}/parties/{party}", admin_token),
        "party page (party)": (f"{base}/parties/{party}", tokens[party]),
    }
    counting = [p for p in tokens if p != "council"]  # the demo's council gets counts too
    views["counts (party; a release)"] = (f"{base}/parties/{counting[0]}/counts",
                                          tokens[counting[0]])  # fmt: skip
    return views


def time_views(url: str, views: dict[str, tuple[str, str]], repeats: int) -> dict[str, Any]:
    """Load each view ``repeats`` times; first load apart, then p50/p95/max of all (ms)."""
    out = {}
    with httpx.Client(base_url=url, timeout=60) as client:
        for name, (path, token) in views.items():
            times = []
            for _ in range(repeats):
                started = time.perf_counter()
                answer = client.get(path, headers={"Authorization": f"Bearer {token}"})
                times.append(1000 * (time.perf_counter() - started))
                if answer.status_code != 200:
                    raise RuntimeError(f"{name}: HTTP {answer.status_code}")
            out[name] = {
                "first_ms": round(times[0], 1),
                "p50_ms": round(float(np.percentile(times, 50)), 1),
                "p95_ms": round(float(np.percentile(times, 95)), 1),
                "max_ms": round(max(times), 1),
                "bytes": len(answer.content),
            }
            print(f"    {name:30s} first {times[0]:7.1f} ms  p95 {out[name]['p95_ms']:7.1f} ms",
                  flush=True)  # fmt: skip
    return out


def main(argv: list[str] | None = None) -> int:
    """Time the console's pages on a large project and write ``console_load.json``."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--people",
        type=int,
        default=715_000,
        help="People in the large project's scenario (70%% coverage per party).",
    )
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--seed", type=int, default=11)
    args = parser.parse_args(argv)
    shutil.rmtree(WORK, ignore_errors=True)
    WORK.mkdir(parents=True)
    RESULTS.mkdir(parents=True, exist_ok=True)
    schema = load_schema("pace-default")
    secret = generate_secret()
    admin_token = secrets.token_hex(32)
    result: dict[str, Any] = {"benchmark": "console_load", "machine": machine(),
                              "reference": NO_REFERENCE, "repeats": args.repeats,
                              "targets_p95_ms": TARGETS_MS}  # fmt: skip
    (WORK / "demo").mkdir()
    (WORK / "large").mkdir()
    with serve_unit(WORK / "unit", admin_token) as (url, _proc):
        print("demo project ...", flush=True)
        demo_files = _demo_files(WORK / "demo", schema, secret)
        project, tokens = _project(url, admin_token, "PACE demo", schema, demo_files,
                                   policy=POLICY)  # fmt: skip
        demo_views = _views(url, admin_token, project, tokens)
        demo_records = _records(url, admin_token, project)
        print("large project ...", flush=True)
        large_files = _large_files(WORK / "large", schema, secret, args.people, args.seed)
        large, large_tokens = _project(url, admin_token, "large", schema, large_files,
                                       threshold=0.8)  # fmt: skip
        records = _records(url, admin_token, large)
        large_views = _views(url, admin_token, large, large_tokens)
        # Timed after both exist: the operator's lists then hold both projects.
        print("timing the demo project's views ...", flush=True)
        result["demo"] = {"records": demo_records, "views": time_views(
            url, demo_views, args.repeats)}  # fmt: skip
        print(f"timing the large project's views ({records:,} records) ...", flush=True)
        result["large"] = {"records": records, "views": time_views(url, large_views,
                                                                   args.repeats)}  # fmt: skip
    for scale in ("demo", "large"):
        worst = max(v["p95_ms"] for v in result[scale]["views"].values())
        result[scale]["worst_p95_ms"] = worst
        result[scale]["target_met"] = worst < TARGETS_MS[scale]
        print(f"{scale}: worst p95 {worst:.1f} ms (target < {TARGETS_MS[scale]:.0f} ms): "
              f"{'met' if worst < TARGETS_MS[scale] else 'NOT met'}")  # fmt: skip
    (RESULTS / "console_load.json").write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {RESULTS / 'console_load.json'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
