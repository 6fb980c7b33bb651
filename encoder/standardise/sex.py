"""Sex codes: the scalar rule; few distinct values, so no fast path is needed."""

from __future__ import annotations

import unicodedata
from collections.abc import Mapping
from types import MappingProxyType

from encoder.standardise.invalid import InvalidValue
from encoder.standardise.missing import is_missing

__all__ = ["standardise_sex"]

# A fixed reason, never formatted with the value (see InvalidValue).
_R_SEX = "unrecognised sex code"

# 1/2/0/9 follow ISO/IEC 5218 (1 male, 2 female, 0 not known, 9 not applicable). The ".0" forms
# are what a numeric column with blanks becomes after pandas reads it as float and it is
# written back as text.
_SEX_CODES: Mapping[str, str] = MappingProxyType(
    {
        "m": "M",
        "male": "M",
        "man": "M",
        "1": "M",
        "1.0": "M",
        "f": "F",
        "female": "F",
        "woman": "F",
        "2": "F",
        "2.0": "F",
        "u": "",
        "unknown": "",
        "x": "",
        "not known": "",
        "not specified": "",
        "0": "",
        "0.0": "",
        "9": "",
        "9.0": "",
        "indeterminate": "",
        "prefer not to say": "",
    }
)


def standardise_sex(value: str) -> str:
    """Standardise a sex code to "M", "F" or "" (unknown).

    Args:
        value: The raw code, e.g. "m", "Female", "1", "9", "Prefer not to say".

    Returns:
        "M", "F", or "" when the value is missing, unknown, not applicable or not given (these
        carry no evidence either way, so they are left out of the encoding).

    Raises:
        InvalidValue: If the code is not one of the accepted codes.
    """
    if is_missing(value):
        return ""
    text = value if value.isascii() else unicodedata.normalize("NFKC", value)
    code = _SEX_CODES.get(" ".join(text.split()).casefold())
    if code is None:
        raise InvalidValue(_R_SEX)
    return code
