"""Hardening of encodings after XOR folding: balanced filters, record salts, BLIP and decoys.

A schema's `hardening` (`encoder.schema.Hardening`) chooses the steps; they run in this
order on each record's folded filter:

1. **balanced** (Schnell 2016): the filter followed by its complement, in a keyed order. Every
   encoding then has exactly half its bits set, so an encoding's weight says nothing of how
   many tokens (how long a name) it holds, and a position's frequency f comes with a partner
   position of frequency 1 - f at a secret place, so a frequent position no longer shows
   that a common token sets it. (The partners are perfectly anti-correlated, which an attacker
   can find; hence BLIP and salts.)
2. **recordSalt**: a keyed permutation of the bit positions chosen by the record's salt (a
   slice of a stable feature, e.g. the year of birth). Records with the same salt compare
   exactly as before; records with different salts look unrelated, so an attack that works
   on the whole file (graph matching, known pairs) must be made salt group by salt group.
3. **blip** (BLoom-and-flIP, Schnell & Borgs 2016): each bit flipped with probability `blip`
   (randomised response), so no single bit can be trusted. The flips are drawn from a keyed
   function of the record's own bits: the same record under the same secret always gets the
   same flips (encoding stays reproducible), yet nobody without the secret can predict them.
4. **decoys**: the encoder adds records made by recombining its own records' values (see
   `encoder.encode`); here are the keyed draws that choose them and place them.

Every key comes from the partnership secret by HKDF with its own label
(`encoder.keys.hardening_key`), never from the keys that set Bloom-filter bits: all partners
holding the secret and the schema harden alike, and their encodings stay comparable. The
permutations are derived from SHAKE-256 output by a stable sort, not by a library's shuffle,
so that they do not change with a numpy release.
"""

from __future__ import annotations

import hashlib
import hmac
import math
from dataclasses import dataclass
from typing import Any

import numpy as np
from numba import njit

from encoder.keys import PSEUDONYM_BYTES, RecordKey, Secret, hardening_key
from encoder.schema import LinkageSchema

__all__ = [
    "Hardener",
    "HardeningKeys",
    "blip_reference",
    "decoy_count",
    "decoy_positions",
    "decoy_sources",
    "keyed_permutation",
    "permute_reference",
]

_U8Array = np.ndarray[Any, np.dtype[np.uint8]]
_I32Array = np.ndarray[Any, np.dtype[np.int32]]
_I64Array = np.ndarray[Any, np.dtype[np.int64]]

# Salt permutations kept per encoder thread; bounds memory when a salt is nearly unique.
_SALT_CACHE_LIMIT = 4096
# HMAC messages under the partner's own record key: a decoy's pseudonym, and what makes the
# decoy draws the partner's own (distinct from the real pseudonyms' label).
_DECOY_PSEUDONYM_LABEL = b"pacelink/decoy-pseudonym/v1:"
_DECOY_SEED_LABEL = b"pacelink/decoy-seed/v1"
_TWO_32 = 1 << 32


def keyed_permutation(key: bytes, length: int) -> _I32Array:
    """A permutation of `range(length)` that only a holder of `key` can compute.

    The positions sorted by their SHAKE-256(key) values, read as little-endian 64-bit
    numbers (a stable sort settles the rare tie): a uniformly random permutation, the same
    on every machine and with every numpy release.
    """
    values = np.frombuffer(hashlib.shake_256(key).digest(8 * length), dtype="<u8")
    result: _I32Array = np.argsort(values, kind="stable").astype(np.int32)
    return result


def decoy_count(rate: float, encoded: int) -> int:
    """Decoys added to a chunk of `encoded` records: `rate * encoded`, rounded half up."""
    return max(0, math.floor(rate * encoded + 0.5))


def decoy_sources(rng: np.random.Generator, n_real: int, n_features: int, count: int) -> _I64Array:
    """For each of `count` decoys, the real record each source feature's value comes from.

    `(count, n_features)` indices into the chunk's real records, distinct within a decoy
    when there are enough records, so that a decoy is no real person's values.
    """
    picks: _I64Array = rng.integers(0, n_real, size=(count, n_features), dtype=np.int64)
    if n_features > 1 and n_real >= n_features:
        ordered = np.sort(picks, axis=1)
        for d in np.flatnonzero((ordered[:, 1:] == ordered[:, :-1]).any(axis=1)).tolist():
            picks[d] = rng.choice(n_real, size=n_features, replace=False)
    return picks


def decoy_positions(rng: np.random.Generator, n_real: int, count: int) -> _I64Array:
    """The sorted rows of a chunk's output (real records and decoys) that hold the decoys.

    They are spread uniformly, so the unit cannot find them by place.
    """
    chosen = rng.choice(n_real + count, size=count, replace=False)
    result: _I64Array = np.sort(chosen).astype(np.int64)
    return result


@njit(cache=True, nogil=True)
def _permute_rows(
    src: _U8Array, groups: _I32Array, perms: _I32Array, n_in: int, out: _U8Array
) -> None:  # fmt: skip
    """Bit j of out[r] is bit perms[groups[r], j] of src[r] followed by its complement.

    Each row is first spread to one byte per bit, its complement after it, so that the
    gather reads one byte per output bit, with no shifts or branches.
    """
    width = out.shape[1]
    spread = np.empty(2 * n_in, dtype=np.uint8)
    for r in range(out.shape[0]):
        for i in range(n_in >> 3):
            value = src[r, i]
            for k in range(8):
                bit = (value >> (7 - k)) & 1
                spread[8 * i + k] = bit
                spread[n_in + 8 * i + k] = bit ^ 1
        perm = perms[groups[r]]
        for b in range(width):
            byte = 0
            first = 8 * b
            for k in range(8):
                byte = (byte << 1) | spread[perm[first + k]]
            out[r, b] = byte


@njit(cache=True, nogil=True)
def _flip_rows(bits: _U8Array, draws: Any, gaps: Any, length: int) -> Any:
    """Flip each row's bits at the positions its draws give (see `Hardener.blip`), in place.

    Returns which rows' draws ended before the row did: those rows are left as they were,
    for the caller to flip with more draws.
    """
    n, m = draws.shape
    short = np.zeros(n, dtype=np.bool_)
    for r in range(n):
        for attempt in range(2):  # the second pass undoes the first, for a short row
            pos = -1
            for i in range(m):
                u = np.uint64(draws[r, i])
                lo, hi = 0, gaps.shape[0]  # the gap: 1 + the thresholds at or below u
                while lo < hi:
                    mid = (lo + hi) >> 1
                    if gaps[mid] <= u:
                        lo = mid + 1
                    else:
                        hi = mid
                pos += lo + 1
                if pos >= length:
                    break
                bits[r, pos >> 3] ^= np.uint8(128 >> (pos & 7))
            if pos >= length or attempt == 1:
                break
            short[r] = True
    return short


def permute_reference(
    bits: _U8Array, groups: _I32Array, perms: _I32Array, balanced: bool
) -> _U8Array:
    """Plain numpy reference of the permutation kernel (tests compare the two).

    Args:
        bits: Packed filters `(n, l/8)`.
        groups: Row r uses permutation `perms[groups[r]]`.
        perms: `(g, l)`, or `(g, 2l)` when balanced (positions from l on are complements).
        balanced: Append each filter's complement before permuting.
    """
    unpacked = np.unpackbits(bits, axis=1)
    if balanced:
        unpacked = np.concatenate([unpacked, 1 - unpacked], axis=1)
    out = np.empty((bits.shape[0], perms.shape[1]), dtype=np.uint8)
    for g in np.unique(groups).tolist():
        rows = np.flatnonzero(groups == g)
        out[rows] = unpacked[rows][:, perms[g]]
    result: _U8Array = np.packbits(out, axis=1)
    return result


def _gap_thresholds(rate: float, length: int) -> np.ndarray[Any, np.dtype[np.uint64]]:
    """`t[k - 1]` = 2**32 * P(gap <= k) for the geometric gaps between flipped bits.

    Built by repeated IEEE-754 products (exactly rounded: the same table on every machine),
    so a gap is found by integer comparison alone, never by a logarithm that a platform's
    maths library might round differently.
    """
    table = np.empty(length + 1, dtype=np.uint64)
    stay = 1.0
    for k in range(length + 1):
        stay *= 1.0 - rate
        table[k] = min(int((1.0 - stay) * _TWO_32), _TWO_32)
    return table


def _draws(key: bytes, data: bytes, width: int, count: int) -> np.ndarray[Any, np.dtype[np.uint32]]:
    """`(n, count)` 32-bit draws: row r's are SHAKE-256(key || row r of `data`)."""
    shake, size = hashlib.shake_256, 4 * count
    parts = [shake(key + data[o : o + width]).digest(size) for o in range(0, len(data), width)]
    result: np.ndarray[Any, np.dtype[np.uint32]] = np.frombuffer(
        b"".join(parts), dtype="<u4"
    ).reshape(-1, count)
    return result


def _flip_positions(
    key: bytes, row: bytes, gaps: np.ndarray[Any, np.dtype[np.uint64]], length: int, count: int
) -> _I64Array:
    """The flipped positions of one row, reading as many draws as it takes."""
    while True:
        u = np.frombuffer(hashlib.shake_256(key + row).digest(4 * count), dtype="<u4")
        ends = np.cumsum(np.searchsorted(gaps, u.astype(np.uint64), side="right") + 1) - 1
        if ends[-1] >= length:
            result: _I64Array = ends[ends < length].astype(np.int64)
            return result
        count *= 2


def _xor_positions(bits: _U8Array, rows: _I64Array, positions: _I64Array) -> None:
    masks = np.left_shift(np.uint8(1), (7 - (positions & 7)).astype(np.uint8))
    np.bitwise_xor.at(bits, (rows, positions >> 3), masks)


def blip_reference(bits: _U8Array, key: bytes, rate: float) -> _U8Array:
    """Plain numpy reference of BLIP (tests compare `Hardener.blip` with it).

    Returns a copy of `bits` with each row's flips, from enough draws that no row runs out
    (every gap is at least one bit).
    """
    n, width = bits.shape
    length = 8 * width
    out = bits.copy()
    if n == 0:
        return out
    draws = _draws(key, np.ascontiguousarray(bits).tobytes(), width, length + 1)
    gaps = np.searchsorted(_gap_thresholds(rate, length), draws.astype(np.uint64), side="right")
    ends = np.cumsum(gaps + 1, axis=1, dtype=np.int64) - 1
    rows, cols = np.nonzero(ends < length)
    _xor_positions(out, rows.astype(np.int64), ends[rows, cols])
    return out


@dataclass(frozen=True, repr=False)
class HardeningKeys:
    """The keys of a schema's hardening steps, derived from the secret once per run.

    Encoder threads are handed these keys, never the secret; a step the schema does not use
    has an empty key.
    """

    balanced: bytes
    record_salt: bytes
    blip: bytes
    decoys: bytes

    @classmethod
    def derive(cls, schema: LinkageSchema, secret: Secret) -> HardeningKeys:
        """The keys of the steps `schema.hardening` uses."""
        options = schema.hardening
        return cls(
            balanced=hardening_key(secret, "balanced") if options.balanced else b"",
            record_salt=(
                hardening_key(secret, "record salt") if options.record_salt is not None else b""
            ),
            blip=hardening_key(secret, "blip") if options.blip else b"",
            decoys=hardening_key(secret, "decoys") if options.decoys else b"",
        )

    def __repr__(self) -> str:
        """Redacted: the keys stand for the secret."""
        return "HardeningKeys(<redacted>)"


class Hardener:
    """Applies a schema's hardening to folded filters; one per encoder thread.

    Each thread has its own because it caches the permutations of the salts it has seen.
    """

    def __init__(
        self, schema: LinkageSchema, keys: HardeningKeys, record_key: RecordKey | None
    ) -> None:
        """Prepare the schema's steps from their keys (`HardeningKeys.derive`)."""
        self.options = options = schema.hardening
        self._n_in = schema.filter_length
        self.length = schema.bit_length
        self._balanced: _I32Array | None = None
        if options.balanced:
            self._balanced = keyed_permutation(keys.balanced, self.length)
        self._salt_key = keys.record_salt
        self._salt_perms: dict[str, _I32Array] = {}
        self._blip_key = keys.blip
        if options.blip:
            self._gaps = _gap_thresholds(options.blip, self.length)
            mean = self.length * options.blip
            # Draws per row: enough to pass the row's end almost always; rows that need
            # more draw them (`_flip_positions`), with the same result.
            self._draws = min(self.length + 1, math.ceil(mean + 6 * math.sqrt(mean) + 8))
        self._decoy_key = keys.decoys
        # The partner's record key makes its decoys its own: another partner holding the
        # secret cannot recompute where they are.
        self._record_key = record_key
        self._decoy_tag = (
            b""
            if record_key is None or not options.decoys
            else hmac.digest(record_key.value, _DECOY_SEED_LABEL, "sha256")
        )

    @property
    def permutes(self) -> bool:
        """Whether filters are permuted (balanced or salted)."""
        return self.options.balanced or self.options.record_salt is not None

    def salt_permutation(self, salt: str) -> _I32Array:
        """The permutation of the output positions for one salt; kept for the next chunks.

        It is derived from the secret's record-salt key and the salt.
        """
        # Why a permutation rather than the salt in every token's hash (as the literature
        # salts): for linkage the two behave alike. Two records with the same salt get the
        # same permutation, and Dice is unchanged by permuting both filters alike, so they
        # compare exactly as unsalted. Two records with different salts get independent
        # secret permutations, so their set bits fall on unrelated positions and they score
        # like two random filters of their weights, as with differently salted hashes. The
        # permutation costs one derivation per distinct salt (a few dozen years per chunk,
        # remembered across chunks) and one gather per record, where salted hashing would
        # hash every token of every record once per salt, defeating the token caches that
        # make encoding fast. (Within one salt group an attacker sees a consistent keyed
        # relabelling of the unsalted filter; across groups nothing is shared, as intended.)
        perm = self._salt_perms.get(salt)
        if perm is None:
            if len(self._salt_perms) >= _SALT_CACHE_LIMIT:
                self._salt_perms.clear()
            seed = hmac.digest(self._salt_key, salt.encode("utf-8"), "sha256")
            perm = self._salt_perms[salt] = keyed_permutation(seed, self.length)
        return perm

    def permutations(self, salts: list[str] | None) -> _I32Array:
        """The salts' permutations, `(len(salts), bit_length)` (one row without salts).

        Output position j of a row with salt s reads position `perms[s, j]` of the filter
        followed by its complement (balanced) or of the filter itself.
        """
        if salts is None:
            assert self._balanced is not None
            return self._balanced[None, :]
        # Salting a balanced encoding permutes the permuted one: z[j] = y[s[j]] = w[b[s[j]]].
        salted = np.stack([self.salt_permutation(s) for s in salts])
        return salted if self._balanced is None else self._balanced[salted]

    def harden(
        self, bits: _U8Array, salts: list[str] | None, salt_rows: _I32Array | None
    ) -> _U8Array:
        """The hardened encodings of folded filters `(n, filter_length / 8)`.

        Args:
            bits: One folded filter a row; never changed in place.
            salts: The distinct salts of the rows (None without a record salt).
            salt_rows: Row r's salt is `salts[salt_rows[r]]`.
        """
        out = bits
        if self.permutes:
            if self.options.record_salt is None or salts is None or salt_rows is None:
                salts, salt_rows = None, np.zeros(bits.shape[0], dtype=np.int32)
            perms = self.permutations(salts)
            out = np.empty((bits.shape[0], self.length // 8), dtype=np.uint8)
            _permute_rows(np.ascontiguousarray(bits), salt_rows, perms, self._n_in, out)
        if self.options.blip:
            if out is bits:
                out = bits.copy()
            self.blip(out)
        return out

    def blip(self, bits: _U8Array) -> None:
        """Flip each bit of each row with probability `blip`, in place.

        A row's flips are a function of its bits: SHAKE-256(BLIP key || row) gives 32-bit
        uniform draws, each turned (by `_gap_thresholds`) into the geometric gap to the next
        flipped bit, which is exactly one Bernoulli(blip) trial per bit. The gaps are read
        until they pass the row's end. `blip_reference` is the plain numpy version.
        """
        n, width = bits.shape
        if n == 0:
            return
        data = np.ascontiguousarray(bits).tobytes()  # the flips depend on the bits before
        draws = _draws(self._blip_key, data, width, self._draws)
        short = _flip_rows(bits, draws, self._gaps, width * 8)
        for r in np.flatnonzero(short).tolist():
            # Rare: the row needs more draws. SHAKE's longer output starts with its shorter
            # one, so these are the same draws, read on.
            row = data[r * width : (r + 1) * width]
            flips = _flip_positions(self._blip_key, row, self._gaps, width * 8, 2 * self._draws)
            _xor_positions(bits, np.full(flips.size, r, dtype=np.int64), flips)

    def decoy_generator(
        self, first_row: int, real_bits: _U8Array
    ) -> tuple[np.random.Generator, bytes]:
        """The keyed random generator of one chunk's decoys, and its seed.

        Seeded by HMAC-SHA256 of the decoy key (from the secret), the partner's record key
        (when it has one), the chunk's first row and a digest of its real encodings: the
        same input gives the same decoys, and nobody who lacks the secret, or cannot tell
        which rows are real, can recompute them.
        """
        digest = hashlib.sha256(np.ascontiguousarray(real_bits).tobytes()).digest()
        message = self._decoy_tag + first_row.to_bytes(8, "big") + digest
        seed = hmac.digest(self._decoy_key, message, "sha256")
        return np.random.Generator(np.random.PCG64(int.from_bytes(seed, "big"))), seed

    def decoy_pseudonyms(self, seed: bytes, count: int) -> _U8Array | None:
        """`(count, 16)` record pseudonyms for a chunk's decoys (None without a record key).

        HMAC-SHA256 under the partner's record key, with a label no real pseudonym uses, of
        the chunk's decoy seed and the decoy's number: indistinguishable from the real
        pseudonyms to anyone without the record key, and the same on every run.
        """
        key = self._record_key
        if key is None:
            return None
        parts = [
            hmac.digest(key.value, _DECOY_PSEUDONYM_LABEL + seed + i.to_bytes(4, "big"), "sha256")
            for i in range(count)
        ]
        result: _U8Array = np.frombuffer(
            b"".join(p[:PSEUDONYM_BYTES] for p in parts), dtype=np.uint8
        ).reshape(count, PSEUDONYM_BYTES)
        return result
