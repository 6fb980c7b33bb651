"""Service load: many partners upload at once while others poll the project's status.

    python -m benchmarks.service_load                             # 20 partners x 100,000 records
    python -m benchmarks.service_load --partners 3 --records 2000 # quick

A real linkage unit is started as a separate process (`pacelink unit serve`, SQLite in a
fresh data folder, its default single worker process) and the operator creates a project
with one party per partner. Each partner's `.plk` file holds random bits (the unit checks
format, digest, schema fingerprint and key check value, not what the bits mean, so random
bits load it exactly as real encodings do) written with the project's schema fingerprint and
one partnership key check value. All partners then upload at the same time, one thread each
(`UnitClient.upload`, streaming over HTTP on loopback), while `--pollers` threads use
partners' tokens to poll `GET /projects/{id}` and `GET /projects/{id}/runs` as partners
waiting for results do. Measured: errors of any request (must be 0), every upload accepted
with the right record count, total upload time, uploads/s and MB/s, and the status-poll
latency (p50/p95/p99/max, and how many polls). The figures go to
`benchmarks/results/service_load.json`.

There is no reference tool for this benchmark (no other linkage unit to run on the same
machine), so unlike the other benchmarks it reports absolute figures, not a ratio.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from importlib.metadata import version
from pathlib import Path
from typing import Any, Final

import httpx
import numpy as np
import psutil  # type: ignore[import-untyped]

from benchmarks.harness import RESULTS, WORK, PeakMemory, machine
from encoder.fileformat import EncodingWriter, HeaderFacts
from encoder.keys import generate_secret, key_check_value
from encoder.schema import load_schema
from linkage_unit.client import UnitClient, UnitError

__all__ = ["LoadResult", "main", "run_load", "serve_unit", "write_random_encodings"]

NO_REFERENCE: Final = (
    "no reference tool: nothing else runs a linkage unit's API to compare with, so these "
    "are absolute figures, not a ratio"
)
_ROWS_PER_CHUNK: Final = 20_000


@dataclass
class LoadResult:
    """What one load run measured (all times in seconds)."""

    partners: int
    records: int
    upload_bytes: int
    upload_seconds: float
    upload_latencies: list[float]
    poll_latencies: list[float]
    errors: list[str] = field(default_factory=list)
    server_peak_rss_bytes: int = 0

    @property
    def uploads_per_second(self) -> float:
        """Uploads completed per second of the upload phase."""
        return self.partners / self.upload_seconds if self.upload_seconds else 0.0

    @property
    def megabytes_per_second(self) -> float:
        """Megabytes uploaded per second of the upload phase."""
        return self.upload_bytes / 1e6 / self.upload_seconds if self.upload_seconds else 0.0

    def poll_percentile(self, q: float) -> float:
        """A percentile of the status-poll latency (NaN when nothing was polled)."""
        return float(np.percentile(self.poll_latencies, q)) if self.poll_latencies else np.nan

    def figures(self) -> dict[str, Any]:
        """The measured figures, as written to the results file."""
        return {
            "errors": len(self.errors),
            "error_messages": self.errors[:20],
            "uploads": self.partners,
            "records_per_upload": self.records,
            "upload_bytes_total": self.upload_bytes,
            "upload_seconds_total": round(self.upload_seconds, 3),
            "uploads_per_second": round(self.uploads_per_second, 3),
            "upload_megabytes_per_second": round(self.megabytes_per_second, 2),
            "upload_latency_seconds": {
                "min": round(min(self.upload_latencies, default=np.nan), 3),
                "median": round(float(np.median(self.upload_latencies)), 3)
                if self.upload_latencies
                else None,
                "max": round(max(self.upload_latencies, default=np.nan), 3),
            },
            "status_polls": len(self.poll_latencies),
            "status_poll_latency_ms": {
                name: round(self.poll_percentile(q) * 1000, 2)
                for name, q in (("p50", 50), ("p95", 95), ("p99", 99), ("max", 100))
            },
            "server_peak_rss_mib": round(self.server_peak_rss_bytes / 2**20, 1),
        }


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@contextmanager
def serve_unit(data_dir: Path, admin_token: str, *, timeout: float = 120.0) -> Iterator[
    tuple[str, subprocess.Popen[bytes]]
]:  # fmt: skip
    """Run `pacelink unit serve` as a separate process; yields its URL and process.

    The unit's own output goes to ``unit.log`` beside the data folder (it is read when the
    unit does not start).
    """
    port = _free_port()
    env = {**os.environ, "PACELINK_ADMIN_TOKEN": admin_token}
    log_path = data_dir.parent / "unit.log"
    argv = [sys.executable, "-m", "encoder", "unit", "serve", "--data-dir", str(data_dir),
            "--port", str(port)]  # fmt: skip
    with log_path.open("wb") as log:
        proc = subprocess.Popen(argv, env=env, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    children: list[psutil.Process] = []
    try:
        deadline = time.monotonic() + timeout
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"the unit exited ({proc.returncode}):\n"
                                   + log_path.read_text(errors="replace")[-3000:])  # fmt: skip
            try:
                if httpx.get(f"{url}/health", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"the unit did not answer /health within {timeout:.0f} s")
            time.sleep(0.1)
        children = psutil.Process(proc.pid).children(recursive=True)  # its worker processes
        yield url, proc
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        # `unit serve` leaves its workers running when it gets SIGTERM (uvicorn re-raises the
        # signal after shutting down, so serve's own clean-up never runs): stop them here.
        for child in children:
            try:
                child.terminate()
                child.wait(timeout=30)
            except psutil.NoSuchProcess:
                pass
            except psutil.TimeoutExpired:
                child.kill()


def write_random_encodings(path: Path, records: int, *, bit_length: int, fingerprint: str,
                           kcv: str, features: list[str], seed: int) -> int:  # fmt: skip
    """A valid `.plk` file of random bits; returns its size in bytes."""
    rng = np.random.default_rng(seed)
    with EncodingWriter(path, bit_length) as writer:
        for start in range(0, records, _ROWS_PER_CHUNK):
            rows = min(_ROWS_PER_CHUNK, records - start)
            writer.append(rng.integers(0, 256, (rows, bit_length // 8), dtype=np.uint8))
        writer.finish(HeaderFacts(version("pacelink"), fingerprint, kcv,
                                  [(f, records) for f in features]))  # fmt: skip
    return path.stat().st_size


def run_load(partners: int, records: int, workdir: Path, *, pollers: int = 4,
             poll_interval: float = 0.05, seed: int = 0,
             log: Any = print) -> LoadResult:  # fmt: skip
    """Start a unit, upload ``partners`` files of ``records`` at once while polling status.

    Args:
        partners: Parties of the project, each uploading one file.
        records: Records per file.
        workdir: An empty folder for the unit's data folder and the partners' files.
        pollers: Threads polling project and run status with partners' tokens.
        poll_interval: Pause of each poller between two requests.
        seed: Seed of the random bits.
        log: Where progress lines go.
    """
    schema = load_schema("pace-default")
    kcv = key_check_value(generate_secret())
    files_dir = workdir / "partners"
    files_dir.mkdir(parents=True)
    names = [f"partner{i:02d}" for i in range(partners)]
    log(f"writing {partners} encoding files of {records:,} random records ...")
    sizes = {}
    for i, name in enumerate(names):
        sizes[name] = write_random_encodings(
            files_dir / f"{name}.plk", records, bit_length=schema.bit_length,
            fingerprint=schema.fingerprint, kcv=kcv,
            features=[f.name for f in schema.hashed_features], seed=seed * 1_000 + i,
        )  # fmt: skip
    admin_token = generate_secret().value
    with serve_unit(workdir / "unit", admin_token) as (url, proc), PeakMemory(proc.pid) as rss:
        log(f"unit at {url} (pid {proc.pid}); creating a project of {partners} parties")
        with UnitClient(url, admin_token) as admin:
            created = admin.create_project({
                "name": "service load", "purpose": "load benchmark", "schema": schema.raw,
                "parties": names, "key_check_value": kcv,
            })  # fmt: skip
        project: str = created["project_id"]
        tokens: dict[str, str] = created["parties"]
        errors: list[str] = []
        lock = threading.Lock()
        uploads_done = threading.Event()
        # (when it was sent, how long it took) of every status poll
        polls: list[tuple[float, float]] = []

        def poll(k: int) -> None:
            # Each poller speaks for a different partner, as waiting partners would.
            with UnitClient(url, tokens[names[k % partners]]) as client:
                calls = (lambda: client.project(project), lambda: client.runs(project))
                n = 0
                while not uploads_done.is_set():
                    started = time.perf_counter()
                    try:
                        calls[n % 2]()
                    except UnitError as exc:
                        with lock:
                            errors.append(f"poll: {exc}")
                    else:
                        with lock:
                            polls.append((started, time.perf_counter() - started))
                    n += 1
                    uploads_done.wait(poll_interval)

        def upload(name: str) -> tuple[float, dict[str, Any] | None]:
            started = time.perf_counter()
            try:
                with UnitClient(url, tokens[name], timeout=600) as client:
                    done = client.upload(project, files_dir / f"{name}.plk")
            except UnitError as exc:
                with lock:
                    errors.append(f"upload {name}: {exc}")
                return time.perf_counter() - started, None
            return time.perf_counter() - started, done

        log(f"uploading {partners} files ({sum(sizes.values()) / 1e6:,.0f} MB) at once, "
            f"{pollers} pollers ...")  # fmt: skip
        with ThreadPoolExecutor(pollers, thread_name_prefix="poll") as poll_pool:
            polling = [poll_pool.submit(poll, k) for k in range(pollers)]
            time.sleep(0.2)  # the pollers are polling when the uploads start
            started = time.perf_counter()
            with ThreadPoolExecutor(partners, thread_name_prefix="upload") as upload_pool:
                outcomes = list(upload_pool.map(upload, names))
            finished = time.perf_counter()
            upload_seconds = finished - started
            uploads_done.set()
            for future in polling:
                future.result()
        with UnitClient(url, admin_token) as admin:
            stored = {u["party"]: u for u in admin.uploads(project)}
        for name, (_, done) in zip(names, outcomes, strict=True):
            if done is not None and stored.get(name, {}).get("record_count") != records:
                errors.append(f"upload {name}: stored with {stored.get(name)}, expected "
                              f"{records} records")  # fmt: skip
    return LoadResult(
        partners=partners, records=records, upload_bytes=sum(sizes.values()),
        upload_seconds=upload_seconds, upload_latencies=[t for t, _ in outcomes],
        # Only the polls sent while the uploads ran: the latency under that load.
        poll_latencies=[t for at, t in polls if started <= at <= finished],
        errors=errors, server_peak_rss_bytes=rss.peak,
    )  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark, print the figures, write the results file."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--partners", type=int, default=20)
    parser.add_argument("--records", type=int, default=100_000)
    parser.add_argument("--pollers", type=int, default=4)
    parser.add_argument("--poll-interval", type=float, default=0.05)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args(argv)

    WORK.mkdir(parents=True, exist_ok=True)
    workdir = Path(tempfile.mkdtemp(prefix="service_load-", dir=WORK))
    load_before = os.getloadavg()
    try:
        result = run_load(args.partners, args.records, workdir, pollers=args.pollers,
                          poll_interval=args.poll_interval, seed=args.seed)  # fmt: skip
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    load_after = os.getloadavg()
    figures = result.figures()
    out: dict[str, Any] = {
        "benchmark": "service_load",
        "command": " ".join(["python -m benchmarks.service_load", *(argv or sys.argv[1:])]),
        "machine": machine(),
        "setup": {
            "unit": "pacelink unit serve (separate process, SQLite, 1 worker process)",
            "transport": "HTTP on loopback",
            "partners": args.partners,
            "records_per_partner": args.records,
            "bit_length": 1024,
            "pollers": args.pollers,
            "poll_interval_seconds": args.poll_interval,
        },
        **figures,
        "load_average_1min_before_after": [load_before[0], load_after[0]],
        "reference": NO_REFERENCE,
        "targets": {"errors": 0},
    }
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "service_load.json").write_text(json.dumps(out, indent=2) + "\n")
    lat = figures["status_poll_latency_ms"]
    print(
        f"\n{args.partners} concurrent uploads of {args.records:,} records "
        f"({figures['upload_bytes_total'] / 1e6:,.0f} MB) in {result.upload_seconds:.2f} s: "
        f"{result.uploads_per_second:.2f} uploads/s, {result.megabytes_per_second:.1f} MB/s"
    )
    print(
        f"status polls during the uploads: {figures['status_polls']:,}; latency p50 "
        f"{lat['p50']} ms, p95 {lat['p95']} ms, p99 {lat['p99']} ms, max {lat['max']} ms"
    )
    print(f"unit peak resident memory (server + worker): {figures['server_peak_rss_mib']} MiB")
    print(f"errors: {figures['errors']}" + "".join(f"\n  {e}" for e in result.errors[:20]))
    print(NO_REFERENCE)
    print(f"results: {args.out / 'service_load.json'}")
    return 0 if not result.errors else 1


if __name__ == "__main__":
    raise SystemExit(main())
