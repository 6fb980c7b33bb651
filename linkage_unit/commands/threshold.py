"""The `--threshold` option of `link`, `unit project create` and `unit run`, as a `Threshold`."""

from __future__ import annotations

from encoder.cli import fail
from linkage_unit.matching.threshold import Threshold, ThresholdError

__all__ = ["parse_threshold"]


def parse_threshold(text: str) -> Threshold:
    """A `--threshold` value: a number in (0, 1] or "auto"; anything else exits non-zero."""
    try:
        return Threshold.parse(text)
    except ThresholdError as exc:
        fail(f"--threshold {exc}")
