"""Bit-identity with clkhash, the test oracle, for every schema option clkhash supports."""

from __future__ import annotations

import random
import string
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
from clkhash import clk
from hypothesis import given, settings
from hypothesis import strategies as st

from encoder.encode import EncodeOptions, encode_dataframe
from encoder.keys import Secret
from encoder.schema import parse_schema
from encoder.tokenise import tokenise
from tests.conftest import TEST_SECRET, schema_doc

N_RECORDS = 2000
RNG_SEED = 20261122


def _word(rng: random.Random, alphabet: str, lo: int, hi: int) -> str:
    return "".join(rng.choice(alphabet) for _ in range(rng.randint(lo, hi)))


def _clkhash_bits(doc: dict[str, Any], rows: list[list[str]]) -> np.ndarray:
    schema = parse_schema(doc).clk
    filters = clk.generate_clks(rows, schema, TEST_SECRET, validate=True, max_workers=1)
    return np.frombuffer(b"".join(f.tobytes() for f in filters), dtype=np.uint8).reshape(
        len(rows), -1
    )


def _pacelink_bits(doc: dict[str, Any], columns: dict[str, list[str]]) -> np.ndarray:
    schema = parse_schema(doc)
    df = pd.DataFrame(columns)
    enc = encode_dataframe(df, schema, Secret(TEST_SECRET), EncodeOptions(chunk_rows=700))
    assert enc.report.rejected == 0, enc.report.rejected_reasons
    return np.asarray(enc.bits)


def _string_feature(name: str, hashing: dict[str, Any], fmt: dict[str, Any] | None = None
                    ) -> dict[str, Any]:  # fmt: skip
    return {"identifier": name, "format": fmt or {"type": "string", "encoding": "utf-8"},
            "hashing": hashing}  # fmt: skip


HASHINGS: dict[str, dict[str, Any]] = {
    "bigram-bpt-blake": {"comparison": {"type": "ngram", "n": 2}, "strategy": {"bitsPerToken": 15}},
    "unigram-bpf-blake": {"comparison": {"type": "ngram", "n": 1},
                          "strategy": {"bitsPerFeature": 300}},
    "trigram-bpf-blake": {"comparison": {"type": "ngram", "n": 3},
                          "strategy": {"bitsPerFeature": 97}},
    "fourgram-bpt-blake": {"comparison": {"type": "ngram", "n": 4},
                           "strategy": {"bitsPerToken": 7}},
    "positional-bigram": {"comparison": {"type": "ngram", "n": 2, "positional": True},
                          "strategy": {"bitsPerFeature": 120}},
    "positional-trigram": {"comparison": {"type": "ngram", "n": 3, "positional": True},
                           "strategy": {"bitsPerToken": 9}},
    "exact-blake": {"comparison": {"type": "exact"}, "strategy": {"bitsPerToken": 40}},
    "bigram-double": {"comparison": {"type": "ngram", "n": 2}, "strategy": {"bitsPerToken": 20},
                      "hash": {"type": "doubleHash"}},
    "bigram-double-nonsingular": {
        "comparison": {"type": "ngram", "n": 2}, "strategy": {"bitsPerFeature": 150},
        "hash": {"type": "doubleHash", "prevent_singularity": True}},
    "exact-double": {"comparison": {"type": "exact"}, "strategy": {"bitsPerToken": 33},
                     "hash": {"type": "doubleHash", "prevent_singularity": False}},
    "bigram-sentinel": {"comparison": {"type": "ngram", "n": 2}, "strategy": {"bitsPerToken": 10},
                        "missingValue": {"sentinel": "N/A", "replaceWith": "missing"}},
    "bigram-sentinel-empty": {"comparison": {"type": "ngram", "n": 2},
                              "strategy": {"bitsPerToken": 10}, "missingValue": {"sentinel": ""}},
}  # fmt: skip


@pytest.mark.parametrize("name", sorted(HASHINGS))
@pytest.mark.parametrize(("l", "folds"), [(1024, 0), (512, 1)])
def test_string_features_bit_identical(name: str, l: int, folds: int) -> None:
    rng = random.Random(RNG_SEED)
    hashing = HASHINGS[name]
    alphabet = string.ascii_lowercase + " -'éø"
    first = [_word(rng, alphabet, 0, 12) for _ in range(N_RECORDS)]
    # Repeats on purpose: shared work must not change any record's bits.
    second = [rng.choice(first[:50]) if rng.random() < 0.5 else _word(rng, alphabet, 1, 9)
              for _ in range(N_RECORDS)]  # fmt: skip
    if "sentinel" in name:
        sentinel = hashing["missingValue"]["sentinel"]
        first = [sentinel if rng.random() < 0.2 else v or "x" for v in first]
    doc = schema_doc([_string_feature("a", hashing), _string_feature("b", hashing)],
                     l=l, folds=folds)  # fmt: skip
    rows = [[str(i), a, b] for i, (a, b) in enumerate(zip(first, second, strict=True))]
    expected = _clkhash_bits(doc, rows)
    got = _pacelink_bits(doc, {"a": first, "b": second})
    assert got.shape == expected.shape
    assert np.array_equal(got, expected)
    assert np.bitwise_count(got).sum() > 0  # a real encoding, not all zeros


@pytest.mark.parametrize("name", ["unigram-bpf-blake", "trigram-bpf-blake", "exact-blake"])
def test_token_store_reset_and_regrowth_keep_bits(
    name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The bits stay clkhash's when the token store is emptied and regrown.

    A tiny token store is emptied every chunk, and short values need more bits per token than
    long ones (a token seen first with few indices is hashed again for more).
    """
    monkeypatch.setattr("encoder.hashing._CACHE_LIMIT", 40)
    rng = random.Random(RNG_SEED + 1)
    values = [_word(rng, "abcde", 1, 14) for _ in range(N_RECORDS)]
    doc = schema_doc([_string_feature("a", HASHINGS[name])])
    expected = _clkhash_bits(doc, [[str(i), v] for i, v in enumerate(values)])
    assert np.array_equal(_pacelink_bits(doc, {"a": values}), expected)


@pytest.mark.parametrize(
    ("l", "hash_type"),
    [(512, "blakeHash"), (2048, "blakeHash"), (4096, "blakeHash"), (1000, "doubleHash")],
)
def test_other_lengths_formats_and_kdf(l: int, hash_type: str) -> None:
    rng = random.Random(l)
    h = {"type": hash_type}
    features = [
        _string_feature("name", {"comparison": {"type": "ngram", "n": 2},
                                 "strategy": {"bitsPerFeature": 200}, "hash": h},
                        {"type": "string", "encoding": "ascii", "case": "lower",
                         "minLength": 1, "maxLength": 20}),
        _string_feature("dob", {"comparison": {"type": "ngram", "n": 1, "positional": True},
                                "strategy": {"bitsPerFeature": 160}, "hash": h},
                        {"type": "date", "format": "%d/%m/%Y"}),
        _string_feature("sex", {"comparison": {"type": "exact"}, "strategy": {"bitsPerToken": 30},
                                "hash": h}, {"type": "enum", "values": ["M", "F", "U"]}),
        _string_feature("age", {"comparison": {"type": "numeric", "thresholdDistance": 3,
                                               "resolution": 2},
                                "strategy": {"bitsPerToken": 10}, "hash": h},
                        {"type": "integer", "minimum": 0, "maximum": 120}),
        _string_feature("income", {"comparison": {"type": "numeric", "thresholdDistance": 2.5,
                                                  "resolution": 3, "fractional_precision": 2},
                                   "strategy": {"bitsPerToken": 8}, "hash": h},
                        {"type": "string", "pattern": r"[0-9]+\.[0-9]{2}"}),
        _string_feature("code", {"comparison": {"type": "ngram", "n": 2},
                                 "strategy": {"bitsPerToken": 12}, "hash": h},
                        {"type": "string", "encoding": "utf-16"}),
    ]  # fmt: skip
    kdf = {"type": "HKDF", "hash": "SHA512", "salt": "cGFjZWxpbms=", "info": "dGVzdA==",
           "keySize": 64}  # fmt: skip
    doc = schema_doc(features, l=l, kdf=kdf)
    cols: dict[str, list[str]] = {k: [] for k in ("name", "dob", "sex", "age", "income", "code")}
    for _ in range(N_RECORDS):
        cols["name"].append(_word(rng, string.ascii_lowercase, 1, 12))
        cols["dob"].append(f"{rng.randint(1, 28):02d}/{rng.randint(1, 12):02d}/"
                           f"{rng.randint(1920, 2010)}")  # fmt: skip
        cols["sex"].append(rng.choice("MFU"))
        cols["age"].append(rng.choice(["", "+"]) + str(rng.randint(0, 120)))
        cols["income"].append(f"{rng.uniform(0, 999):.2f}")
        cols["code"].append(_word(rng, "ÄBC123", 0, 6))
    rows = [[str(i), *vals] for i, vals in enumerate(zip(*cols.values(), strict=True))]
    assert np.array_equal(_pacelink_bits(doc, cols), _clkhash_bits(doc, rows))


def test_many_folds_and_short_filters() -> None:
    rng = random.Random(7)
    hashing = {"comparison": {"type": "ngram", "n": 2}, "strategy": {"bitsPerToken": 5}}
    doc = schema_doc([_string_feature("a", hashing)], l=64, folds=3)
    values = [_word(rng, "abcdefgh", 0, 10) for _ in range(500)]
    rows = [[str(i), v] for i, v in enumerate(values)]
    assert np.array_equal(_pacelink_bits(doc, {"a": values}), _clkhash_bits(doc, rows))


@settings(max_examples=150, deadline=None)
@given(
    values=st.lists(st.text(min_size=0, max_size=15), min_size=1, max_size=30),
    n=st.integers(min_value=0, max_value=5),
    positional=st.booleans(),
)
def test_tokenise_matches_clkhash_tokenizer(values: list[str], n: int, positional: bool) -> None:
    from clkhash.comparators import NgramComparison

    comparator = NgramComparison(n, positional)
    ascii_values = [v.encode("ascii", "replace").decode() for v in values]
    # Python strings, Arrow arrays (ASCII: read from the buffers; else converted back)
    for given_values, tokens in (
        (values, tokenise(values, comparator)),
        (values, tokenise(pa.array(values, pa.string()), comparator)),
        (ascii_values, tokenise(pa.array(ascii_values, pa.string()), comparator)),
    ):
        for i, value in enumerate(given_values):
            ids = tokens.token_ids[tokens.offsets[i] : tokens.offsets[i + 1]]
            assert [tokens.vocab[t] for t in ids] == list(comparator.tokenize(value))


@settings(max_examples=100, deadline=None)
@given(values=st.lists(st.sampled_from(["", "a", "M", "19880525", "x\x00y", "é"]) | st.text(),
                       min_size=1, max_size=40))  # fmt: skip
def test_exact_tokens_match_clkhash(values: list[str]) -> None:
    from clkhash.comparators import ExactComparison

    comparator = ExactComparison()
    for tokens in (tokenise(values, comparator), tokenise(pa.array(values), comparator)):
        for i, value in enumerate(values):
            ids = tokens.token_ids[tokens.offsets[i] : tokens.offsets[i + 1]]
            assert [tokens.vocab[t] for t in ids] == list(comparator.tokenize(value))
        assert len(set(tokens.vocab)) == len(tokens.vocab)


@settings(max_examples=25, deadline=None)
@given(names=st.lists(st.text(alphabet="abcdefghij -", min_size=1, max_size=10), min_size=1,
                      max_size=20))  # fmt: skip
def test_deterministic_under_a_fixed_key_and_keyed(names: list[str]) -> None:
    hashing = {"comparison": {"type": "ngram", "n": 2}, "strategy": {"bitsPerToken": 20}}
    schema = parse_schema(schema_doc([_string_feature("a", hashing)]))
    df = pd.DataFrame({"a": names})
    first = encode_dataframe(df, schema, Secret(TEST_SECRET)).bits
    again = encode_dataframe(df, schema, Secret(TEST_SECRET)).bits
    other = encode_dataframe(df, schema, Secret(TEST_SECRET[::-1])).bits
    assert np.array_equal(first, again)
    has_tokens = np.bitwise_count(first).sum(axis=1) > 0
    assert not np.array_equal(first[has_tokens], other[has_tokens])
