"""Codes read without whitespace in upper case (postcodes, NI numbers): scalar step and kernel."""

from __future__ import annotations

import unicodedata
from typing import Any

import numpy as np
import pyarrow as pa
from numba import njit

from encoder.read import string_buffers
from encoder.standardise.invalid import InvalidValue

__all__ = ["compact_ascii_upper", "compact_upper"]


def compact_ascii_upper(value: str, reason: str) -> str:
    """NFKC, all whitespace removed, upper case; InvalidValue(reason) if not then ASCII.

    The ASCII check comes before upper(), which would otherwise turn "ß" into "SS".
    """
    text = value if value.isascii() else unicodedata.normalize("NFKC", value)
    compact = "".join(text.split())
    if not compact.isascii():
        raise InvalidValue(reason)
    return compact.upper()


def compact_upper(values: pa.Array) -> tuple[np.ndarray[Any, Any], np.ndarray[Any, Any]]:
    """Each value without ASCII whitespace and in ASCII upper case, as (offsets, bytes).

    For ASCII values this is ``"".join(v.split()).upper()``, what `compact_ascii_upper` does.
    """
    return _compact_upper_kernel(*string_buffers(values))


@njit(cache=True, nogil=True)
def _is_ws(c: int) -> bool:
    # The ASCII characters Python's str.split() treats as whitespace.
    return c == 32 or 9 <= c <= 13 or 28 <= c <= 31


@njit(cache=True, nogil=True)
def _compact_upper_kernel(
    offsets: np.ndarray[Any, Any], data: np.ndarray[Any, Any]
) -> tuple[np.ndarray[Any, Any], np.ndarray[Any, Any]]:
    """Each value without whitespace and in upper case (ASCII), as "".join(v.split()).upper()."""
    n = offsets.shape[0] - 1
    out_offsets = np.zeros(n + 1, dtype=np.int64)
    out = np.empty(max(offsets[n] - offsets[0], 1), dtype=np.uint8)
    o = 0
    for v in range(n):
        for i in range(offsets[v], offsets[v + 1]):
            c = data[i]
            if _is_ws(c):
                continue
            out[o] = c - 32 if 97 <= c <= 122 else c
            o += 1
        out_offsets[v + 1] = o
    return out_offsets, out
