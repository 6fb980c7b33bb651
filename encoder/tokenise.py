"""Tokenisation of formatted feature values into clkhash's tokens, vectorised over many values.

Values are tokenised once per distinct value and tokens are numbered against a vocabulary,
so that the (expensive) keyed hashing later runs once per distinct token, not per record.
The token sequence of every value is exactly what clkhash's comparator produces, in the same
order: the order matters because clkhash's `bitsPerFeature` strategy gives the first tokens
of a value one more bit than the rest.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
from clkhash.comparators import AbstractComparison, ExactComparison, NgramComparison
from numba import njit

from encoder.read import string_buffers

__all__ = ["Tokens", "tokenise"]

# Values are turned into fixed-width code-point arrays a block at a time; this bounds the
# memory a single very long value can cost to BLOCK * its length * 4 bytes.
_BLOCK = 4096
_CP_BITS = 21  # Unicode code points fit in 21 bits
_SPACE = 32


@dataclass(frozen=True)
class Tokens:
    """The tokens of a sequence of values.

    Attributes:
        token_ids: Vocabulary index of every token occurrence, values concatenated in order.
        offsets: Value `v` owns `token_ids[offsets[v]:offsets[v + 1]]`.
        vocab: The distinct tokens, as the strings clkhash would hash.
    """

    token_ids: np.ndarray[Any, np.dtype[np.int64]]
    offsets: np.ndarray[Any, np.dtype[np.int64]]
    vocab: list[str]

    def counts(self) -> np.ndarray[Any, np.dtype[np.int64]]:
        """Number of tokens of each value."""
        return np.diff(self.offsets)


def tokenise(values: Sequence[str] | pa.Array, comparator: AbstractComparison) -> Tokens:
    """Tokenise every value as `comparator.tokenize` would.

    n-gram comparisons (the common case) take a vectorised path, straight from Arrow's
    buffers when the values are ASCII; exact comparisons use the value itself; anything else
    (numeric, n = 0, values with NUL characters) falls back to calling clkhash's own
    tokenizer value by value.
    """
    if isinstance(comparator, ExactComparison):
        return _exact(values if isinstance(values, pa.Array) else pa.array(values, pa.string()))
    if isinstance(values, pa.Array):
        if (
            isinstance(comparator, NgramComparison)
            and comparator.n >= 1
            and (comparator.n + bool(comparator.positional)) * _CP_BITS <= 64
            and len(values) > 0
            and pc.all(pc.string_is_ascii(values)).as_py()
        ):
            return _ascii_ngrams(values, int(comparator.n), bool(comparator.positional))
        values = values.to_pylist()
    if (
        isinstance(comparator, NgramComparison)
        and comparator.n >= 1
        and "\x00" not in "".join(values)
    ):
        return _ngrams(values, int(comparator.n), bool(comparator.positional))
    return _by_value(values, lambda v: tuple(comparator.tokenize(v)))


def _exact(values: pa.Array) -> Tokens:
    """Exact comparison: a non-empty value is its own single token (clkhash: `[v] if v`)."""
    nonempty = pc.fill_null(pc.greater(pc.utf8_length(values), 0), False)
    nonempty = nonempty.to_numpy(zero_copy_only=False)
    offsets = np.zeros(len(values) + 1, dtype=np.int64)
    np.cumsum(nonempty, out=offsets[1:])
    # Numbered in order of first appearance, as a vocabulary built value by value would be.
    encoded = pc.dictionary_encode(values.filter(pa.array(nonempty)))
    ids = encoded.indices.to_numpy(zero_copy_only=False).astype(np.int64)
    return Tokens(ids, offsets, encoded.dictionary.to_pylist())


def _by_value(values: Sequence[str], tokenize: Any) -> Tokens:
    vocab: dict[str, int] = {}
    ids: list[int] = []
    offsets = np.zeros(len(values) + 1, dtype=np.int64)
    for i, value in enumerate(values):
        for token in tokenize(value):
            ids.append(vocab.setdefault(token, len(vocab)))
        offsets[i + 1] = len(ids)
    return Tokens(np.asarray(ids, dtype=np.int64), offsets, list(vocab))


def _ngrams(values: Sequence[str], n: int, positional: bool) -> Tokens:
    """Vectorised n-grams: each token becomes a key (its code points, and position if any)."""
    pad = n - 1
    lengths = np.fromiter(map(len, values), dtype=np.int64, count=len(values))
    counts = np.where(lengths > 0, lengths + n - 1, 0)
    # A token's key: its n code points (and 1-based position if positional). Packed into one
    # uint64 when they fit, else kept as rows of a 2-D array.
    packed = n * _CP_BITS + (_CP_BITS if positional else 0) <= 64
    parts: list[np.ndarray[Any, Any]] = []
    for start in range(0, len(values), _BLOCK):
        block = values[start : start + _BLOCK]
        blen = lengths[start : start + _BLOCK]
        if not blen.any():
            continue
        width = int(blen.max())
        cps = np.asarray(block, dtype=f"<U{width}").view(np.uint32).reshape(len(block), width)
        full = np.zeros((len(block), width + 2 * pad), dtype=np.uint64)
        full[:, pad : pad + width] = cps
        if pad:
            cols = np.arange(width + 2 * pad)
            front = cols < pad
            back = (cols >= pad + blen[:, None]) & (cols < 2 * pad + blen[:, None])
            full[:, front] = _SPACE
            full[back] = _SPACE
        positions = width + pad  # token start positions in the padded row
        valid = np.arange(positions)[None, :] < counts[start : start + _BLOCK, None]
        grams = [full[:, k : k + positions][valid] for k in range(n)]
        if positional:
            pos = np.broadcast_to(np.arange(1, positions + 1, dtype=np.uint64), valid.shape)
            grams.append(pos[valid])
        if packed:
            key = np.zeros(grams[0].shape, dtype=np.uint64)
            for k, gram in enumerate(grams):
                key |= gram << np.uint64(_CP_BITS * k)
            parts.append(key)
        else:
            parts.append(np.stack(grams, axis=1))
    offsets = np.zeros(len(values) + 1, dtype=np.int64)
    np.cumsum(counts, out=offsets[1:])
    if not parts:
        return Tokens(np.zeros(0, dtype=np.int64), offsets, [])
    keys = np.concatenate(parts)
    if packed:
        # Hash-based factorisation: linear time, where np.unique would sort every token.
        inverse, uniq = pd.factorize(keys)
        mask = np.uint64((1 << _CP_BITS) - 1)
        rows = np.stack([(uniq >> np.uint64(_CP_BITS * k)) & mask for k in range(len(grams))], 1)
    else:
        rows, inverse = np.unique(keys, axis=0, return_inverse=True)
    vocab = [_token_text(row, n, positional) for row in rows.tolist()]
    return Tokens(inverse.reshape(-1).astype(np.int64), offsets, vocab)


def _token_text(row: list[int], n: int, positional: bool) -> str:
    gram = "".join(map(chr, row[:n]))
    return f"{row[n]} {gram}" if positional else gram


@njit(cache=True, nogil=True)
def _ascii_ngram_keys(
    offsets: np.ndarray[Any, Any], data: np.ndarray[Any, Any], n: int, positional: bool
) -> tuple[np.ndarray[Any, Any], np.ndarray[Any, Any]]:
    """Token counts per value and packed n-gram keys, read from UTF-8 (ASCII) bytes.

    The value is padded with n - 1 spaces on each side, as clkhash pads it.
    """
    n_values = offsets.shape[0] - 1
    counts = np.zeros(n_values, dtype=np.int64)
    for v in range(n_values):
        length = offsets[v + 1] - offsets[v]
        if length > 0:
            counts[v] = length + n - 1
    keys = np.empty(counts.sum(), dtype=np.uint64)
    out = 0
    for v in range(n_values):
        start = offsets[v]
        length = offsets[v + 1] - start
        for p in range(counts[v]):
            key = np.uint64(0)
            for k in range(n):
                q = p + k - (n - 1)
                c = data[start + q] if 0 <= q < length else 32
                key |= np.uint64(c) << np.uint64(21 * k)
            if positional:
                key |= np.uint64(p + 1) << np.uint64(21 * n)
            keys[out] = key
            out += 1
    return counts, keys


def _ascii_ngrams(values: pa.Array, n: int, positional: bool) -> Tokens:
    """n-grams of ASCII values straight from the Arrow buffers (no Python strings)."""
    offsets, data = string_buffers(values)
    counts, keys = _ascii_ngram_keys(offsets, data, n, positional)
    token_offsets = np.zeros(len(values) + 1, dtype=np.int64)
    np.cumsum(counts, out=token_offsets[1:])
    if keys.size == 0:
        return Tokens(np.zeros(0, dtype=np.int64), token_offsets, [])
    inverse, uniq = pd.factorize(keys)
    mask = np.uint64((1 << _CP_BITS) - 1)
    width = n + (1 if positional else 0)
    rows = np.stack([(uniq >> np.uint64(_CP_BITS * k)) & mask for k in range(width)], 1)
    vocab = [_token_text(row, n, positional) for row in rows.tolist()]
    return Tokens(inverse.astype(np.int64), token_offsets, vocab)
