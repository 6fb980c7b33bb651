"""The service-load benchmark, tiny: a real unit process, three concurrent uploads, pollers."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from benchmarks import service_load
from encoder.fileformat import read_encodings
from encoder.schema import load_schema

PARTNERS = 3
RECORDS = 2_000


@pytest.mark.slow
def test_tiny_load_run_has_no_errors_and_sane_figures(tmp_path: Path) -> None:
    """Every upload is accepted with its records, polls answer, and the figures add up."""
    result = service_load.run_load(PARTNERS, RECORDS, tmp_path, pollers=2, poll_interval=0.01,
                                   log=lambda _: None)  # fmt: skip
    assert result.errors == []
    assert len(result.upload_latencies) == PARTNERS
    # Each file is its header block and the bits: 128 bytes a record for 1024-bit filters.
    assert result.upload_bytes == PARTNERS * (8192 + RECORDS * 128)
    assert 0 < max(result.upload_latencies) <= result.upload_seconds < 120
    assert result.uploads_per_second == pytest.approx(PARTNERS / result.upload_seconds)
    assert result.megabytes_per_second == pytest.approx(
        result.upload_bytes / 1e6 / result.upload_seconds
    )
    figures = result.figures()
    json.dumps(figures, allow_nan=False)  # what the results file holds is plain JSON
    assert figures["errors"] == 0
    latency = figures["status_poll_latency_ms"]
    if result.poll_latencies:  # uploads this small may finish before a poll is answered
        assert 0 < latency["p50"] <= latency["p95"] <= latency["p99"] <= latency["max"] < 60_000
    else:
        assert all(math.isnan(v) for v in latency.values())
    assert figures["server_peak_rss_mib"] > 10  # the sampler did see the unit's processes


def test_random_encodings_are_a_valid_plk_file(tmp_path: Path) -> None:
    """The load files pass the same checks as the unit's: header, size, content digest."""
    schema = load_schema("pace-default")
    path = tmp_path / "random.plk"
    size = service_load.write_random_encodings(
        path, 45_001, bit_length=schema.bit_length, fingerprint=schema.fingerprint,
        kcv="0" * 32, features=["given_name"], seed=3,
    )  # fmt: skip
    encodings = read_encodings(path, verify=True)
    assert len(encodings) == 45_001
    assert size == path.stat().st_size
    assert encodings.header["schema_fingerprint"] == schema.fingerprint
    # Random bits: about half of the 1024 bits set.
    assert 480 < encodings.header["popcount"]["mean"] < 544
