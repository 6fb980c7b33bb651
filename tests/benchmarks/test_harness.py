"""The benchmarks' shared harness: machine description, peak memory, schema files."""

from __future__ import annotations

import sys
import time
from typing import Literal

import pytest

from benchmarks import harness


def test_machine_describes_the_cpu_and_optionally_the_kernels() -> None:
    plain = harness.machine()
    assert {"cpu", "cores", "memory_gib", "python", "platform"} <= set(plain)
    kernels = harness.machine(kernels=True)
    assert set(plain) < set(kernels)
    assert {"numba", "numba_threading_layer", "llvm_host_cpu", "avx2"} <= set(kernels)


@pytest.mark.parametrize("measure", ["rss", "pss"])
def test_peak_memory_of_this_process(measure: Literal["rss", "pss"]) -> None:
    with harness.PeakMemory(interval=0.01, measure=measure) as memory:
        block = bytearray(64 * 2**20)  # touched: resident
        time.sleep(0.1)
    del block
    assert memory.peak > 64 * 2**20


def test_peak_memory_of_a_command() -> None:
    code = "import time; b = bytearray(32 * 2**20); time.sleep(0.3)"
    peak, seconds = harness.peak_memory([sys.executable, "-c", code])
    assert peak > 32 * 2**20 and seconds >= 0.3
    with pytest.raises(SystemExit, match="exit code 3"):
        harness.peak_memory([sys.executable, "-c", "raise SystemExit(3)"])


def test_schema_documents_are_fresh_copies() -> None:
    doc = harness.schema_document()
    doc["features"].clear()
    assert harness.schema_document()["features"]
    assert harness.schema_document(harness.FEBRL4_SCHEMA_FILE)["clkConfig"]["l"] == 1024
