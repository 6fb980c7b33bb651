"""Matching: finds the candidate record pairs whose encodings are similar enough to compare."""

from linkage_unit.matching.distributed import compare_in_chunks
from linkage_unit.matching.similarity import CandidateLimitExceeded, dice_candidates

__all__ = ["CandidateLimitExceeded", "compare_in_chunks", "dice_candidates"]
