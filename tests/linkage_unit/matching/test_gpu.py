"""The GPU Dice kernel: on numba's CUDA simulator always, on a real GPU when there is one.

The simulator runs the kernel's Python source on the CPU, thread by thread: slow, so the
inputs are small, but it is the same kernel code (tiles, shared memory, atomic slots, the
rerun when the output is full) checked against the CPU kernel. It needs numba's simulator
switched on before numba is imported, so it runs in a process of its own.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from linkage_unit.matching import gpu
from linkage_unit.matching.similarity import dice_candidates


def _encodings(seed: int, n: int, m: int, width: int = 1024) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    a = rng.random((n, width)) < 0.3
    b = rng.random((m, width)) < 0.3
    b[: n // 2] = a[: n // 2] ^ (rng.random((n // 2, width)) < 0.05)
    b[-1] = False  # an all-zero filter is never a candidate
    return np.packbits(a, axis=1), np.packbits(b, axis=1)


def test_kernel_on_the_cuda_simulator_equals_the_cpu_kernel() -> None:
    script = textwrap.dedent("""
        import numpy as np
        from linkage_unit.matching.gpu import dice_candidates_gpu
        from linkage_unit.matching.similarity import dice_candidates
        from tests.linkage_unit.matching.test_gpu import _encodings

        a, b = _encodings(3, 20, 40, width=256)
        for threshold, capacity in ((0.6, 1 << 10), (0.6, 3), (1.0, 8)):
            got = dice_candidates_gpu(a, b, threshold, capacity=capacity, chunk_rows=9)
            want = dice_candidates(a, b, threshold)
            assert want[0].size >= 5 or threshold == 1.0
            for x, y in zip(got, want, strict=True):
                assert x.dtype == y.dtype and np.array_equal(x, y), (threshold, capacity)
        print("same", want[0].size)
    """)  # fmt: skip
    env = {**os.environ, "NUMBA_ENABLE_CUDASIM": "1", "PYTHONPATH": os.getcwd()}
    done = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True,
                          text=True, timeout=600, check=False)  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.startswith("same")


def test_without_a_gpu_it_says_so() -> None:
    if gpu.available():
        pytest.skip("a GPU is present: the refusal cannot be seen")
    a, b = _encodings(1, 4, 4)
    with pytest.raises(gpu.GpuUnavailable, match="no CUDA GPU"):
        gpu.dice_candidates_gpu(a, b, 0.8)
    with pytest.raises(ValueError, match="threshold"):
        gpu.dice_candidates_gpu(a, b, 1.5)


@pytest.mark.gpu
@pytest.mark.skipif(not gpu.available(), reason="needs a CUDA GPU")
def test_gpu_equals_the_cpu_kernel_on_the_device() -> None:
    a, b = _encodings(2, 3000, 5000)
    for threshold in (0.5, 0.8, 0.95):
        got = gpu.dice_candidates_gpu(a, b, threshold, chunk_rows=1000, capacity=1000)
        want = dice_candidates(a, b, threshold)
        for x, y in zip(got, want, strict=True):
            assert np.array_equal(x, y)
