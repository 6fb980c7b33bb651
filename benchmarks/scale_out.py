"""Linkage beyond two partners and one process: many parties through the unit, Dask, a spine.

Run through `benchmarks.link_scale`:

    python -m benchmarks.link_scale --parties 6 --records 1000000   # six partners of ~1M
    python -m benchmarks.link_scale --spine                          # scaling to a 10M spine

**Parties** (:func:`parties`). A population of ``records / 0.7`` synthetic people
(`benchmarks.synthetic`); each of ``--parties`` partners holds 70 % of it, rendered with
the catalogue's partner profiles in turn (different columns, formats and errors), and is
encoded with `pace-default`. The files are linked twice at threshold 0.8:

* offline, `link_encodings` in this process: time and peak memory;
* through the unit: `pacelink unit serve` as its own process (SQLite, one worker process),
  one project, every partner uploads over HTTP, one run: the run's time from queued to done,
  and the peak memory of the unit (server and worker together) during it. Every partner
  then fetches its mapping, and the unit's entities are compared with the offline ones,
  record for record.

What blocking keeps is measured on a sample of the first partner's rows compared
exhaustively with all of the second's, as in the two-party benchmark.

**Spine** (:func:`spine`). One party against a spine (two partners of 70 % of a population),
at growing sizes: link time, peak memory and what blocking keeps, at each size; the time
and memory at 10,000,000 records a side are extrapolated from a power law fitted to the
measured sizes (this machine does not hold 10M x 10M blocked in its time budget). Dask's
parallel efficiency is measured at one size: the blocked comparison on a LocalCluster of
one worker process, then of two (one thread each), on the same files; beside it, the same
blocked pass in one process on one numba thread and on two, which is what this machine's
cores allow without Dask.
"""

from __future__ import annotations

import dataclasses
import io
import math
import secrets
import shutil
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, Final

import numpy as np
import pandas as pd
from numpy.typing import NDArray

from benchmarks.harness import PeakMemory, machine
from benchmarks.service_load import serve_unit
from benchmarks.synthetic import (
    TRUTH_COLUMN,
    generate_population,
    make_extract,
    partner_catalogue,
    to_pace_columns,
)
from encoder.encode import EncodeOptions, encode_file
from encoder.fileformat import read_encodings
from encoder.keys import Secret, generate_record_key, generate_secret
from encoder.schema import LinkageSchema, load_schema
from linkage_unit.client import UnitClient
from linkage_unit.matching.blocking import DEFAULT_BLOCKING, bit_frequencies, candidate_pairs
from linkage_unit.matching.distributed import blocked_on_dask
from linkage_unit.matching.linkage import link_encodings
from linkage_unit.matching.similarity import dice_candidates

__all__ = ["blocking_loss", "parties", "spine"]

THRESHOLD: Final = 0.8
COVERAGE: Final = 0.7
_PROFILES: Final = ("skills_agency", "benefits_dept", "tax_dept", "council", "college",
                    "sample_partner")  # fmt: skip
TARGETS: Final = {"unit_seconds": 600, "unit_peak_gib": 8, "max_true_match_loss": 0.005,
                  "dask_efficiency": 0.95}  # fmt: skip


def _encode(work: Path, n_parties: int, records: int, seed: int, schema: LinkageSchema,
            secret: Secret) -> tuple[list[Path], list[NDArray[Any]]]:  # fmt: skip
    """``n_parties`` partners of ``COVERAGE`` of a population of ``records / COVERAGE``."""
    people = round(records / COVERAGE)
    print(f"generating a population of {people:,} ...", flush=True)
    population = generate_population(people, seed)
    catalogue = partner_catalogue()
    files, truth = [], []
    for k in range(n_parties):
        spec = dataclasses.replace(catalogue[_PROFILES[k % len(_PROFILES)]], coverage=COVERAGE,
                                   consent_refusal_rate=None)  # fmt: skip
        extract = to_pace_columns(make_extract(population, spec, seed + 1 + k), spec)
        src = work / f"party{k}.csv"
        extract.drop(columns=[TRUTH_COLUMN]).to_csv(src, index=False)
        out = work / f"party{k}.plk"
        print(f"encoding party {k} ({spec.name}'s profile): {len(extract):,} records ...",
              flush=True)  # fmt: skip
        # With record keys, as the unit's partners send them: each row is a record of its
        # own at the unit as offline (without, identical rows of a party are one record).
        options = EncodeOptions(id_column="local_id", record_key=generate_record_key())
        encode_file(src, schema, secret, out, options)
        src.unlink()
        keys = pd.read_csv(out.with_name(out.stem + ".keys.csv"), dtype=str)["local_id"]
        person = dict(zip(extract["local_id"].astype(str), extract[TRUTH_COLUMN], strict=True))
        truth.append(np.array([person[k.strip()] for k in keys]))
        files.append(out)
    return files, truth


def blocking_loss(a: NDArray[np.uint8], b: NDArray[np.uint8], truth_a: NDArray[Any],
                  truth_b: NDArray[Any], rows: int, seed: int,
                  threshold: float = THRESHOLD) -> dict[str, Any]:  # fmt: skip
    """What blocking keeps: a sample of A's rows, exhaustively against all of B.

    The whole files' frequencies choose the same positions as a run over them does, so the
    sample's blocked pairs are exactly that run's pairs of those rows.
    """
    rng = np.random.default_rng(seed)
    sample = np.sort(rng.choice(len(a), size=min(rows, len(a)), replace=False))
    ei, ej, _ = dice_candidates(a[sample], b, threshold)
    bi, bj, _ = candidate_pairs(a[sample], b, threshold, DEFAULT_BLOCKING,
                                frequencies=bit_frequencies(a, b))  # fmt: skip
    exhaustive = set(zip(ei.tolist(), ej.tolist(), strict=True))
    blocked = set(zip(bi.tolist(), bj.tolist(), strict=True))
    true = {(i, j) for i, j in exhaustive if truth_a[sample[i]] == truth_b[j]}
    return {
        "sample_rows": int(sample.size),
        "pair_completeness": len(exhaustive & blocked) / len(exhaustive) if exhaustive else 1.0,
        "true_match_completeness": len(true & blocked) / len(true) if true else 1.0,
        "true_matches_in_sample": len(true),
    }


def _same_partition(x: NDArray[Any], y: NDArray[Any]) -> bool:
    """Whether two labellings of the same records group them identically."""
    pairs = pd.DataFrame({"x": x, "y": y}).drop_duplicates()
    return len(pairs) == len(np.unique(x)) == len(np.unique(y))


def parties(
    n_parties: int, records: int, seed: int, sample_rows: int, work: Path
) -> dict[str, Any]:
    """Many parties, linked offline and through the unit; see the module docstring."""
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    schema, secret = load_schema("pace-default"), generate_secret()
    files, truth = _encode(work, n_parties, records, seed, schema, secret)
    bits = [np.asarray(read_encodings(f).bits) for f in files]
    sizes = [len(b) for b in bits]
    print(f"linking {n_parties} parties ({sum(sizes):,} records) offline ...", flush=True)
    with PeakMemory() as memory:
        started = time.perf_counter()
        groups, summary = link_encodings(bits, THRESHOLD, blocking=DEFAULT_BLOCKING)
        offline_seconds = time.perf_counter() - started
    print(f"  {offline_seconds:.1f} s, peak {memory.peak / 2**30:.2f} GiB", flush=True)
    offline = {"seconds": round(offline_seconds, 1), "peak_rss_gib": round(memory.peak / 2**30, 2),
               "comparisons": summary.comparisons, "candidates": summary.candidates,
               "entities": summary.entities}  # fmt: skip

    print("through the unit ...", flush=True)
    admin_token = secrets.token_hex(32)
    names = [f"party{k}" for k in range(n_parties)]
    with serve_unit(work / "unit", admin_token) as (url, proc):
        with UnitClient(url, admin_token, timeout=600) as admin:
            created = admin.create_project({"name": "scale", "purpose": "link_scale benchmark",
                                            "schema": schema.raw, "parties": names,
                                            "threshold": THRESHOLD})  # fmt: skip
            project, tokens = created["project_id"], created["parties"]
            started = time.perf_counter()
            for name, path in zip(names, files, strict=True):
                with UnitClient(url, tokens[name], timeout=600) as client:
                    client.upload(project, path)
            upload_seconds = time.perf_counter() - started
            with PeakMemory(proc.pid) as unit_memory:
                started = time.perf_counter()
                run = admin.start_run(project)
                done = admin.wait(project, run["id"], poll=2.0, timeout=7200)
                run_seconds = time.perf_counter() - started
        if done["status"] != "done":
            raise RuntimeError(f"the unit's run failed: {done['error']}")
        print(f"  run {run_seconds:.1f} s, unit peak {unit_memory.peak / 2**30:.2f} GiB",
              flush=True)  # fmt: skip
        labels: list[NDArray[np.object_]] = []
        for name in names:
            with UnitClient(url, tokens[name], timeout=600) as client:
                rows = pd.read_csv(io.StringIO(client.mapping(project)))
            ids = np.full(sizes[len(labels)], "", dtype=np.object_)
            ids[rows["row"].to_numpy()] = rows["linkage_id"].to_numpy()
            labels.append(ids)
    unit_labels = np.concatenate(labels)
    # Offline groups are ordered party by party, row by row: the order of the unit's labels.
    identical = _same_partition(groups.entity, unit_labels)
    print(f"  the unit's entities equal the offline ones: {identical}", flush=True)
    print("measuring blocking's loss on a sample (party 0 against party 1) ...", flush=True)
    loss = blocking_loss(bits[0], bits[1], truth[0], truth[1], sample_rows, seed)
    result = {
        "benchmark": "link_scale_parties", "machine": machine(), "parties": n_parties,
        "records": sizes, "records_requested": records, "threshold": THRESHOLD,
        "blocking": summary.blocking,
        "offline": offline,
        "unit": {"upload_seconds": round(upload_seconds, 1), "run_seconds": round(run_seconds, 1),
                 "peak_rss_gib": round(unit_memory.peak / 2**30, 2),
                 "comparisons": done["summary"]["comparisons"],
                 "entities": done["summary"]["entities"],
                 "same_entities_as_offline": identical},
        "blocking_loss": loss, "targets": TARGETS,
    }  # fmt: skip
    shutil.rmtree(work, ignore_errors=True)
    return result


def _dask_seconds(a_path: Path, b_path: Path, workers: int) -> tuple[float, int]:
    # distributed takes ~0.2 s to import; only the --spine run's Dask comparison needs it.
    from distributed import Client, LocalCluster  # noqa: PLC0415

    # Both are untyped in distributed.
    new_cluster: Callable[..., LocalCluster] = LocalCluster
    new_client: Callable[[LocalCluster], Client] = Client
    with (
        new_cluster(n_workers=workers, threads_per_worker=1, processes=True,
                     dashboard_address=None, host="127.0.0.1") as cluster,
        new_client(cluster) as client,
    ):  # fmt: skip
        # Warm the workers (numba's cached kernels load on first use) on a small slice.
        blocked_on_dask(a_path, b_path, THRESHOLD, dataclasses.replace(DEFAULT_BLOCKING,
                        tables=2 * workers), scheduler=client)  # fmt: skip
        started = time.perf_counter()
        (i, _, _), _ = blocked_on_dask(a_path, b_path, THRESHOLD, DEFAULT_BLOCKING,
                                       scheduler=client)  # fmt: skip
        return time.perf_counter() - started, int(i.size)


def spine(sizes: list[int], seed: int, sample_rows: int, dask_size: int, work: Path,
          target: int = 10_000_000) -> dict[str, Any]:  # fmt: skip
    """One party against a spine at growing sizes, extrapolated; Dask's efficiency."""
    schema, secret = load_schema("pace-default"), generate_secret()
    points = []
    dask: dict[str, Any] | None = None
    for n in sizes:
        shutil.rmtree(work, ignore_errors=True)
        work.mkdir(parents=True)
        files, truth = _encode(work, 2, n, seed, schema, secret)
        a, b = (np.asarray(read_encodings(f).bits) for f in files)
        with PeakMemory() as memory:
            started = time.perf_counter()
            _, summary = link_encodings([a, b], THRESHOLD, blocking=DEFAULT_BLOCKING)
            seconds = time.perf_counter() - started
        point = {"records": [len(a), len(b)], "seconds": round(seconds, 2),
                 "peak_rss_gib": round(memory.peak / 2**30, 2),
                 "comparisons": summary.comparisons, "candidates": summary.candidates,
                 **blocking_loss(a, b, truth[0], truth[1], sample_rows, seed)}  # fmt: skip
        print(
            f"  {len(a):,} x {len(b):,}: {seconds:.1f} s, {point['peak_rss_gib']} GiB, "
            f"kept {point['true_match_completeness']:.3%} of true matches",
            flush=True,
        )
        points.append(point)
        if n == dask_size:
            # The machine's own ceiling: the same blocked pass in one process, on one numba
            # thread and on two.
            threads = []
            for count in (1, 2):
                started = time.perf_counter()
                candidate_pairs(a, b, THRESHOLD, DEFAULT_BLOCKING, workers=count)
                threads.append(time.perf_counter() - started)
            np.save(work / "a.npy", a)
            np.save(work / "b.npy", b)
            del a, b
            one, found_one = _dask_seconds(work / "a.npy", work / "b.npy", 1)
            two, found_two = _dask_seconds(work / "a.npy", work / "b.npy", 2)
            dask = {"records": n, "one_worker_seconds": round(one, 2),
                    "two_workers_seconds": round(two, 2),
                    "efficiency": round(one / (2 * two), 3),
                    "threads_seconds": [round(t, 2) for t in threads],
                    "threads_efficiency": round(threads[0] / (2 * threads[1]), 3),
                    "same_candidates": found_one == found_two == summary.candidates}  # fmt: skip
            print(f"  Dask at {n:,}: 1 worker {one:.1f} s, 2 workers {two:.1f} s, "
                  f"efficiency {dask['efficiency']:.1%} (one process, 1 and 2 threads: "
                  f"{threads[0]:.1f} s, {threads[1]:.1f} s, "
                  f"{dask['threads_efficiency']:.1%})", flush=True)  # fmt: skip
    shutil.rmtree(work, ignore_errors=True)
    records = np.array([p["records"][0] for p in points], np.float64)
    # Time: a power law (blocking's comparisons grow a little faster than n). Memory: a
    # straight line, as the arrays held grow linearly (a power law fitted at small sizes,
    # where a fixed baseline weighs most, would understate it).
    times = np.array([p["seconds"] for p in points], np.float64)
    slope, intercept = np.polyfit(np.log(records), np.log(times), 1)
    gib = np.array([p["peak_rss_gib"] for p in points], np.float64)
    per_record, base = np.polyfit(records, gib, 1)
    fits = {
        "seconds": {"model": "power law", "exponent": round(float(slope), 3),
                    f"at_{target}": round(float(math.exp(intercept) * target**slope), 1)},
        "peak_rss_gib": {"model": "linear",
                         "gib_per_million": round(float(per_record) * 1e6, 3),
                         f"at_{target}": round(float(base + per_record * target), 1)},
    }  # fmt: skip
    return {
        "benchmark": "link_scale_spine", "machine": machine(), "threshold": THRESHOLD,
        "blocking": DEFAULT_BLOCKING.describe(), "points": points, "dask": dask,
        "extrapolated": {"records": target, "from": "power law fitted to the measured sizes",
                         **fits},
        "targets": TARGETS,
    }  # fmt: skip
