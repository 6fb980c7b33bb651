"""Given names and surnames: the scalar rule and its vectorised fast path, side by side."""

from __future__ import annotations

import re

import pyarrow as pa
import pyarrow.compute as pc

from encoder.standardise.folding import fold
from encoder.standardise.invalid import InvalidValue
from encoder.standardise.missing import MISSING_ARRAY, MISSING_LETTERS, is_missing

__all__ = ["name_fast_path", "standardise_name"]

# Reasons are fixed strings, never formatted with the value, so that nothing a partner supplied
# can leak into a log line or a quality report through an exception message.
_R_NAME_DIGITS = "name contains digits"

# Dropped only when they are whole words and at least one other word remains (see
# standardise_name). Several (lord, lady, dame, sir) are also real surnames, which is why a value
# made only of these words is kept rather than emptied.
_TITLES = frozenset(
    {
        "mr",
        "mrs",
        "ms",
        "miss",
        "mx",
        "master",
        "mstr",
        "dr",
        "prof",
        "professor",
        "sir",
        "dame",
        "lady",
        "lord",
        "rev",
        "revd",
        "reverend",
        "fr",
        "sr",
        "jr",
        "snr",
        "jnr",
        "ii",
        "iii",
        "iv",
        "esq",
        "hon",
    }
)

_UNICODE_DIGIT_RE = re.compile(r"\d")

# Digits that OCR commonly produces from letters, read back as those letters. Only confusions
# that published OCR confusion tables agree on are listed (the GeCo/crptr OCR look-up table:
# 5/S, 2/Z, 1/l, 6/G; OCR post-correction lists: 0/O, 8/B, 6/b): a digit whose reading is
# ambiguous (9 as g or q) or that OCR rarely produces from a letter (3, 4, 7 are look-alikes
# only in hand-typed "leetspeak") is not guessed, and the name is still rejected.
#
# 1 and 6 resemble different letters in capitals (I, G) and in lower case (l, b), so the reading
# depends on where the digit stands: in a value without lower-case letters (block capitals, as
# forms ask for and many systems store), and at the start of a word, where names have their
# capital, the capital reading; elsewhere the lower-case one. "W1LLIAM" -> william,
# "Wi11iam" -> william, "1sla" -> isla.
_OCR_DIGITS = "012568"
_OCR_CAPITAL_READING = str.maketrans(_OCR_DIGITS, "oizsgb")
_OCR_SMALL_READING = str.maketrans(_OCR_DIGITS, "olzsbb")
# Any digit that has no reading above, including non-ASCII digits NFKC leaves alone (Arabic-Indic).
_UNREADABLE_DIGIT_RE = re.compile(rf"[^\D{_OCR_DIGITS}]")
# A digit at the start of a word: not preceded by a letter or digit.
_WORD_INITIAL_DIGIT_RE = re.compile(r"(?<![a-z0-9])[0-9]")
# Words as _NAME_WORD_RE sees them once digits are letters, for the "mostly digits" rule.
_NAME_DIGIT_WORD_RE = re.compile(r"[a-z0-9'`\-]+")
# A word is a run of ASCII letters, apostrophes and hyphens: apostrophes and hyphens join the
# parts of one name (O'Neill, Smith-Jones), anything else (spaces, dots, commas) separates words.
_NAME_WORD_RE = re.compile(r"[a-z'`\-]+")
_MAC_PREFIXES = ("mc", "m'", "m`")


def _drop_joiners(word: str) -> str:
    """Delete apostrophes and hyphens, leaving only a-z (words contain nothing else).

    Chained replace() is several times faster than translate() or a regex on short strings.
    """
    return word.replace("'", "").replace("-", "").replace("`", "")


def _read_ocr_digits(folded: str, capitals: bool) -> str:
    """Replace each digit of a folded name by the letter OCR most likely misread as it.

    Args:
        folded: The name after fold(), containing at least one digit.
        capitals: Whether the raw value has no lower-case letters (is in block capitals).

    Raises:
        InvalidValue: If a digit has no reading, or a word is not mostly letters: a word with at
            least as many digits as letters ("1985", "AB12", "Smith 2") is a number, an ID or a
            shifted column, not a misread name, and encoding it as one would be false evidence.
    """
    if _UNREADABLE_DIGIT_RE.search(folded):
        raise InvalidValue(_R_NAME_DIGITS)
    for word in _NAME_DIGIT_WORD_RE.findall(folded):
        digits = sum(word.count(d) for d in _OCR_DIGITS)
        if digits and digits >= len(_drop_joiners(word)) - digits:
            raise InvalidValue(_R_NAME_DIGITS)
    if capitals:
        return folded.translate(_OCR_CAPITAL_READING)
    initial = _WORD_INITIAL_DIGIT_RE.sub(lambda m: m[0].translate(_OCR_CAPITAL_READING), folded)
    return initial.translate(_OCR_SMALL_READING)


def _mac(part: str) -> str:
    """Apply the Mc/Mac rule to one name part: a leading "mc", or "m'" before a letter, -> "mac"."""
    if part.startswith("mc") or (len(part) > 2 and part[2] not in "'`"):
        return "mac" + part[2:]
    return part


def standardise_name(value: str) -> str:
    """Standardise a given name or surname to lower-case ASCII letters only.

    Steps: Unicode NFKC, case-fold, transliterate letters NFKD cannot decompose (ł -> l, æ -> ae),
    NFKD with combining marks removed (Seán -> sean); read digits that OCR produces from letters
    back as those letters ("J0HN" -> john, "5MITH" -> smith; see _read_ocr_digits); drop title
    words (Mr, Dr, Jnr ...) if another word remains; rewrite a leading "Mc" or "M'" of each word
    to "Mac"; finally remove everything that is not a-z, so spacing, hyphens and apostrophes
    cannot stop two spellings of the same name agreeing ("O'Neill", "O Neill" and "ONeill" all
    give "oneill").

    Args:
        value: A raw given name or surname.

    Returns:
        The canonical name (only characters a-z), or "" if the value is missing or nothing
        remains (for example a name written only in a non-Latin script).

    Raises:
        InvalidValue: If the name contains a digit OCR does not produce from a letter (3, 4, 7,
            9, non-ASCII digits), or a word that is at least half digits ("1985", "Smith 2"):
            then the field holds something other than a name (a date, an ID, a mis-keyed
            column) and should be looked at, not matched.
    """
    if is_missing(value):
        return ""
    folded = fold(value)
    if _UNICODE_DIGIT_RE.search(folded):
        folded = _read_ocr_digits(folded, not any(ch.islower() for ch in value))

    words = _NAME_WORD_RE.findall(folded)
    letters = [word if word.isalpha() else _drop_joiners(word) for word in words]
    kept = [word for word, only in zip(words, letters, strict=True) if only and only not in _TITLES]
    if not kept:
        # Only title words (or nothing): keep them, since "Lord" or "Dame" may be the surname.
        kept = [word for word, only in zip(words, letters, strict=True) if only]

    parts = [
        _mac(part) if part.startswith(_MAC_PREFIXES) else part
        for word in kept
        for part in word.split("-")
    ]
    result = _drop_joiners("".join(parts))
    # Joining can create a new leading "mc" ("M C Donald" -> "mcdonald"); rewriting it here
    # keeps the function idempotent, because a second pass sees one word starting with "mc".
    if result.startswith("mc"):
        result = "mac" + result[2:]
    if result in MISSING_LETTERS:
        return ""
    return result


# The fast path: a single ASCII word of letters (and digits OCR makes of letters). Its tables
# are derived from the scalar rule's, so the two read every digit the same way.
_CAPITAL_READING = {d: chr(_OCR_CAPITAL_READING[ord(d)]) for d in _OCR_DIGITS}
_SMALL_READING = {d: chr(_OCR_SMALL_READING[ord(d)]) for d in _OCR_DIGITS}
# Digits whose reading depends on case (1: I or l, 6: G or b): a word-initial one takes the
# capital reading even in a value with lower-case letters.
_INITIAL_READING = {d: c for d, c in _CAPITAL_READING.items() if c != _SMALL_READING[d]}
_ONE_WORD = "^[A-Za-z]+$"
_ONE_WORD_WITH_OCR_DIGITS = f"^[A-Za-z{_OCR_DIGITS}]+$"


def _replace_chars(values: pa.Array, table: dict[str, str]) -> pa.Array:
    for digit, letter in table.items():
        values = pc.replace_substring(values, digit, letter)
    return values


def _read_digits(values: pa.Array, lower: pa.Array) -> tuple[pa.Array, pa.Array]:
    """_read_ocr_digits for single ASCII words of letters and readable digits.

    Returns the read values and which values qualify: more letters than digits (the whole value
    is one word). In a value with a lower-case letter, only a first-character 1 or 6 takes the
    capital reading.
    """
    digits = pc.count_substring_regex(values, "[0-9]")
    mostly_letters = pc.greater(pc.utf8_length(values), pc.multiply(digits, 2))
    capitals = _replace_chars(lower, _CAPITAL_READING)
    first = lower
    for digit, letter in _INITIAL_READING.items():
        first = pc.replace_substring_regex(first, f"^{digit}", letter)
    small = _replace_chars(first, _SMALL_READING)
    has_small = pc.match_substring_regex(values, "[a-z]")
    return pc.if_else(has_small, small, capitals), mostly_letters


def name_fast_path(values: pa.Array) -> pa.Array:
    """Standardise the names that are one ASCII word, null for the rest.

    For such a name folding is lower(), no titles can be dropped (nothing else remains), and
    only the leading-Mc rule applies. Every non-null result equals `standardise_name`'s.

    Args:
        values: Raw names, an Arrow string array without nulls.

    Returns:
        The standardised names, null where `standardise_name` must decide.
    """
    lower = pc.utf8_lower(values)
    read = lower
    ok = pc.match_substring_regex(values, _ONE_WORD)
    # Clean names (nearly all) skip the digit passes; the scalar function is the reference.
    if pc.any(pc.match_substring_regex(values, "[0-9]")).as_py():
        read, mostly_letters = _read_digits(values, lower)
        ok = pc.or_(ok, pc.and_(pc.match_substring_regex(values, _ONE_WORD_WITH_OCR_DIGITS),
                                mostly_letters))  # fmt: skip
    out = pc.replace_substring_regex(read, "^mc", "mac")
    ok = pc.and_(ok, pc.invert(
        pc.or_(pc.is_in(lower, MISSING_ARRAY), pc.is_in(out, MISSING_ARRAY))
    ))  # fmt: skip
    return pc.if_else(ok, out, pa.scalar(None, pa.string()))
