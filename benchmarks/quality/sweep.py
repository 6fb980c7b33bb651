"""Threshold sweeps: the grids each tool is tried along, and the best point of a curve."""

from __future__ import annotations

from typing import Any, Final

import numpy as np

__all__ = [
    "DICE_GRID",
    "SPLINK_GRID",
    "best_point",
]

#: Fixed thresholds tried for pacelink and anonlink (Dice).
DICE_GRID: Final = np.round(np.arange(0.50, 0.991, 0.01), 2)
#: Match probabilities tried for Splink.
SPLINK_GRID: Final = np.array(
    [0.01, 0.05, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95, 0.99, 0.995, 0.999]
)
#: anonlink's candidates are gathered exhaustively from this floor (below it the filters


def best_point(curve: list[dict[str, Any]]) -> dict[str, Any]:
    """The point of a threshold sweep with the best pairwise F1."""
    # Ties: the lowest threshold reaching the best F1 (what a sweep reports first).
    return max(curve, key=lambda row: (round(row["f1"], 12), -row["threshold"]))
