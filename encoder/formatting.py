"""Value formatting: standardise, validate and format distinct values exactly as clkhash would.

For the common clkhash formats (plain strings, enums, dates written by our own date
standardiser) validation and formatting are done here without clkhash's per-value overhead;
the results are exactly clkhash's (`tests/encoder/test_fast_paths.py` compares both paths).
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from clkhash.field_formats import DateSpec, EnumSpec, InvalidEntryError, StringSpec

from encoder.schema import Feature
from encoder.standardise import (
    STANDARDISERS,
    InvalidValue,
    standardise_array,
    standardise_date,
)

__all__ = ["FeatureFormatter", "Formatted"]

# Per feature and worker; bounds memory when values rarely repeat (ID-like fields).
_STANDARDISE_CACHE_LIMIT = 100_000
_READ_SUFFIX = re.compile(r"\s*Read\b.*$", re.DOTALL)


def _entry_reason(exc: InvalidEntryError, spec: Any) -> str:
    """The clkhash message without the value it quotes (privacy)."""
    if isinstance(spec, DateSpec):
        return f"not a valid date in format {spec.format}"
    text = _READ_SUFFIX.sub("", str(exc)).strip()
    return text or "invalid value"


class FeatureFormatter:
    """Standardise + clkhash-validate + clkhash-format the distinct values of one feature.

    For the common clkhash formats (plain strings, enums, dates written by our own date
    standardiser) validation and formatting are done here without clkhash's per-value
    overhead; the results are exactly clkhash's (tests compare both paths). Anything else
    goes through clkhash's own `validate` and `format_value`.
    """

    def __init__(self, feature: Feature, date_format: str | None) -> None:
        """Prepare the feature's steps once; `date_format` forces a format on dates."""
        self.feature = feature
        spec = self.spec = feature.spec
        name = feature.extension.standardise
        self._standardise: Callable[[str], str] | None = None
        # When set, the standardiser's output is already clkhash-formatted and valid.
        self._preformatted = False
        if name == "date":
            self._standardise, self._preformatted = _date_standardiser(spec, date_format)
        elif name is not None:
            self._standardise = STANDARDISERS[name]
        self._check = _fast_check(spec)
        self._plain = _is_plain_string(spec)
        self._date_format = date_format
        self._cache: dict[str, tuple[str, bool, str | None]] = {}
        self._post = self._build_post()
        self._format = self._build()

    def format_array(self, uniques: pa.Array) -> Formatted:
        """Formatted value, presence and invalidity of each distinct raw value of a chunk.

        Clean values take the standardiser's vectorised fast path (and, for plain string
        formats, a vectorised clkhash step too); the rest are standardised one by one, their
        results remembered across chunks (a cache hit costs less than the scalar path, but
        more than the vectorised one, which is therefore not cached).
        """
        kind = self.feature.extension.standardise
        fast = None
        if kind == "date":
            # Only when dates are detected (no forced format) and written as %Y%m%d.
            if self._preformatted and self._date_format is None:
                iso = standardise_array(kind, uniques)
                fast = None if iso is None else pc.replace_substring(iso, "-", "")
        elif kind is not None:
            fast = standardise_array(kind, uniques)
        if fast is None:
            return Formatted.of(self.format_many(uniques.to_pylist()))
        if not (self._plain or self._preformatted):
            post = self._post
            standardised: list[str | None] = fast.to_pylist()
            results = [post(v) if v is not None else None for v in standardised]
            slow_raw = np.flatnonzero(pc.is_null(fast).to_numpy(zero_copy_only=False))
            if slow_raw.size:
                raws = uniques.take(pa.array(slow_raw)).to_pylist()
                for u, result in zip(slow_raw.tolist(), self.format_many(raws), strict=True):
                    results[u] = result
            return Formatted.of(results)  # type: ignore[arg-type]
        # Fast-path output is ASCII, which every encoding clkhash allows can hold, and a plain
        # string format neither checks nor changes it (nor does a preformatted date): only
        # the missing-value rule applies.
        return self._plain_formatted(fast, uniques)

    def format_derived(self, values: pa.Array) -> Formatted:
        """Formatted value, presence and invalidity of each distinct value of a derived feature.

        A derived feature's values are its sources' hashed values, joined.
        """
        encoding = self.spec.hashing_properties.encoding if self._plain else None
        if encoding is not None and (
            encoding != "ascii" or pc.all(pc.string_is_ascii(values)).as_py() is not False
        ):
            return self._plain_formatted(values, values)
        return Formatted.of(self.format_many(values.to_pylist()))

    def _plain_formatted(self, fast: pa.Array, uniques: pa.Array) -> Formatted:
        """Apply the missing-value rule to values a plain format keeps as they are.

        Values that are null in `fast` take the scalar path from `uniques`.
        """
        missing = self.spec.hashing_properties.missing_value
        if missing is not None:
            is_sentinel = pc.fill_null(pc.equal(fast, missing.sentinel), False)
            fast = pc.if_else(is_sentinel, missing.replace_with, fast)
            present = pc.and_(pc.invert(is_sentinel), pc.not_equal(fast, ""))
        else:
            present = pc.not_equal(fast, "")
        formatted: list[str | None] = fast.to_pylist()
        present_np = pc.fill_null(present, False).to_numpy(zero_copy_only=False)
        invalid: dict[int, str] = {}
        slow = np.flatnonzero(pc.is_null(fast).to_numpy(zero_copy_only=False))
        if slow.size:
            raws = uniques.take(pa.array(slow)).to_pylist()
            for u, result in zip(slow.tolist(), self.format_many(raws), strict=True):
                formatted[u], present_np[u] = result[0], result[1]
                if result[2] is not None:
                    invalid[u] = result[2]
        return Formatted(formatted, present_np, invalid)  # type: ignore[arg-type]

    def format_many(self, raws: Sequence[str]) -> list[tuple[str, bool, str | None]]:
        """(formatted value, present, reason if invalid) for each raw value, cached."""
        cache = self._cache
        if len(cache) + len(raws) > _STANDARDISE_CACHE_LIMIT:
            cache.clear()
        get, miss = cache.get, self._miss
        return [hit if (hit := get(raw)) is not None else miss(raw) for raw in raws]

    def _miss(self, raw: str) -> tuple[str, bool, str | None]:
        result = self._cache[raw] = self._format(raw)
        return result

    def _build_post(self) -> Callable[[str], tuple[str, bool, str | None]]:
        """The clkhash missing-value, validation and formatting steps for a standardised value.

        Specialised once, so the hot path has no lookups.
        """
        spec = self.spec
        missing = spec.hashing_properties.missing_value
        sentinel = missing.sentinel if missing is not None else None
        missing_result = (missing.replace_with if missing is not None else "", False, None)
        preformatted = self._preformatted
        check = self._check

        def post(value: str) -> tuple[str, bool, str | None]:
            if value == sentinel:
                return missing_result
            if preformatted:
                return value, value != "", None
            if check is not None:
                reason = check(value)
                if reason is not None:
                    return "", False, reason
                return value, value != "", None
            try:
                spec.validate(value)
                formatted: str = spec.format_value(value)
            except InvalidEntryError as exc:
                return "", False, _entry_reason(exc, spec)
            return formatted, formatted != "", None

        return post

    def _build(self) -> Callable[[str], tuple[str, bool, str | None]]:
        """Standardise, then `post`."""
        standardise, post = self._standardise, self._post
        if standardise is None:
            return post

        def format_value(raw: str) -> tuple[str, bool, str | None]:
            try:
                value = standardise(raw)
            except InvalidValue as exc:
                return "", False, str(exc) or "invalid value"
            return post(value)

        return format_value


@dataclass(frozen=True)
class Formatted:
    """The distinct values of a feature after standardisation and clkhash formatting."""

    values: list[str]
    present: np.ndarray[Any, np.dtype[np.bool_]]
    invalid: dict[int, str]  # index of the distinct value → reason

    @classmethod
    def of(cls, results: list[tuple[str, bool, str | None]]) -> Formatted:
        """From (formatted value, present, reason if invalid) per distinct value."""
        return cls(
            [r[0] for r in results],
            np.fromiter((r[1] for r in results), dtype=bool, count=len(results)),
            {u: r[2] for u, r in enumerate(results) if r[2] is not None},
        )


def _is_plain_string(spec: Any) -> bool:
    """A string format that accepts and keeps every ASCII value as it is."""
    return (
        isinstance(spec, StringSpec)
        and not spec.regex_based
        and spec.case == "mixed"
        and not spec.min_length
        and spec.max_length is None
        and spec.hashing_properties.encoding in ("ascii", "utf-8", "utf-16", "utf-32")
    )


_ROUND_TRIP_DIRECTIVES = {"%Y", "%m", "%d", "%b", "%B", "%%"}


def _date_standardiser(spec: Any, date_format: str | None) -> tuple[Callable[[str], str], bool]:
    """The date standardiser for a date feature, and whether its output is preformatted.

    clkhash parses a date with the feature's format and hashes it as %Y%m%d. When the format
    round-trips (no two-digit years or other lossy directives), the standardised date can be
    written as %Y%m%d directly; otherwise it is written in the feature's format and clkhash's
    own parsing decides, exactly as it would for that text.
    """
    fmt = spec.format
    directives = set(re.findall(r"%.", fmt))
    if directives <= _ROUND_TRIP_DIRECTIVES and {"%Y", "%d"} <= directives:

        def to_compact(value: str) -> str:
            iso = standardise_date(value, date_format)
            # ISO YYYY-MM-DD with a four-digit year (the standardiser refuses years < 1900)
            return iso[0:4] + iso[5:7] + iso[8:10] if iso else ""

        return to_compact, True

    def to_format(value: str) -> str:
        iso = standardise_date(value, date_format)
        return dt.date.fromisoformat(iso).strftime(fmt) if iso else ""

    return to_format, False


def _fast_check(spec: Any) -> Callable[[str], str | None] | None:
    """An exact, faster equivalent of clkhash's validate for string and enum formats.

    Returns a function giving the reason a value is invalid (or None), for formats whose
    `format_value` is the identity; None when clkhash's own code must be used.
    """
    encoding = spec.hashing_properties.encoding
    if isinstance(spec, EnumSpec):
        allowed = frozenset(spec.values)

        def check_enum(value: str) -> str | None:
            if value in allowed:
                return None
            return f"not one of the allowed values {sorted(allowed)}"

        return check_enum
    if not isinstance(spec, StringSpec):
        return None
    if spec.regex_based:
        regex = spec.regex

        def check_pattern(value: str) -> str | None:
            try:
                value.encode(encoding)
            except UnicodeEncodeError:
                return f"cannot be encoded in {encoding}"
            if regex.fullmatch(value) is None:
                return f"does not match the pattern {regex.pattern!r}"
            return None

        return check_pattern
    min_length, max_length, case = spec.min_length, spec.max_length, spec.case
    if case not in ("mixed", "upper", "lower"):
        return None

    def check_string(value: str) -> str | None:
        try:
            value.encode(encoding)
        except UnicodeEncodeError:
            return f"cannot be encoded in {encoding}"
        if min_length is not None and len(value) < min_length:
            return f"shorter than {min_length} characters"
        if max_length is not None and len(value) > max_length:
            return f"longer than {max_length} characters"
        if case == "upper" and value.upper() != value:
            return "not upper case"
        if case == "lower" and value.lower() != value:
            return "not lower case"
        return None

    return check_string
