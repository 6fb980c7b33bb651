"""What counts as "no value" in every field: blank values and the null tokens."""

from __future__ import annotations

import re

import pyarrow as pa

__all__ = ["MISSING_ARRAY", "MISSING_LETTERS", "MISSING_TOKENS", "is_missing"]

MISSING_TOKENS = frozenset(
    {
        "null",
        "none",
        "n/a",
        "na",
        "nan",
        "-",
        "--",
        "?",
        "unknown",
        "not known",
        "not stated",
    }
)

# A standardiser's *output* can spell a null token even when its input did not ("N.A." -> "na"
# for names, "Not-Known" -> "not known" for addresses). Such outputs are turned into "" as well,
# otherwise standardising the output a second time would give "" and break idempotency.
MISSING_LETTERS = frozenset(re.sub(r"[^a-z]", "", token) for token in MISSING_TOKENS) - {""}

# The same tokens for the fast paths, which test lower-cased values and outputs against them.
MISSING_ARRAY = pa.array(sorted(MISSING_TOKENS | MISSING_LETTERS), pa.string())


def is_missing(value: str) -> bool:
    """Return True if the raw value means "no value".

    Empty and whitespace-only strings and the null tokens in ``MISSING_TOKENS`` (compared
    case-insensitively, after stripping and collapsing internal whitespace) are missing. Every
    standardiser returns "" for such a value rather than raising, because a blank field is a
    normal part of partner data, not an error to report.

    Args:
        value: The raw value as read from a partner's file.

    Returns:
        Whether the value should be treated as missing.
    """
    if not value or value.isspace():
        return True
    return " ".join(value.split()).casefold() in MISSING_TOKENS
