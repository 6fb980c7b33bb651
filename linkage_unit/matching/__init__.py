"""Matching: from encodings to candidate pairs, a threshold, and entities with stable IDs.

Pipeline order: `similarity` (the Dice kernel), `blocking`, `distributed` (scale-out),
`threshold` (label-free choice), `solving` (one-to-one and N-party grouping), `entities`
(persistent index of linkage IDs), `incremental` (`link_changes`: the one way a run's
deliveries and withdrawals are linked into the index) and `linkage` (offline files, over
`link_changes`).  Shared by them: `candidates` (the `(i, j, score)` type), `bitarrays`
(checks, words, popcounts and the exact threshold table of packed filters), `intrinsics`
(the LLVM code of the kernels) and `agglomeration` (the greedy union-find of `solving` and
`entities`).
"""

from linkage_unit.matching.blocking import (
    DEFAULT_BLOCKING,
    BlockingConfig,
    BlockingStats,
    blocking_stats,
    candidate_pairs,
    pair_completeness,
)
from linkage_unit.matching.candidates import Candidates
from linkage_unit.matching.distributed import compare_in_chunks
from linkage_unit.matching.entities import EntityIndex
from linkage_unit.matching.incremental import (
    Delivery,
    LinkOutcome,
    LinkSettings,
    Withdrawal,
    link_changes,
)
from linkage_unit.matching.linkage import LinkSummary, link_encodings
from linkage_unit.matching.similarity import (
    CandidateLimitExceeded,
    dice_candidates,
    iter_dice_candidates,
)
from linkage_unit.matching.solving import Groups, cluster, greedy_solve_two
from linkage_unit.matching.threshold import (
    ThresholdEstimate,
    estimate_threshold,
    runner_up_scores,
)

__all__ = [
    "DEFAULT_BLOCKING",
    "BlockingConfig",
    "BlockingStats",
    "CandidateLimitExceeded",
    "Candidates",
    "Delivery",
    "EntityIndex",
    "Groups",
    "LinkOutcome",
    "LinkSettings",
    "LinkSummary",
    "ThresholdEstimate",
    "Withdrawal",
    "blocking_stats",
    "candidate_pairs",
    "cluster",
    "compare_in_chunks",
    "dice_candidates",
    "estimate_threshold",
    "greedy_solve_two",
    "iter_dice_candidates",
    "link_changes",
    "link_encodings",
    "pair_completeness",
    "runner_up_scores",
]
