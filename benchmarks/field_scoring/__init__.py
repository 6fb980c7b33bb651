"""Evidence for field-aware scoring: segmented encodings, Fellegi-Sunter, and their exposure.

    python -m benchmarks.field_scoring --people 3000            # quality table
    python -m benchmarks.field_scoring --privacy --records 5000  # attacks on one segment

Segmented encodings are built *without changing the encoder*: each field group of the default
schema (``schemas/pace-default.json``) is encoded on its own by ``encoder.encode_dataframe``
under a small schema holding only that group's features (same secret, same hashing settings,
the group's own filter length), and each record's segments are concatenated.  The layout
(:data:`.encodings.GROUPS`) gives each group room for about its share of today's hash insertions
(``bitsPerFeature``/``bitsPerToken`` of the default: names 220, date of birth 180, sex 10,
postcode 50, address line 30, NI number 120, of 610 in 1,024 bits) at a similar density
(40-55 % of bits set), under clkhash's constraint that a ``blakeHash`` filter has a
power-of-two length: names 512, date of birth 256, sex 64, postcode 64, address line 64, NI
number 128 bits, 1,088 in all.  Postcode and address line are separate segments because
some partners hold no address line: in one segment, their postcode-only records would
half-agree with everyone's postcode-and-address records.

Salting.  The default salts each record by its year of birth.  ``recordSalt`` must name a
hashed feature of the schema, so only the date-of-birth segment's own schema can be salted
by the encoder.  Two segmented variants are therefore compared: ``segmented`` (date of birth
salted, the other segments not) and ``segmented all salted``, where every other segment is
encoded year group by year group under a per-year secret: as with the encoder's keyed
permutation, records of one salt compare as before and records of two salts look unrelated,
so the linkage figures are those of a salted segment (not the attack figures: for attacks,
``--privacy`` uses stand-ins the harness understands, see :func:`.encodings.segment_schema`).

Quality methods, on the synthetic scenarios (``benchmarks.quality.datasets``), each also
with one partner's sex and another's postcode and address line blanked (``+missing``),
pairwise measures from ``linkage_unit.matching.evaluation``:

* ``record-dice (today)``: one record-level filter, ``link_encodings(..., "auto")``; and
  ``record-dice unsalted``, the same without the salt (what the salt costs).
* ``segmented-dice``: the same on the concatenated segments (record-level Dice over them).
* ``fellegi-sunter``: candidates by blocking at Dice >= ``--floor`` over the whole segmented
  filter, per-segment Dice (address line left out, :data:`.encodings.SKIP`), u from random
  pairs, m by EM in two Splink-style sessions (same date of birth, then same names) and
  lambda by EM on all candidates (:func:`linkage_unit.matching.fellegi_sunter.fit_sessions`),
  one-to-one greedy solving per pair of parties on the match weight, threshold at the best
  *estimated* F1 of the solved pairs, entities by
  :func:`linkage_unit.matching.solving.cluster` on the pairs kept.
* ``splink (plain text)``: ``benchmarks.quality.splink_runs.run_splink`` at match
  probability 0.5 (label-free), for reference: it sees plain text.

Nothing is written under ``benchmarks/results/``: the tables are printed.
"""

__all__: list[str] = []
