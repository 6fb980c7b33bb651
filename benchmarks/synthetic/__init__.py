r"""Seeded synthetic UK working-age population and messy partner extracts, with ground truth.

The generator stands in for the data of a PACE-style partnership (skills agency, benefits and
tax departments, councils, colleges) that hold records about the same people with no common
identifier. It is used by the match-quality and encoding benchmarks, and to make the small
bundled sample file.

* :func:`generate_population` draws the people: realistic name frequencies (Faker's ``en_GB``
  tables plus a small Scottish / Irish / Polish / South-Asian table written here), sex
  consistent with the given name, working-age dates of birth (16 to 66 on 2026-01-01),
  households that share a postcode and address, clustered in Scottish postcode areas, and
  valid-format National Insurance numbers.
* The **held-out population** (``generate_population(n, seed, HELD_OUT)``, scenarios ending
  in ``-held-out``) is drawn from independently built tables: US and New Zealand given names
  and surnames (and flattened English ones), four times as many double-barrelled surnames, a
  younger age profile, households weighted to rural postcode areas, its own random stream.
  It is held out: never used to choose a parameter (:mod:`~benchmarks.synthetic.heldout`).
* :class:`ErrorProfile` says how often each kind of error or variation is introduced;
  :data:`CLEAN`, :data:`LIGHT`, :data:`TYPICAL` and :data:`MESSY` are presets, and
  :data:`WIDE_TYPICAL` and :data:`WIDE_MESSY` (issue 13) add what an independent evaluation
  found that they flattered: one DOB digit wrong (not a keyboard typo), a middle name in the
  given-name field, a double surname cut to one part, and more name swaps, day/month swaps,
  missing dates of birth, surname changes, nicknames and within-partner duplicates. Which
  variations each record got is recorded (:data:`VARIATION_KINDS`; ``Scenario.variations``,
  ``variations.csv``), outside the partner files.
* :class:`PartnerSpec` describes one partner's file: coverage, error profile, column names,
  date format, sex coding, optional columns, local-ID prefix, fields it lacks altogether
  (``absent``: no column) and whether it keeps a previous surname.
* :func:`make_extract` renders one partner's file. Its last column, ``_true_person_id``
  (:data:`TRUTH_COLUMN`), is the ground truth: benchmarks read it, and it must be dropped
  before a file is encoded.
* :func:`make_scenario` builds named scenarios (:data:`SCENARIOS`): ``two-party``,
  ``five-party``, ``incremental`` (two delivered batches per partner), ``sample``,
  ``heterogeneous`` (five partners, three lacking columns, widened variations) and the
  ``-held-out`` variants (``two-party``, ``five-party``, ``incremental``, ``heterogeneous``).

Everything is deterministic: the same arguments give byte-identical output.

Modules, in pipeline order: :mod:`~benchmarks.synthetic.streams` (seeded random streams),
:mod:`~benchmarks.synthetic.population`, :mod:`~benchmarks.synthetic.variation` (error
models), :mod:`~benchmarks.synthetic.partners` (file layouts and the partner catalogue,
``partners.json``), :mod:`~benchmarks.synthetic.extracts`,
:mod:`~benchmarks.synthetic.scenarios`, :mod:`~benchmarks.synthetic.lifecycle` and
:mod:`~benchmarks.synthetic.cli`. This package re-exports their public API.

Command line (``python -m benchmarks.synthetic --help``)::

    python -m benchmarks.synthetic --scenario five-party --people 100000 --seed 1 --out DIR

The bundled sample ``encoder/data/sample_partner.csv`` was made with::

    python -m benchmarks.synthetic --scenario sample --people 1000 --seed 20260101 \
        --pace-columns --strip-truth --out /tmp/pacelink-sample
    cp /tmp/pacelink-sample/sample_partner.csv encoder/data/sample_partner.csv
"""

from __future__ import annotations

from benchmarks.synthetic.cli import SAMPLE_COMMAND, main
from benchmarks.synthetic.extracts import make_extract, to_pace_columns, variation_flags
from benchmarks.synthetic.heldout import HELD_OUT, POPULATIONS, held_out_tables
from benchmarks.synthetic.lifecycle import (
    LIFECYCLE_DELIVERING,
    LIFECYCLE_STATIC,
    UPDATE_KINDS,
    Lifecycle,
    LifecycleBatch,
    LifecycleRates,
    UpdateKind,
    UploadKind,
    make_lifecycle,
    write_lifecycle,
)
from benchmarks.synthetic.partners import (
    PACE_COLUMNS,
    ColumnNames,
    PartnerSpec,
    SexCoding,
    partner_catalogue,
)
from benchmarks.synthetic.population import (
    MAX_AGE,
    MIN_AGE,
    PACE_FIELDS,
    REFERENCE_DATE,
    STANDARD,
    TRUTH_COLUMN,
    PopulationStyle,
    generate_population,
)
from benchmarks.synthetic.scenarios import (
    HELD_OUT_SUFFIX,
    INCREMENTAL_NEW_SHARE,
    INCREMENTAL_UPDATE_SHARE,
    SCENARIOS,
    Scenario,
    make_scenario,
)
from benchmarks.synthetic.variation import (
    CLEAN,
    LIGHT,
    MESSY,
    PRESETS,
    TYPICAL,
    VARIATION_KINDS,
    WIDE_MESSY,
    WIDE_TYPICAL,
    ErrorProfile,
    FieldRates,
)

__all__ = [
    "CLEAN",
    "HELD_OUT",
    "HELD_OUT_SUFFIX",
    "INCREMENTAL_NEW_SHARE",
    "INCREMENTAL_UPDATE_SHARE",
    "LIFECYCLE_DELIVERING",
    "LIFECYCLE_STATIC",
    "LIGHT",
    "MAX_AGE",
    "MESSY",
    "MIN_AGE",
    "PACE_COLUMNS",
    "PACE_FIELDS",
    "POPULATIONS",
    "PRESETS",
    "REFERENCE_DATE",
    "SAMPLE_COMMAND",
    "SCENARIOS",
    "STANDARD",
    "TRUTH_COLUMN",
    "TYPICAL",
    "UPDATE_KINDS",
    "VARIATION_KINDS",
    "WIDE_MESSY",
    "WIDE_TYPICAL",
    "ColumnNames",
    "ErrorProfile",
    "FieldRates",
    "Lifecycle",
    "LifecycleBatch",
    "LifecycleRates",
    "PartnerSpec",
    "PopulationStyle",
    "Scenario",
    "SexCoding",
    "UpdateKind",
    "UploadKind",
    "generate_population",
    "held_out_tables",
    "main",
    "make_extract",
    "make_lifecycle",
    "make_scenario",
    "partner_catalogue",
    "to_pace_columns",
    "variation_flags",
    "write_lifecycle",
]
