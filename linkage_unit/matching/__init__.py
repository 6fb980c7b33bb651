"""Matching: finds the candidate record pairs whose encodings are similar enough to compare."""

from linkage_unit.matching.similarity import dice_candidates

__all__ = ["dice_candidates"]
