"""Unicode folding shared by names and addresses: case-folded, accents removed, ASCII letters."""

from __future__ import annotations

import unicodedata

__all__ = ["fold"]

# Applied before NFKC: NFKC turns the acute accent U+00B4 into a space plus a combining mark,
# which would otherwise split "M\u00b4Donald" into two words. Invisible characters are deleted so
# that a zero-width space pasted from a web form cannot split or hide part of a value.
_PRE_NFKC = str.maketrans(
    {
        "\u2019": "'",  # right single quotation mark (Word's "smart" apostrophe)
        "\u2018": "'",  # left single quotation mark
        "\u02bc": "'",  # modifier letter apostrophe
        "\u00b4": "'",  # acute accent used as an apostrophe
        "\u2032": "'",  # prime
        "\u2010": "-",  # hyphen
        "\u2011": "-",  # non-breaking hyphen
        "\u2012": "-",  # figure dash
        "\u2013": "-",  # en dash
        "\u2014": "-",  # em dash
        "\u2212": "-",  # minus sign
        "\u00ad": None,  # soft hyphen
        "\u200b": None,  # zero-width space
        "\u200c": None,  # zero-width non-joiner
        "\u200d": None,  # zero-width joiner
        "\u2060": None,  # word joiner
        "\ufeff": None,  # byte-order mark / zero-width no-break space
    }
)

# Latin letters that NFKD does not decompose into a base letter plus marks, so stripping
# combining marks alone would lose them entirely (Łukasz -> "ukasz"). Keys are the case-folded
# forms because the table is applied after casefold().
_LETTER_TABLE = str.maketrans(
    {
        "\u00df": "ss",  # ß (casefold already does this; kept for clarity)
        "\u00e6": "ae",  # æ
        "\u0153": "oe",  # œ
        "\u00f8": "o",  # ø
        "\u0142": "l",  # ł
        "\u0111": "d",  # đ
        "\u00f0": "d",  # ð
        "\u00fe": "th",  # þ
        "\u0131": "i",  # dotless i
        "\u0127": "h",  # ħ
        "\u0167": "t",  # ŧ
    }
)


def fold(value: str) -> str:
    """Case-fold a value and reduce accented Latin letters to their ASCII base letters.

    ASCII input (the vast majority) takes a fast path: NFKC and NFKD leave it unchanged, so
    lower() gives the same result as the full pipeline at a fraction of the cost.
    """
    if value.isascii():
        return value.lower()
    text = unicodedata.normalize("NFKC", value.translate(_PRE_NFKC))
    text = unicodedata.normalize("NFKD", text.casefold().translate(_LETTER_TABLE))
    return "".join(ch for ch in text if not unicodedata.combining(ch))
