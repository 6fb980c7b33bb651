"""UK postcodes: the scalar rule and its vectorised fast path, side by side."""

from __future__ import annotations

import re
from typing import Any

import numpy as np
import pyarrow as pa
from numba import njit

from encoder.standardise.buffers import string_array
from encoder.standardise.compact import compact_ascii_upper, compact_upper
from encoder.standardise.invalid import InvalidValue
from encoder.standardise.missing import is_missing

__all__ = ["postcode_fast_path", "standardise_postcode"]

# A fixed reason, never formatted with the value (see InvalidValue).
_R_POSTCODE = "not a valid UK postcode"

# Outward code shapes A9, A99, A9A, AA9, AA99, AA9A; inward code 9AA. Letter-position rules
# (e.g. no Q, V, X first) are deliberately not enforced: a rule applied wrongly would reject a
# real postcode, while a shape check alone already catches almost all keying damage.
_OUTWARD = r"[A-Z]{1,2}[0-9][0-9A-Z]?"
_FULL_POSTCODE_RE = re.compile(rf"({_OUTWARD})([0-9][A-Z]{{2}})", re.ASCII)
_OUTWARD_ONLY_RE = re.compile(_OUTWARD, re.ASCII)
# NHS pseudo-postcodes (ZZ99 3VZ "no fixed abode", ZZ99 3CZ "England, not otherwise specified",
# ...) are shared by thousands of unrelated people, so agreement on one is not evidence.
_PSEUDO_OUTWARD = "ZZ99"


def standardise_postcode(value: str) -> str:
    """Standardise a UK postcode to upper case with one space before the inward code.

    All whitespace is ignored ("eh11aa", "EH1  1AA" -> "EH1 1AA"). Likely OCR or keying
    confusions (O/0, I/1) are not corrected: a "corrected" postcode may be someone else's, and
    merging two people is worse than missing one match. An outward code on its own ("EH1",
    "SW1A") is returned as is; its encoding shares n-grams with the full postcode, so it still
    contributes partial evidence.

    Args:
        value: The raw postcode.

    Returns:
        "EH1 1AA"-style postcode, an outward code alone, "GIR 0AA", or "" if the value is
        missing or an NHS ZZ99 pseudo-postcode.

    Raises:
        InvalidValue: If the value is not shaped like a UK postcode or outward code.
    """
    if is_missing(value):
        return ""
    compact = compact_ascii_upper(value, _R_POSTCODE)
    if compact == "GIR0AA":
        return "GIR 0AA"
    if match := _FULL_POSTCODE_RE.fullmatch(compact):
        outward, inward = match.groups()
        return "" if outward == _PSEUDO_OUTWARD else f"{outward} {inward}"
    if _OUTWARD_ONLY_RE.fullmatch(compact):
        return "" if compact == _PSEUDO_OUTWARD else compact
    raise InvalidValue(_R_POSTCODE)


# The kernel checks the shapes of _FULL_POSTCODE_RE byte by byte, which is faster than a regex
# per value; the tests hold the two equal, one changed character at a time.
_PSEUDO_OUTWARD_BYTES = np.frombuffer(_PSEUDO_OUTWARD.encode("ascii"), dtype=np.uint8).copy()


@njit(cache=True, nogil=True)
def _postcode_kernel(
    offsets: np.ndarray[Any, Any], data: np.ndarray[Any, Any], pseudo: np.ndarray[Any, Any]
) -> tuple[np.ndarray[Any, Any], np.ndarray[Any, Any], np.ndarray[Any, Any]]:
    """Well-formed full postcodes, "OUT IN", from compacted upper-case values.

    A postcode whose outward code is `pseudo` (ZZ99) is left out, as the scalar rule has it.
    """
    n = offsets.shape[0] - 1
    ok = np.zeros(n, dtype=np.bool_)
    out_offsets = np.zeros(n + 1, dtype=np.int64)
    out = np.empty(8 * n + 1, dtype=np.uint8)
    o = 0
    for v in range(n):
        s = offsets[v]
        length = offsets[v + 1] - s
        good = 5 <= length <= 7
        if good:
            # inward code: digit, letter, letter
            i = s + length - 3
            good = 48 <= data[i] <= 57 and 65 <= data[i + 1] <= 90 and 65 <= data[i + 2] <= 90
        if good:
            # outward code: [A-Z]{1,2}[0-9][0-9A-Z]?
            k = length - 3
            c0, c1 = data[s], data[s + 1]
            if not 65 <= c0 <= 90:
                good = False
            elif 48 <= c1 <= 57:
                rest = k - 2
                good = rest == 0 or (
                    rest == 1 and (48 <= data[s + 2] <= 57 or 65 <= data[s + 2] <= 90)
                )
            elif 65 <= c1 <= 90 and k >= 3 and 48 <= data[s + 2] <= 57:
                rest = k - 3
                good = rest == 0 or (
                    rest == 1 and (48 <= data[s + 3] <= 57 or 65 <= data[s + 3] <= 90)
                )
            else:
                good = False
            # NHS pseudo-postcodes are treated as missing by the scalar function
            if good and k == pseudo.shape[0]:
                same = True
                for j in range(k):
                    if data[s + j] != pseudo[j]:
                        same = False
                good = not same
        if good:
            ok[v] = True
            k = length - 3
            for j in range(k):
                out[o] = data[s + j]
                o += 1
            out[o] = 32
            o += 1
            for j in range(3):
                out[o] = data[s + k + j]
                o += 1
        out_offsets[v + 1] = o
    return ok, out_offsets, out


def postcode_fast_path(values: pa.Array) -> pa.Array:
    """Standardise the well-formed full postcodes, null for the rest.

    Args:
        values: Raw postcodes, an Arrow string array without nulls.

    Returns:
        "OUT IN" postcodes, null where `standardise_postcode` must decide (outward codes alone,
        GIR 0AA, pseudo-postcodes and everything it would reject).
    """
    offsets, compact = compact_upper(values)
    return string_array(*_postcode_kernel(offsets, compact, _PSEUDO_OUTWARD_BYTES))
