"""Keyed hashing of tokens into Bloom filters, bit-identical to clkhash but shared across records.

clkhash hashes every token of every record. Here each distinct token is hashed once (and
remembered across chunks), each distinct feature value becomes one packed filter row, and a
record's encoding is the OR of its features' rows, gathered by numpy. The bits set are
exactly clkhash's: same keys (HKDF as clkhash derives them), same token order, same
`bitsPerToken`/`bitsPerFeature` split, same blake2b and HMAC constructions.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pyarrow as pa
from clkhash.field_formats import BitsPerFeatureStrategy, BitsPerTokenStrategy
from clkhash.key_derivation import generate_key_lists
from numba import njit

from encoder.keys import Secret
from encoder.schema import Feature, LinkageSchema
from encoder.tokenise import Tokens, tokenise

__all__ = ["FeatureHasher", "derive_keys", "fold_xor", "hashers_for"]

# Token caches are dropped when they grow past this many tokens, bounding memory on
# features whose every value is distinct (exact comparisons of ID-like fields).
_CACHE_LIMIT = 200_000

_U8Array = np.ndarray[Any, np.dtype[np.uint8]]
_I64Array = np.ndarray[Any, np.dtype[np.int64]]
_I32Array = np.ndarray[Any, np.dtype[np.int32]]


def derive_keys(schema: LinkageSchema, secret: Secret) -> tuple[tuple[bytes, ...], ...]:
    """Per-feature key pairs, derived exactly as clkhash derives them (ignored features too)."""
    clk = schema.clk
    keys: tuple[tuple[bytes, ...], ...] = generate_key_lists(
        secret.value,
        len(clk.fields),
        key_size=clk.kdf_key_size,
        salt=clk.kdf_salt,
        info=clk.kdf_info,
        kdf=clk.kdf_type,
        hash_algo=clk.kdf_hash,
    )
    return keys


@njit(cache=True, nogil=True)
def _token_ks(offsets: _I64Array, fixed_k: int, per_feature: int) -> _I64Array:
    """Bits for each token occurrence: clkhash's BitsPerToken / BitsPerFeature split."""
    n_values = offsets.shape[0] - 1
    ks = np.empty(offsets[-1], dtype=np.int64)
    for v in range(n_values):
        start = offsets[v]
        count = offsets[v + 1] - start
        if count == 0:
            continue
        if per_feature > 0:
            base = per_feature // count
            residue = per_feature % count
        else:
            base = fixed_k
            residue = 0
        for t in range(count):
            ks[start + t] = base + 1 if t < residue else base
    return ks


@njit(cache=True, nogil=True)
def _token_need(token_ids: _I64Array, ks: _I64Array, n_vocab: int) -> _I64Array:
    """The most bits any occurrence of each distinct token needs."""
    need = np.zeros(n_vocab, dtype=np.int64)
    for t in range(token_ids.shape[0]):
        tok = token_ids[t]
        need[tok] = max(need[tok], ks[t])
    return need


@njit(cache=True, nogil=True)
def _set_bits_listed(
    token_ids: _I64Array, offsets: _I64Array, ks: _I64Array, idx_start: _I64Array,
    idx_flat: _I32Array, out: _U8Array,
) -> None:  # fmt: skip
    """Set, for each token occurrence, the first k of its precomputed bit indices."""
    for v in range(offsets.shape[0] - 1):
        for t in range(offsets[v], offsets[v + 1]):
            first = idx_start[token_ids[t]]
            for i in range(ks[t]):
                bit = idx_flat[first + i]
                out[v, bit >> 3] |= np.uint8(128 >> (bit & 7))


@njit(cache=True, nogil=True)
def _set_bits_double(
    token_ids: _I64Array, offsets: _I64Array, ks: _I64Array, h1: _I64Array, h2: _I64Array,
    length: int, out: _U8Array,
) -> None:  # fmt: skip
    """Double hashing (Schnell 2011): bit i of a token is (h1 + i * h2) mod l."""
    for v in range(offsets.shape[0] - 1):
        for t in range(offsets[v], offsets[v + 1]):
            tok = token_ids[t]
            a = h1[tok]
            b = h2[tok]
            for i in range(ks[t]):
                bit = (a + i * b) % length
                out[v, bit >> 3] |= np.uint8(128 >> (bit & 7))


@dataclass
class FeatureHasher:
    """Turns formatted values of one feature into packed Bloom-filter rows."""

    feature: Feature
    keys: tuple[bytes, ...]
    hash_length: int
    _cache: dict[str, Any] = field(default_factory=dict, repr=False)  # double hashing
    # blakeHash: token → slot; a slot's bit indices are _store[start : start + count].
    _slots: dict[str, int] = field(default_factory=dict, repr=False)
    _slot_start: _I64Array = field(default_factory=lambda: np.zeros(0, np.int64), repr=False)
    _slot_count: _I64Array = field(default_factory=lambda: np.zeros(0, np.int64), repr=False)
    _blake_bases: list[Any] = field(default_factory=list, repr=False)
    _store: np.ndarray[Any, np.dtype[np.int32]] = field(
        default_factory=lambda: np.zeros(0, dtype=np.int32), repr=False
    )

    def __post_init__(self) -> None:
        """Read the feature's hashing properties once."""
        fhp = self.feature.spec.hashing_properties
        self._comparator = fhp.comparator
        self._encoding: str = fhp.encoding
        self._hash_type: str = fhp.hash_type
        self._non_singular = bool(fhp.prevent_singularity)
        strategy = fhp.strategy
        if isinstance(strategy, BitsPerFeatureStrategy):
            self._fixed_k, self._per_feature = 0, int(strategy._bits_per_feature)
        elif isinstance(strategy, BitsPerTokenStrategy):
            self._fixed_k, self._per_feature = int(strategy._bits_per_token), 0
        else:  # pragma: no cover - clkhash has only these two strategies
            raise ValueError(f"unsupported strategy {type(strategy).__name__}")

    def filters(self, values: Sequence[str] | pa.Array) -> _U8Array:
        """Packed filters `(len(values), hash_length / 8)`, one per formatted value."""
        out = np.zeros((len(values), self.hash_length // 8), dtype=np.uint8)
        tokens = tokenise(values, self._comparator)
        if tokens.token_ids.size == 0:
            return out
        ks = _token_ks(tokens.offsets, self._fixed_k, self._per_feature)
        if self._hash_type == "blakeHash":
            need = _token_need(tokens.token_ids, ks, len(tokens.vocab))
            idx_start, idx_flat = self._blake_indices(tokens, need)
            _set_bits_listed(tokens.token_ids, tokens.offsets, ks, idx_start, idx_flat, out)
        else:
            h1, h2 = self._double_hashes(tokens)
            _set_bits_double(tokens.token_ids, tokens.offsets, ks, h1, h2, self.hash_length, out)
        return out

    def _remember(self, token: str, entry: Any) -> None:
        if len(self._cache) >= _CACHE_LIMIT:
            self._cache.clear()
        self._cache[token] = entry

    def _blake_indices(self, tokens: Tokens, need: _I64Array) -> tuple[_I64Array, _I32Array]:
        """Where each vocabulary token's bit indices start in the store, and the store.

        The indices of every token hashed so far are kept in one flat array, so a chunk
        costs one dictionary lookup per distinct token; only tokens never seen (or needing
        more indices than were made) are hashed.
        """
        vocab = tokens.vocab
        if len(self._slots) + len(vocab) > _CACHE_LIMIT:
            self._slots, self._store = {}, np.zeros(0, dtype=np.int32)
            self._slot_start, self._slot_count = np.zeros((2, 0), dtype=np.int64)
        slots = self._slots
        ids = np.fromiter((slots.get(t, -1) for t in vocab), dtype=np.int64, count=len(vocab))
        known = np.flatnonzero(ids >= 0)
        starts = np.zeros(len(vocab), dtype=np.int64)
        counts = np.zeros(len(vocab), dtype=np.int64)
        starts[known] = self._slot_start[ids[known]]
        counts[known] = self._slot_count[ids[known]]
        todo = np.flatnonzero(counts < need)
        if todo.size:
            encoding = self._encoding
            macs = (need[todo] + 31) // 32
            bases = self._blake_states(int(macs.max()))
            digests = []
            for t, m in zip(todo.tolist(), macs.tolist(), strict=True):
                data = vocab[t].encode(encoding)
                for base in bases[:m]:
                    h = base.copy()  # a keyed, salted state: cheaper than keying again
                    h.update(data)
                    digests.append(h.digest())
            # clkhash reads each digest as native-order unsigned shorts ('32H').
            indices = np.frombuffer(b"".join(digests), dtype=np.uint16).astype(np.int32)
            indices %= self.hash_length
            sizes = macs * 32
            new_starts = self._store.shape[0] + np.cumsum(sizes) - sizes
            first_slot = int(self._slot_start.shape[0])
            for n, t in enumerate(todo.tolist()):
                slots[vocab[t]] = first_slot + n  # a re-hashed token moves to its new slot
            starts[todo] = new_starts
            self._slot_start = np.concatenate([self._slot_start, new_starts])
            self._slot_count = np.concatenate([self._slot_count, sizes])
            self._store = np.concatenate([self._store, indices])
        return starts, self._store

    def _blake_states(self, macs: int) -> list[Any]:
        """The blake2b states keyed with this feature's key and salted with "0", "1", ….

        They are the MACs clkhash computes per token, without re-keying for each one.
        """
        key = bytes(self.keys[0])
        while len(self._blake_bases) < macs:
            salt = str(len(self._blake_bases)).encode()
            self._blake_bases.append(hashlib.blake2b(key=key, salt=salt))
        return self._blake_bases

    def _double_hashes(self, tokens: Tokens) -> tuple[_I64Array, _I64Array]:
        key_sha1, key_md5 = bytes(self.keys[0]), bytes(self.keys[1])
        length = self.hash_length
        h1 = np.empty(len(tokens.vocab), dtype=np.int64)
        h2 = np.empty(len(tokens.vocab), dtype=np.int64)
        cache = self._cache
        for t, token in enumerate(tokens.vocab):
            pair = cache.get(token)
            if pair is None:
                data = token.encode(self._encoding)
                sha = int.from_bytes(hmac.new(key_sha1, data, hashlib.sha1).digest(), "big")
                md5 = int.from_bytes(hmac.new(key_md5, data, hashlib.md5).digest(), "big")
                second = md5 % length
                i = 0
                while self._non_singular and second == 0:
                    # clkhash's fix for the singularity: rehash with a counter appended.
                    extra = data + chr(i).encode()
                    second = int.from_bytes(hmac.new(key_md5, extra, hashlib.md5).digest(), "big")
                    second %= length
                    i += 1
                pair = (sha % length, second)
                self._remember(token, pair)
            h1[t], h2[t] = pair
        return h1, h2


def hashers_for(
    schema: LinkageSchema, keys: Sequence[tuple[bytes, ...]]
) -> dict[str, FeatureHasher]:
    """One hasher per hashed feature, keyed by feature name.

    Args:
        schema: The linkage schema.
        keys: `derive_keys(schema, secret)`: derived once, so the secret need not travel.
    """
    return {
        f.name: FeatureHasher(f, keys[f.index], schema.hash_length) for f in schema.hashed_features
    }


def fold_xor(bits: _U8Array, folds: int) -> _U8Array:
    """XOR-fold packed filters `folds` times, as clkhash folds its bitarrays."""
    for _ in range(folds):
        half = bits.shape[1] // 2
        bits = np.bitwise_xor(bits[:, :half], bits[:, half:])
    return bits
