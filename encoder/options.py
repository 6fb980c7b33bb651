"""What a partner asks of a run: its options, their early checks, and the error a run fails with.

Every check here runs before a record is read: a date format strptime would not understand,
options that contradict each other, columns the schema needs but the input lacks, and
features declared absent (`--absent`) that cannot be.

A partner that does not hold a schema feature (a council list without sex, a union-learning
list without postcodes) declares it absent: the schema, its fingerprint and the secret stay
the partnership's, and the feature is encoded as missing in every record, exactly as a blank
value is. The rules on what may be absent (`resolve_columns`):

- only a hashed feature of the schema that reads a column: a derived feature follows its
  sources (it is absent when all of them are), an ignored one is never encoded anyway;
- never a feature that is also mapped with `--column`, or whose column the input has (a
  blank column already encodes as missing: absence is a statement about the partner);
- only where a blank value is encoded as missing rather than rejected (else every record
  would be rejected);
- at least one feature must still be read from the input: a file with nothing to link on
  is refused.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from encoder.formatting import FeatureFormatter
from encoder.header_row import describe_header
from encoder.keys import RecordKey
from encoder.read import TableReader
from encoder.schema import LinkageSchema

__all__ = [
    "DEFAULT_CONSENT_VALUES",
    "DEFAULT_MAX_REJECT_RATE",
    "EncodeError",
    "EncodeOptions",
    "absent_features",
    "check_date_format",
    "resolve_columns",
]

#: Consent values accepted as "yes" (compared case-insensitively, trimmed).
DEFAULT_CONSENT_VALUES = frozenset({"y", "yes", "true", "1", "t"})
#: A run fails when more than this share of the records with consent is rejected: so many
#: rejections mean swapped or wrongly mapped columns far more often than bad data.
DEFAULT_MAX_REJECT_RATE = 0.5
# Directives Python's strptime knows (`%:z` counted as `%z`).
_STRPTIME_DIRECTIVES = frozenset("aAwdbBmyYHIpMSfzZjUWcxXGuV%")


class EncodeError(ValueError):
    """The run cannot go on; the message names the file, row or field (never a value)."""


def check_date_format(fmt: str) -> None:
    """Refuse a `--date-format` strptime would not understand, before any data is read.

    A format needs at least one directive, and only directives strptime knows (`%Q` would
    otherwise reject every date, one record at a time).

    Raises:
        EncodeError: Naming --date-format and the unknown directive.
    """
    directives: list[str] = []
    i = 0
    while i < len(fmt):
        if fmt[i] != "%":
            i += 1
            continue
        if i + 1 >= len(fmt):
            raise EncodeError(f"--date-format {fmt!r}: ends with a lone '%'")
        code = fmt[i + 1]
        if code == ":" and fmt[i + 2 : i + 3] == "z":
            code, i = "z", i + 1
        if code not in _STRPTIME_DIRECTIVES:
            raise EncodeError(
                f"--date-format {fmt!r}: unknown directive %{code} (dates use %d %m %Y, "
                "e.g. --date-format %d/%m/%Y)"
            )
        directives.append(code)
        i += 2
    if not [d for d in directives if d != "%"]:
        raise EncodeError(
            f"--date-format {fmt!r}: no strptime directive such as %d, %m or %Y "
            "(e.g. --date-format %d/%m/%Y)"
        )


@dataclass(frozen=True)
class EncodeOptions:
    """How a partner's file maps onto the schema, and how to run.

    Attributes:
        id_column: Column of the partner's local record ID; without one, the data-row number
            is used as the local ID.
        columns: Feature name → column name, for features whose column is named differently.
        consent_column: Column recording consent; only records whose value is one of
            `consent_values` are encoded.
        date_format: strptime format forced on every date feature (default: detected);
            checked when the options are made.
        workers: Worker threads (1 encodes in the calling thread).
        chunk_rows: Records per chunk; bounds memory.
        max_reject_rate: The run fails (and writes nothing) when more than this share of
            the records with consent is rejected; 1 never fails.
        record_key: The partner's own record key: each encoded record gets the pseudonym of
            its canonical local ID (`encoder.keymap`), stored after the bits. Needs
            `id_column` (row numbers change between deliveries). Without it the linkage
            unit cannot recognise updated records or withdraw single ones.
        absent: Schema features the partner does not hold (`--absent`): encoded as missing
            in every record, and recorded as absent in the report and the `.plk` header.
    """

    id_column: str | None = None
    columns: Mapping[str, str] = field(default_factory=dict)
    consent_column: str | None = None
    consent_values: frozenset[str] = DEFAULT_CONSENT_VALUES
    date_format: str | None = None
    workers: int = 2
    chunk_rows: int = 50_000
    max_reject_rate: float = DEFAULT_MAX_REJECT_RATE
    record_key: RecordKey | None = field(default=None, repr=False)
    absent: frozenset[str] = frozenset()

    def __post_init__(self) -> None:
        """Check the options before any data is read."""
        both = sorted(set(self.absent) & set(self.columns))
        if both:
            raise EncodeError(
                f"--absent {both[0]} and --column {both[0]}={self.columns[both[0]]}: a feature "
                "is either read from a column or declared absent, not both"
            )
        if self.record_key is not None and self.id_column is None:
            raise EncodeError(
                "--record-key needs --id-column: pseudonyms are made from your local record "
                "IDs (row numbers change from one delivery to the next)"
            )
        if self.date_format is not None:
            check_date_format(self.date_format)
        if not 0.0 <= self.max_reject_rate <= 1.0 or math.isnan(self.max_reject_rate):
            raise EncodeError(
                f"--max-reject-rate {self.max_reject_rate}: expected a fraction from 0 to 1"
            )


def resolve_columns(
    schema: LinkageSchema,
    available: Sequence[str],
    options: EncodeOptions,
    source: str,
    reader: TableReader | None = None,
) -> dict[str, str | None]:
    """Feature → input column (None: derived, or optional and absent), checked against the input.

    Args:
        schema: The linkage schema.
        available: The input's column names.
        options: The run's options (`columns`, `absent`, `id_column`, `consent_column`).
        source: The input as messages name it.
        reader: The input's reader, to say what is wrong with its header.

    Error messages never list the header's names as found: a file without a header row has
    a client's details there (`describe_header` says what is wrong instead). A feature
    declared absent reads no column (None); the rules it must keep are the module's.

    Raises:
        EncodeError: A mapping names no feature or a derived one, a column is missing, or
            a feature cannot be declared absent.
    """
    unknown = sorted(set(options.columns) - {f.name for f in schema.features})
    if unknown:
        raise EncodeError(f"--column names features not in the schema: {', '.join(unknown)}")
    derived = sorted(f.name for f in schema.hashed_features if f.extension.derived_from)
    mapped_derived = [name for name in derived if name in options.columns]
    if mapped_derived:
        raise EncodeError(
            f"--column names derived features, which read no column: {', '.join(mapped_derived)}"
        )
    _check_absent(schema, available, options, source)
    resolved: dict[str, str | None] = {}
    missing: list[str] = []
    expected: list[str] = []  # every column the run needs, to find the header by
    for feature in schema.hashed_features:
        if feature.extension.derived_from or feature.name in options.absent:
            resolved[feature.name] = None  # built from other features' values, or not held
            continue
        column = options.columns.get(feature.name, feature.name)
        optional = feature.extension.optional and feature.name not in options.columns
        if not optional:
            expected.append(column)
        if column in available:
            resolved[feature.name] = column
        elif optional:
            resolved[feature.name] = None
        else:
            # Column names here come from the schema or the command line, not the file.
            missing.append(f"{column!r} (feature {feature.name})")
    extra_columns = [
        (label, extra)
        for label, extra in (
            ("--id-column", options.id_column),
            ("--consent-column", options.consent_column),
        )
        if extra is not None
    ]
    expected += [extra for _, extra in extra_columns]
    if missing:
        raise EncodeError(
            f"{source}: column(s) not found: {', '.join(missing)}. "
            f"{describe_header(reader, available, expected)}. Map a feature to a column with "
            "--column FEATURE=COLUMN, or declare a feature your records do not hold with "
            "--absent FEATURE (it is then encoded as missing in every record)."
        )
    for label, extra in extra_columns:
        if extra not in available:
            raise EncodeError(
                f"{source}: {label} {extra!r} not found. "
                f"{describe_header(reader, available, expected)}."
            )
    if options.absent and not any(column is not None for column in resolved.values()):
        raise EncodeError(
            f"{source}: with --absent {' --absent '.join(sorted(options.absent))}, no feature "
            "of the schema is read from the input: there would be nothing to link on"
        )
    return resolved


def _check_absent(
    schema: LinkageSchema, available: Sequence[str], options: EncodeOptions, source: str
) -> None:
    """Refuse `--absent` names that are no feature, or a feature that cannot be absent."""
    if not options.absent:
        return
    by_name = {f.name: f for f in schema.features}
    unknown = sorted(set(options.absent) - set(by_name))
    if unknown:
        raise EncodeError(
            f"--absent names features not in the schema: {', '.join(unknown)} (its features: "
            f"{', '.join(f.name for f in schema.hashed_features)})"
        )
    for name in sorted(options.absent):
        feature = by_name[name]
        if feature.ignored:
            raise EncodeError(
                f"--absent {name}: the schema ignores {name} (it is never encoded), so it "
                "cannot be absent; leave the option out"
            )
        sources = feature.extension.derived_from
        if sources:
            raise EncodeError(
                f"--absent {name}: {name} is derived from {', '.join(sources)} and reads no "
                f"column; it is absent when its source{'s are' if len(sources) > 1 else ' is'} "
                f"(declare --absent {' --absent '.join(sources)})"
            )
        salt = schema.hardening.record_salt
        if salt is not None and salt.feature == name:
            # Every record would get the salt of a blank value, a permutation no record of a
            # partner holding the feature gets: the file could never link with theirs.
            raise EncodeError(
                f"--absent {name}: the schema salts each record by its {name} "
                "(hardening.recordSalt), so records without it cannot be compared with other "
                f"partners' records; a partnership with partners who do not hold {name} agrees "
                "on a schema without that salt, such as the bundled pace-no-salt (see "
                "docs/privacy.md)"
            )
        if name in available:
            raise EncodeError(
                f"{source}: --absent {name}, but the input has a column {name!r}: encode it "
                "(blank values are encoded as missing), or leave the column out of the file"
            )
        blank = FeatureFormatter(feature, options.date_format).format_many([""])[0]
        if blank[2] is not None and feature.extension.on_invalid == "reject":
            raise EncodeError(
                f"--absent {name}: the schema does not accept a blank {name} ({blank[2]}) and "
                "rejects such records, so it cannot be encoded as missing; the schema needs a "
                'missingValue (or "onInvalid": "missing") for it'
            )


def absent_features(
    schema: LinkageSchema, feature_columns: Mapping[str, str | None], options: EncodeOptions
) -> frozenset[str]:
    """The hashed features the input does not hold, as the report and the header record them.

    Those declared with `--absent`, optional features whose column the input lacks, and
    derived features all of whose sources are absent (schema order puts sources first).

    Args:
        schema: The linkage schema.
        feature_columns: `resolve_columns`' result.
        options: The run's options.
    """
    absent: set[str] = set()
    for feature in schema.hashed_features:
        sources = feature.extension.derived_from
        if sources:
            if all(s in absent for s in sources):
                absent.add(feature.name)
        elif feature.name in options.absent or feature_columns[feature.name] is None:
            absent.add(feature.name)
    return frozenset(absent)
