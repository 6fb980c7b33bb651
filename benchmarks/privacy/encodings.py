"""The encodings the privacy benchmark attacks: weak, default and hardened variants.

The encodings the privacy benchmark attacks: a published weak setting, today's default, and
the hardening options alone and combined (the frontier the hardened default is chosen from).
"""

from __future__ import annotations

import copy
from typing import Any, Final

from benchmarks.harness import schema_document

__all__ = ["VARIANTS", "variant", "weak_schema"]


def _feature(name: str, comparison: dict[str, Any], k: int, **extra: Any) -> dict[str, Any]:
    return {
        "identifier": name,
        "format": {"type": "date", "format": "%Y-%m-%d"}
        if name == "date_of_birth"
        else {"type": "string", "encoding": "utf-8"},
        "hashing": {
            "comparison": comparison,
            "strategy": {"bitsPerToken": k},
            "hash": {"type": "blakeHash"},
            "missingValue": {"sentinel": ""},
        },
        **extra,
    }


def weak_schema(bits_per_token: int = 15, *, date_of_birth: bool = True) -> dict[str, Any]:
    """The published attack setting: a plain CLK of names (and date of birth).

    The published attack setting: one plain CLK over first name, surname and (unless
    ``date_of_birth`` is false) date of birth, bigrams with k hash functions each, 1,024
    bits, no hardening.

    Vidanage et al. (CIKM 2020) and Schäfer et al. attack CLKs of this kind (first and last
    name, date of birth as bigrams, around 1,000 bits); the pattern-mining papers use names
    alone. A harness that cannot re-identify many of these records is too weak to judge
    anything.
    """
    bigram = {"type": "ngram", "n": 2}
    features = [
        _feature("given_name", bigram, bits_per_token, standardise="name"),
        _feature("surname", bigram, bits_per_token, standardise="name"),
    ]
    if date_of_birth:
        features.append(_feature("date_of_birth", bigram, bits_per_token, standardise="date"))
    return {
        "version": 3,
        "clkConfig": {
            "l": 1024,
            "kdf": {"type": "HKDF", "hash": "SHA256", "keySize": 64},
        },
        "features": features,
    }


def _default() -> dict[str, Any]:
    doc = schema_document()
    doc.pop("hardening", None)
    return doc


_YEAR_SALT: Final = {"feature": "date_of_birth", "start": 0, "end": 4}

#: Hardening settings compared (``"hardening"`` key of the schema, plus XOR folding, which
#: is clkhash's own ``clkConfig.xor_folds``). ``"none"`` is the default as it shipped before
#: hardening was measured.
VARIANTS: Final[dict[str, dict[str, Any]]] = {
    "none": {},
    "xor-fold": {"xor_folds": 1},
    "balanced": {"balanced": True},
    "blip-0.02": {"blip": 0.02},
    "blip-0.05": {"blip": 0.05},
    "salt-year": {"recordSalt": _YEAR_SALT},
    "decoys-0.1": {"decoys": 0.1},
    "balanced+blip-0.02": {"balanced": True, "blip": 0.02},
    "salt-year+blip-0.02": {"recordSalt": _YEAR_SALT, "blip": 0.02},
    "salt-year+balanced+blip-0.02": {"recordSalt": _YEAR_SALT, "balanced": True, "blip": 0.02},
}


def variant(name: str, base: dict[str, Any] | None = None) -> dict[str, Any]:
    """The schema document of one variant of ``base`` (default: the unhardened default).

    XOR folding keeps the encoding's length: the filter is built twice as long (same bits
    per feature, so half the density) and folded once.
    """
    options = copy.deepcopy(VARIANTS[name])
    doc = copy.deepcopy(base) if base is not None else _default()
    doc.pop("hardening", None)
    folds = options.pop("xor_folds", 0)
    if folds:
        doc["clkConfig"]["xor_folds"] = folds
    if options:
        doc["hardening"] = options
    return doc
