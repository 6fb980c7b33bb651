"""Seeded random streams, independent for each purpose and partner of a generator run."""

from __future__ import annotations

import zlib
from typing import Final

import numpy as np

__all__ = [
    "STREAM_ARRIVALS",
    "STREAM_EXTRACT",
    "STREAM_HELD_OUT",
    "STREAM_INCREMENTAL",
    "STREAM_LIFECYCLE",
    "STREAM_POPULATION",
    "random_stream",
    "spawn_streams",
]

# Fixed stream labels, so that each random stream is independent of the others.
STREAM_POPULATION: Final = 1
STREAM_EXTRACT: Final = 2
STREAM_INCREMENTAL: Final = 3
STREAM_ARRIVALS: Final = 4
STREAM_LIFECYCLE: Final = 5
STREAM_HELD_OUT: Final = 6  # the held-out population: a seed never used for tuning


def random_stream(seed: int, stream: int, label: str = "") -> np.random.Generator:
    """An independent random stream for a seed, a purpose and (e.g.) a partner name."""
    if seed < 0:
        raise ValueError(f"seed must not be negative, got {seed}")
    return np.random.default_rng([seed, stream, zlib.crc32(label.encode())])


def spawn_streams(rng: np.random.Generator, k: int) -> list[np.random.Generator]:
    """``k`` independent child streams of a stream."""
    return rng.spawn(k)
