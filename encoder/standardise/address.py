"""Address lines: the scalar rule and its vectorised fast path, side by side."""

from __future__ import annotations

import re
from collections.abc import Mapping
from types import MappingProxyType
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from numba import njit

from encoder.read import string_buffers
from encoder.standardise.buffers import find_word, pack_words, string_array
from encoder.standardise.folding import fold
from encoder.standardise.missing import MISSING_ARRAY, MISSING_LETTERS, is_missing

__all__ = ["address_fast_path", "standardise_address"]

_ADDRESS_ABBREVIATIONS: Mapping[str, str] = MappingProxyType(
    {
        "rd": "road",
        "st": "street",
        "str": "street",
        "ave": "avenue",
        "av": "avenue",
        "dr": "drive",
        "drv": "drive",
        "ln": "lane",
        "cres": "crescent",
        "cresc": "crescent",
        "ct": "court",
        "crt": "court",
        "pl": "place",
        "sq": "square",
        "gdns": "gardens",
        "gdn": "garden",
        "terr": "terrace",
        "ter": "terrace",
        "tce": "terrace",
        "fl": "flat",
        "flt": "flat",
        "apt": "apartment",
        "cl": "close",
        "gro": "grove",
        "pk": "park",
        "pde": "parade",
        "hse": "house",
        "bldg": "building",
        "bldgs": "buildings",
        "est": "estate",
        "hts": "heights",
        "mt": "mount",
        "wk": "walk",
        "grn": "green",
        "cott": "cottage",
        "cotts": "cottages",
        "ctr": "centre",
        "blvd": "boulevard",
        "mkt": "market",
        "nth": "north",
        "sth": "south",
        "upr": "upper",
        "lwr": "lower",
    }
)

# Apostrophes are deleted rather than spaced ("St John's" -> "st johns"), and "&" becomes the
# word "and" so "Smith & Sons" and "Smith and Sons" agree.
# Every other ASCII character that is not a-z or 0-9 becomes a space. translate() covers ASCII
# text (almost every address) much faster than a regex; the regex handles what is left of
# non-Latin scripts after folding.
_ADDRESS_TABLE = str.maketrans(
    {
        **{chr(code): " " for code in range(128) if not chr(code).isalnum()},
        "'": None,
        "`": None,
        "&": " and ",
    }
)
_ADDRESS_NON_ASCII_RE = re.compile(r"[^a-z0-9 ]+")


def standardise_address(value: str) -> str:
    """Standardise one address line to lower-case words separated by single spaces.

    Accents are removed as for names, punctuation becomes a space, and common abbreviations are
    expanded when they are whole words ("12 High St." -> "12 high street"). "st" is always read
    as "street", never "saint": the expansion is the same on every partner's side, so it cannot
    stop two records agreeing, whereas guessing from context could.

    Args:
        value: A raw address line.

    Returns:
        The canonical line (characters a-z, 0-9 and single spaces), or "" if missing.
    """
    if is_missing(value):
        return ""
    text = fold(value).translate(_ADDRESS_TABLE)
    if not text.isascii():
        text = _ADDRESS_NON_ASCII_RE.sub(" ", text)
    get = _ADDRESS_ABBREVIATIONS.get
    result = " ".join(get(word, word) for word in text.split())
    return "" if is_missing(result) else result


# The kernel's word tables are packed from the scalar rule's own tables. Its character classes
# (apostrophes join, "&" is "and", other punctuation separates) restate _ADDRESS_TABLE in
# branches, as a table-driven loop measured 15-20% slower; the tests check every ASCII character.
_ABBREVIATION_TABLE = (*pack_words(list(_ADDRESS_ABBREVIATIONS)),
                       *pack_words(list(_ADDRESS_ABBREVIATIONS.values())))  # fmt: skip
_MISSING_LETTER_TABLE = pack_words(sorted(MISSING_LETTERS))


@njit(cache=True, nogil=True)
def _address_kernel(
    offsets: np.ndarray[Any, Any], data: np.ndarray[Any, Any],
    key_offsets: np.ndarray[Any, Any], keys: np.ndarray[Any, Any],
    value_offsets: np.ndarray[Any, Any], values: np.ndarray[Any, Any],
    missing_offsets: np.ndarray[Any, Any], missing: np.ndarray[Any, Any],
) -> tuple[np.ndarray[Any, Any], np.ndarray[Any, Any], np.ndarray[Any, Any]]:  # fmt: skip
    """Apply standardise_address to ASCII values, reading their bytes.

    Lower case, apostrophes deleted, & as "and", other punctuation as spaces, abbreviations
    expanded, single spaces.
    """
    n = offsets.shape[0] - 1
    ok = np.zeros(n, dtype=np.bool_)
    out_offsets = np.zeros(n + 1, dtype=np.int64)
    total = offsets[n] - offsets[0]
    # Worst cases: "&" becomes " and " and "st" becomes "street"; one value's words hold at
    # most three bytes per input byte ("&" as "and").
    out = np.empty(6 * total + 1, dtype=np.uint8)
    words = np.empty(3 * total + 3, dtype=np.uint8)
    o = 0
    for v in range(n):
        start_out = o
        w_start = 0  # current word within `words`
        w_len = 0
        letters = 0  # all word bytes so far, for the missing-value check
        i = offsets[v]
        end = offsets[v + 1]
        while i <= end:
            c = data[i] if i < end else 32
            if 65 <= c <= 90:
                c += 32
            if 97 <= c <= 122 or 48 <= c <= 57:
                words[w_start + w_len] = c
                w_len += 1
            elif c in (39, 96):  # ' and ` join the parts of a word
                pass
            else:
                if w_len:
                    if o > start_out:
                        out[o] = 32
                        o += 1
                    k = find_word(words, w_start, w_start + w_len, key_offsets, keys)
                    if k >= 0:
                        for j in range(value_offsets[k], value_offsets[k + 1]):
                            out[o] = values[j]
                            o += 1
                    else:
                        for j in range(w_start, w_start + w_len):
                            out[o] = words[j]
                            o += 1
                    letters += w_len
                    w_start += w_len
                    w_len = 0
                if c == 38:  # "&" is the word "and"
                    if o > start_out:
                        out[o] = 32
                        o += 1
                    for ch in (97, 110, 100):
                        out[o] = ch
                        o += 1
                        words[w_start] = ch
                        w_start += 1
                    letters += 3
            i += 1
        # A value whose letters spell a null token (or nothing) is for the scalar function
        # to decide, as is a result that spells one.
        maybe_missing = letters == 0 or find_word(words, 0, w_start, missing_offsets, missing) >= 0
        if not maybe_missing:
            ok[v] = True
            out_offsets[v + 1] = o
        else:
            o = start_out
            out_offsets[v + 1] = o
    return ok, out_offsets, out


def address_fast_path(values: pa.Array) -> pa.Array:
    """Standardise address lines in one pass over their bytes, null where the rule must decide.

    Only ASCII values are read correctly (`standardise_array` passes only those on); a value
    whose letters spell a null token is left to `standardise_address`.

    Args:
        values: Raw address lines, an Arrow string array without nulls.

    Returns:
        The standardised lines, null where `standardise_address` must decide.
    """
    offsets, data = string_buffers(values)
    ok, out_offsets, out = _address_kernel(
        offsets, data, *_ABBREVIATION_TABLE, *_MISSING_LETTER_TABLE
    )
    result = string_array(ok, out_offsets, out)
    spelled = pc.fill_null(pc.is_in(result, MISSING_ARRAY), False)
    return pc.if_else(spelled, pa.scalar(None, pa.string()), result)
