"""National Insurance numbers: the scalar rule and its vectorised fast path, side by side."""

from __future__ import annotations

import re
import string
from typing import Any

import numpy as np
import pyarrow as pa
from numba import njit

from encoder.standardise.buffers import string_array
from encoder.standardise.compact import compact_ascii_upper, compact_upper
from encoder.standardise.invalid import InvalidValue
from encoder.standardise.missing import is_missing

__all__ = ["ni_number_fast_path", "standardise_ni_number"]

# Fixed reasons, never formatted with the value (see InvalidValue).
_R_NINO = "not a valid NI number"
_R_NINO_PREFIX = "NI number prefix not allocated"

# The one definition of an NI number (HMRC National Insurance Manual NIM39110), from which both
# the scalar rule's regex and the fast path's tables are built: first letter not D, F, I, Q, U,
# V; second letter not D, F, I, O, Q, U, V; six digits; optional suffix A-D; and a few prefixes
# HMRC never allocates (TN marks temporary numbers).
_FIRST_LETTERS = "".join(c for c in string.ascii_uppercase if c not in "DFIQUV")
_SECOND_LETTERS = "".join(c for c in string.ascii_uppercase if c not in "DFIOQUV")
_DIGITS = 6
_SUFFIXES = "ABCD"
_NINO_UNALLOCATED = frozenset({"BG", "GB", "KN", "NK", "NT", "TN", "ZZ"})

_NINO_RE = re.compile(
    rf"([{_FIRST_LETTERS}][{_SECOND_LETTERS}])[0-9]{{{_DIGITS}}}[{_SUFFIXES}]?", re.ASCII
)


def standardise_ni_number(value: str) -> str:
    """Standardise a National Insurance number to upper case with no spaces.

    Args:
        value: The raw NI number, e.g. "ab 12 34 56 c".

    Returns:
        E.g. "AB123456C" (or "AB123456" when no suffix was given), or "" if missing.

    Raises:
        InvalidValue: If the format is wrong or the prefix is one HMRC never allocates
            (including the TN prefix of temporary numbers).
    """
    if is_missing(value):
        return ""
    compact = compact_ascii_upper(value, _R_NINO)
    match = _NINO_RE.fullmatch(compact)
    if match is None:
        raise InvalidValue(_R_NINO)
    if match.group(1) in _NINO_UNALLOCATED:
        raise InvalidValue(_R_NINO_PREFIX)
    return compact


# The fast path's tables, indexed by letter - "A": which two-letter prefixes are allocated
# (both letters allowed and the pair not unallocated), and which suffix letters are allowed.
_ALLOCATED_PREFIX = np.array(
    [
        [a in _FIRST_LETTERS and b in _SECOND_LETTERS and a + b not in _NINO_UNALLOCATED
         for b in string.ascii_uppercase]
        for a in string.ascii_uppercase
    ],
    dtype=np.bool_,
)  # fmt: skip
_SUFFIX = np.array([c in _SUFFIXES for c in string.ascii_uppercase], dtype=np.bool_)


@njit(cache=True, nogil=True)
def _ni_kernel(
    offsets: np.ndarray[Any, Any],
    data: np.ndarray[Any, Any],
    allocated: np.ndarray[Any, Any],
    suffix: np.ndarray[Any, Any],
) -> np.ndarray[Any, Any]:
    """Which compacted upper-case values are well-formed, allocated NI numbers."""
    n = offsets.shape[0] - 1
    ok = np.zeros(n, dtype=np.bool_)
    for v in range(n):
        s = offsets[v]
        length = offsets[v + 1] - s
        if length != 2 + _DIGITS and length != 3 + _DIGITS:
            continue
        a, b = data[s], data[s + 1]
        if not (65 <= a <= 90 and 65 <= b <= 90 and allocated[a - 65, b - 65]):
            continue
        good = True
        for i in range(s + 2, s + 2 + _DIGITS):
            if not 48 <= data[i] <= 57:
                good = False
        if good and length == 3 + _DIGITS:
            c = data[s + 2 + _DIGITS]
            good = 65 <= c <= 90 and suffix[c - 65]
        ok[v] = good
    return ok


def ni_number_fast_path(values: pa.Array) -> pa.Array:
    """Standardise the well-formed, allocated NI numbers, null for the rest.

    Args:
        values: Raw NI numbers, an Arrow string array without nulls.

    Returns:
        The NI numbers, null where `standardise_ni_number` must decide (it rejects them all).
    """
    offsets, compact = compact_upper(values)
    ok = _ni_kernel(offsets, compact, _ALLOCATED_PREFIX, _SUFFIX)
    return string_array(ok, offsets, compact)
