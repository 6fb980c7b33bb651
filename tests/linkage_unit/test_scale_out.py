"""Blocked linkage on Dask gives what one process gives.

Checked with `pacelink link` on real `dask scheduler` + `dask worker` processes, and with the
unit's runs on a LocalCluster.

The files are large enough to be blocked (more pairs than blocking's exhaustive limit), with
a share of near-duplicate encodings across them so that there is something to link.
"""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator
from importlib.metadata import version
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from distributed import Client, LocalCluster
from typer.testing import CliRunner

from encoder.cli import app, load_plugins
from encoder.fileformat import EncodingWriter, HeaderFacts
from encoder.keys import generate_secret, key_check_value
from encoder.schema import load_schema
from linkage_unit.client import UnitClient
from linkage_unit.embedded import EmbeddedUnit
from linkage_unit.matching.blocking import DEFAULT_BLOCKING

ROWS = 7_600  # 7,600 ** 2 pairs: more than blocking's exhaustive limit
SCHEMA = load_schema("pace-default")
KCV = key_check_value(generate_secret())


def _files(folder: Path, seed: int) -> tuple[Path, Path]:
    """Two .plk files of the default schema: random filters, a third of B near A's."""
    assert DEFAULT_BLOCKING.exhaustive_up_to < ROWS * ROWS
    rng = np.random.default_rng(seed)
    width = SCHEMA.bit_length
    a = np.packbits(rng.random((ROWS, width)) < 0.35, axis=1)
    b = np.packbits(rng.random((ROWS, width)) < 0.35, axis=1)
    near = ROWS // 3
    flips = np.packbits(rng.random((near, width)) < 0.04, axis=1)
    b[:near] = a[rng.permutation(ROWS)[:near]] ^ flips
    paths = []
    for name, bits in (("a", a), ("b", b)):
        path = folder / f"{name}.plk"
        with EncodingWriter(path, width) as writer:
            writer.append(bits)
            features = [(f.name, ROWS) for f in SCHEMA.features if not f.ignored]
            writer.finish(HeaderFacts(version("pacelink"), SCHEMA.fingerprint, KCV, features))
        paths.append(path)
    return paths[0], paths[1]


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    return _files(tmp_path_factory.mktemp("scale"), 17)


@pytest.fixture
def dask_processes(tmp_path: Path) -> Iterator[str]:
    """A real `dask scheduler` and two `dask worker` processes on loopback."""
    dask = str(Path(sys.executable).with_name("dask"))
    info = tmp_path / "scheduler.json"
    procs = [subprocess.Popen(
        [dask, "scheduler", "--host", "127.0.0.1", "--port", "0", "--dashboard-address", ":0",
         "--scheduler-file", str(info), "--no-show"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )]  # fmt: skip
    try:
        deadline = time.monotonic() + 60
        while not info.exists() and time.monotonic() < deadline:
            time.sleep(0.1)
        assert info.exists(), "the Dask scheduler did not start"
        procs.append(subprocess.Popen(
            [dask, "worker", "--scheduler-file", str(info), "--nworkers", "2", "--nthreads", "1",
             "--no-dashboard", "--local-directory", str(tmp_path / "dask-worker")],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        ))  # fmt: skip
        with Client(scheduler_file=str(info), timeout=60) as client:
            client.wait_for_workers(2, timeout=60)
            address = str(client.scheduler.address)
        yield address
    finally:
        for proc in reversed(procs):
            proc.terminate()
        for proc in procs:
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()


def _ran_on(address: str) -> int:
    """Whether the cluster has run blocking tasks (so a test knows it was used).

    Task prefixes outlive the tasks and the client that submitted them.
    """

    def count(dask_scheduler: Any) -> int:
        return sum(1 for name in dask_scheduler.task_prefixes if name == "block_tables")

    with Client(address, timeout=30) as client:
        return int(client.run_on_scheduler(count))


def test_link_command_on_dask_processes_equals_one_process(
    files: tuple[Path, Path], dask_processes: str, tmp_path: Path
) -> None:
    load_plugins()
    runner = CliRunner()
    alone = runner.invoke(app, ["link", str(files[0]), str(files[1]), "--threshold", "0.8",
                                "--out", str(tmp_path / "alone.csv")])  # fmt: skip
    assert alone.exit_code == 0, alone.output
    assert "Hamming LSH" in alone.output  # blocked, not exhaustive
    spread = runner.invoke(app, ["link", str(files[0]), str(files[1]), "--threshold", "0.8",
                                 "--scheduler", dask_processes,
                                 "--out", str(tmp_path / "dask.csv")])  # fmt: skip
    assert spread.exit_code == 0, spread.output
    grouped = (tmp_path / "alone.csv").read_bytes()
    assert grouped.count(b"\n") == 2 * ROWS + 1
    assert (tmp_path / "dask.csv").read_bytes() == grouped
    assert _ran_on(dask_processes) > 0
    # The workers read the encodings from the scratch folder beside the output, which goes.
    assert not list(tmp_path.glob(".pacelink-scratch-*"))


def test_link_command_refuses_scratch_without_scheduler(files: tuple[Path, Path],
                                                        tmp_path: Path) -> None:  # fmt: skip
    load_plugins()
    result = CliRunner().invoke(app, ["link", str(files[0]), str(files[1]), "--scratch",
                                      str(tmp_path), "--out", str(tmp_path / "g.csv")])  # fmt: skip
    assert result.exit_code != 0 and "add --scheduler" in result.output


def _partition(unit: EmbeddedUnit, files: tuple[Path, Path]) -> tuple[set[frozenset[str]], dict]:
    """Link the two files in a project of ``unit``; the records grouped by linkage ID."""
    with UnitClient(unit.url, unit.admin_token) as admin:
        created = admin.create_project({"name": "scale", "purpose": "testing",
                                        "schema": SCHEMA.raw, "parties": ["a", "b"],
                                        "threshold": 0.8})  # fmt: skip
        project = created["project_id"]
        for name, path in zip(("a", "b"), files, strict=True):
            with UnitClient(unit.url, created["parties"][name]) as party:
                party.upload(project, path)
        run = admin.wait(project, admin.start_run(project)["id"], poll=0.1, timeout=300)
    assert run["status"] == "done", run
    groups: dict[str, set[str]] = {}
    for name in ("a", "b"):
        with UnitClient(unit.url, created["parties"][name]) as party:
            for line in party.mapping(project).splitlines()[1:]:
                _, row, linkage_id = line.split(",")
                groups.setdefault(linkage_id, set()).add(f"{name}{row}")
    return {frozenset(g) for g in groups.values()}, run["summary"]


def test_unit_runs_on_dask_link_as_one_process(files: tuple[Path, Path],
                                               tmp_path: Path) -> None:  # fmt: skip
    with EmbeddedUnit(tmp_path / "alone", poll_seconds=0.05) as unit:
        alone, alone_summary = _partition(unit, files)
    with (
        LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None,
                     host="127.0.0.1") as cluster,
        EmbeddedUnit(tmp_path / "dask", poll_seconds=0.05,
                     scheduler=cluster.scheduler_address) as unit,  # type: ignore[arg-type]
    ):  # fmt: skip
        spread, spread_summary = _partition(unit, files)
        assert _ran_on(cluster.scheduler_address) > 0
        # The run's scratch files (what the workers read) are gone with the run.
        assert not list((tmp_path / "dask").glob("projects/*/runs/*/scratch"))
    assert sum(len(g) > 1 for g in alone) > ROWS // 4
    assert spread == alone
    assert spread_summary["comparisons"] == alone_summary["comparisons"]


def test_link_command_on_the_gpu_needs_one(files: tuple[Path, Path], tmp_path: Path) -> None:
    from linkage_unit.matching import gpu

    load_plugins()
    args = ["link", str(files[0]), str(files[1]), "--out", str(tmp_path / "g.csv")]
    result = CliRunner().invoke(app, [*args, "--device", "tpu"])
    assert result.exit_code != 0 and "expected 'cpu' or 'gpu'" in result.output
    result = CliRunner().invoke(app, [*args, "--device", "gpu", "--scheduler", "tcp://x:1"])
    assert result.exit_code != 0 and "leave out --scheduler" in result.output
    if gpu.available():
        pytest.skip("a GPU is present: tests/linkage_unit/matching/test_gpu.py uses it")
    result = CliRunner().invoke(app, [*args, "--device", "gpu"])
    assert result.exit_code != 0 and "no CUDA GPU" in result.output
    assert not (tmp_path / "g.csv").exists()
