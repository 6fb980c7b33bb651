"""What every benchmark records besides its figures: where results go, the machine, peak memory."""

from __future__ import annotations

import contextlib
import json
import os
import platform
import subprocess
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Final, Literal

import psutil  # type: ignore[import-untyped]

__all__ = [
    "BENCHMARKS",
    "DEFAULT_SCHEMA_FILE",
    "FEBRL4_SCHEMA_FILE",
    "REPO",
    "RESULTS",
    "SCHEMAS",
    "WORK",
    "PeakMemory",
    "machine",
    "peak_memory",
    "schema_document",
]

BENCHMARKS: Final = Path(__file__).resolve().parent
"""The ``benchmarks`` folder."""
REPO: Final = BENCHMARKS.parent
"""The repository (``docs/``, ``schemas/``)."""
SCHEMAS: Final = REPO / "schemas"
"""The linkage schemas the benchmarks encode with (``pace-default.json``, ``febrl4.json``)."""
DEFAULT_SCHEMA_FILE: Final = SCHEMAS / "pace-default.json"
"""The bundled default schema (``pace-default``) as a file."""
FEBRL4_SCHEMA_FILE: Final = SCHEMAS / "febrl4.json"
"""The clkhash tutorial's FEBRL schema (blakeHash, no standardisers): FEBRL4 is encoded with it
by pacelink and clkhash alike, so that both encode identical filters."""
RESULTS: Final = BENCHMARKS / "results"
"""Where each benchmark writes its JSON results (kept in git)."""
WORK: Final = BENCHMARKS / "work"
"""Scratch files of the benchmarks (ignored by git)."""


def schema_document(path: Path = DEFAULT_SCHEMA_FILE) -> dict[str, Any]:
    """A fresh copy of a schema file's JSON document (callers change theirs freely).

    Args:
        path: The schema file (default: the bundled default).

    Returns:
        The parsed document.
    """
    doc: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return doc


def _cpu() -> tuple[str, set[str]]:
    """The CPU model name and its feature flags, as Linux reports them."""
    cpu = "unknown"
    flags: set[str] = set()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name") and cpu == "unknown":
                cpu = line.split(":", 1)[1].strip()
            elif line.startswith("flags") and not flags:
                flags = set(line.split(":", 1)[1].split())
    except OSError:
        pass
    return cpu, flags


def _threading_layer() -> str:
    import numba  # noqa: PLC0415 - see machine: only kernel benchmarks get here

    layer: Callable[[], str] = numba.np.ufunc.parallel.threading_layer  # untyped in numba
    try:
        return layer()
    except ValueError:  # no parallel function has run yet
        return "not initialised"


def machine(*, kernels: bool = False) -> dict[str, Any]:
    """What the figures were measured on.

    Args:
        kernels: Also what decides the similarity kernels' speed: usable cores, LLVM's host
            CPU, the vector instruction sets, numba's and numpy's versions and threading layer.

    Returns:
        ``cpu``, ``cores``, ``memory_gib``, ``python``, ``platform`` (and with ``kernels``
        the kernel-related entries).
    """
    cpu, flags = _cpu()
    info: dict[str, Any] = {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "memory_gib": round(psutil.virtual_memory().total / 2**30, 1),
        "python": platform.python_version(),
        "platform": platform.platform(),
    }
    if kernels:
        # Only the kernel benchmarks ask: the others (report, lifecycle, service load) start
        # without numba's ~0.25 s, and the report without numpy.
        import llvmlite.binding as llvm  # type: ignore[import-untyped]  # noqa: PLC0415
        import numba  # noqa: PLC0415
        import numpy as np  # noqa: PLC0415

        info |= {
            "usable_cores": len(os.sched_getaffinity(0)),
            "llvm_host_cpu": llvm.get_host_cpu_name(),
            "avx2": "avx2" in flags,
            "avx512f": "avx512f" in flags,
            "avx512_vpopcntdq": "avx512_vpopcntdq" in flags,
            "numba": numba.__version__,
            "numba_threading_layer": _threading_layer(),
            "numpy": np.__version__,
        }
    return info


class PeakMemory:
    """Samples the memory of a process (default: this one) and its children; keeps the peak.

    Use as a context manager; :attr:`peak` is the largest sum seen, in bytes.
    """

    def __init__(
        self, pid: int | None = None, interval: float = 0.05, measure: Literal["rss", "pss"] = "rss"
    ) -> None:
        """Prepare the sampler.

        Args:
            pid: The process (default: this one); its children are counted with it.
            interval: Seconds between samples.
            measure: ``rss`` (resident set size) or ``pss`` (proportional set size: shared
                pages divided among the processes sharing them, slower to read).
        """
        self._proc = psutil.Process(pid)
        self._interval = interval
        self._measure = measure
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self.peak = 0

    def _sample(self) -> int:
        procs = [self._proc, *self._proc.children(recursive=True)]
        if self._measure == "pss":
            return sum(p.memory_full_info().pss for p in procs)
        return sum(p.memory_info().rss for p in procs)

    def _run(self) -> None:
        while not self._stop.wait(self._interval):
            # A child may end between being listed and being read.
            with contextlib.suppress(psutil.Error):
                self.peak = max(self.peak, self._sample())

    def __enter__(self) -> PeakMemory:
        """Start sampling."""
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        """Stop sampling."""
        self._stop.set()
        self._thread.join()


def peak_memory(command: Sequence[str]) -> tuple[int, float]:
    """Run a command; return the peak summed PSS of it and its children, and its time.

    Args:
        command: The command and its arguments.

    Returns:
        The peak in bytes and the seconds it ran.

    Raises:
        SystemExit: The command failed.
    """
    started = time.perf_counter()
    proc = subprocess.Popen(command, stdout=subprocess.DEVNULL)
    with PeakMemory(proc.pid, interval=0.02, measure="pss") as memory:
        code = proc.wait()
    if code != 0:
        raise SystemExit(f"memory run failed with exit code {code}")
    return memory.peak, time.perf_counter() - started
