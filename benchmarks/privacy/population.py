"""The attack setting: a register the attacker holds, the encodings it sees, and the truth.

:func:`attack_data` draws a synthetic UK population, encodes a sample of it with a schema
and a random secret (through the encoder's public ``encode_dataframe``, the path partners
run), and gives the attacker the plaintext of another sample that overlaps the first. The
attacker's view of a plaintext record is its set of tokens, computed the way the encoder
tokenises (the same standardisers, derived features and n-grams, each token tagged with its
feature because each feature is hashed with its own key); it is also packed as one bit per
distinct token so the encoder's Dice kernel scores plaintext pairs exactly.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from numpy.typing import NDArray

from benchmarks.synthetic import generate_population
from encoder.encode import EncodeOptions, encode_dataframe
from encoder.keys import Secret
from encoder.schema import LinkageSchema
from encoder.standardise import STANDARDISERS, InvalidValue

__all__ = [
    "AttackData",
    "attack_data",
    "dice_profile",
    "plaintext_tokens",
    "reidentified",
    "token_matrix",
]


@dataclass(frozen=True)
class AttackData:
    """What an attack is given, and the truth it is scored against.

    Attributes:
        encodings: ``(n_enc, l / 8)`` uint8 packed filters, as the linkage unit holds them.
        tokens: The attacker's plaintext records, each a frozenset of feature-tagged tokens
            (``"2:ma"`` is the bigram "ma" of feature 2).
        plaintext: ``(n_plain, w / 8)`` uint8: ``tokens`` packed, one bit per distinct token
            (``vocab`` gives the bit order), so that Dice on these rows is the exact
            token-set Dice.
        vocab: The distinct tokens, in bit order.
        truth: For each encoding, the plaintext row of the same person, or -1 when the
            person is not in the attacker's register. Attacks never read it.
        schema: The schema the encodings were made with (public knowledge).
        decoy: Which encodings are decoys (a hardening option); they are nobody and are
            not counted as records to re-identify.
    """

    encodings: NDArray[np.uint8]
    tokens: list[frozenset[str]]
    plaintext: NDArray[np.uint8]
    vocab: list[str]
    truth: NDArray[np.int64]
    schema: LinkageSchema
    decoy: NDArray[np.bool_] | None = None

    @property
    def records(self) -> int:
        """Encoded records to re-identify (decoys are nobody)."""
        return len(self.truth) - (int(self.decoy.sum()) if self.decoy is not None else 0)

    @property
    def in_register(self) -> int:
        """Encodings whose person the attacker's register holds (the most it can get)."""
        return int((self.truth >= 0).sum())


def plaintext_tokens(frame: pd.DataFrame, schema: LinkageSchema) -> list[frozenset[str]]:
    """Each record's tokens as the encoder forms them from the schema's features.

    Columns are read by feature name; a feature without a column, or an invalid value, is
    missing (no tokens), as the encoder treats it.
    """
    features = [f for f in schema.hashed_features if not f.extension.derived_from]
    derived = [f for f in schema.hashed_features if f.extension.derived_from]
    cache: dict[tuple[int, str], tuple[str, tuple[str, ...]]] = {}

    def canonical(feature: Any, raw: str) -> tuple[str, tuple[str, ...]]:
        key = (feature.index, raw)
        hit = cache.get(key)
        if hit is None:
            value = raw.strip()
            name = feature.extension.standardise
            try:
                if value and name is not None:
                    value = STANDARDISERS[name](value)
            except InvalidValue:
                value = ""
            hit = (value, _tokens_of(feature, value))
            cache[key] = hit
        return hit

    columns = {
        f.name: frame[f.name].fillna("").astype(str).tolist()
        for f in features
        if f.name in frame.columns
    }
    out: list[frozenset[str]] = []
    for row in range(len(frame)):
        record: dict[str, str] = {}
        tokens: list[str] = []
        for feature in features:
            column = columns.get(feature.name)
            if column is None:
                continue
            value, toks = canonical(feature, column[row])
            record[feature.name] = value
            tokens.extend(toks)
        for feature, value in zip(derived, schema.derived_values(record).values(), strict=True):
            tokens.extend(_tokens_of(feature, value))
        out.append(frozenset(tokens))
    return out


def _tokens_of(feature: Any, value: str) -> tuple[str, ...]:
    if not value:
        return ()
    formatted = value if feature.extension.derived_from else feature.spec.format_value(value)
    comparator = feature.spec.hashing_properties.comparator
    return tuple(f"{feature.index}:{t}" for t in comparator.tokenize(str(formatted)))


def token_matrix(tokens: list[frozenset[str]]) -> tuple[NDArray[np.uint8], list[str]]:
    """Pack token sets as one bit per distinct token (width rounded up to 64 bits)."""
    vocab = sorted(set().union(*tokens)) if tokens else []
    index = {t: i for i, t in enumerate(vocab)}
    width = max(64, -(-len(vocab) // 64) * 64)
    dense = np.zeros((len(tokens), width), dtype=bool)
    for row, toks in enumerate(tokens):
        dense[row, [index[t] for t in toks]] = True
    return np.packbits(dense, axis=1), vocab


def attack_data(
    schema: LinkageSchema,
    n: int,
    *,
    overlap: float = 1.0,
    seed: int = 0,
    population_seed: int | None = None,
    secret: Secret | None = None,
) -> AttackData:
    """Encode ``n`` people with ``schema`` and give the attacker a register of ``n`` people.

    Args:
        schema: The schema the partner encodes with.
        n: Records encoded, and records in the attacker's register.
        overlap: Share of the encoded people that the register holds; the rest of the
            register are other people of the same population.
        seed: Draws which people are encoded and which are in the register.
        population_seed: Seed of the synthetic population (default: ``seed``).
        secret: The partnership's secret (default: a fresh random one, unknown to the
            attacker as it would be).
    """
    if not 0.0 <= overlap <= 1.0:
        raise ValueError("overlap must be in [0, 1]")
    rng = np.random.default_rng(seed)
    extra = n - round(overlap * n)
    people = generate_population(
        n + extra, population_seed if population_seed is not None else seed
    )
    order = rng.permutation(len(people))
    encoded_people = order[:n]
    shared = encoded_people[: n - extra]
    register_people = rng.permutation(np.concatenate([shared, order[n:]]))
    frame = people.drop(columns=["person_id"]).reset_index(drop=True)
    frame.insert(0, "local_id", [f"r{i}" for i in range(len(frame))])
    secret = secret or Secret(secrets.token_hex(32))
    encoded = encode_dataframe(
        frame.iloc[encoded_people].reset_index(drop=True),
        schema,
        secret,
        EncodeOptions(id_column="local_id"),
    )
    # Decoys (a hardening option) have no local ID: they are in the encodings, nobody's.
    ids = encoded.local_ids or []
    decoy = np.array([not i for i in ids], dtype=bool)
    if encoded.bits.shape[0] - int(decoy.sum()) != n:
        raise ValueError("some synthetic records were rejected")
    position = np.full(len(people), -1, dtype=np.int64)
    position[register_people] = np.arange(len(register_people))
    truth = np.full(encoded.bits.shape[0], -1, dtype=np.int64)
    # Local IDs are "r<row of the population frame>".
    truth[~decoy] = position[np.array([int(i[1:]) for i in ids if i], dtype=np.int64)]
    tokens = plaintext_tokens(frame.iloc[register_people].reset_index(drop=True), schema)
    plaintext, vocab = token_matrix(tokens)
    return AttackData(
        encodings=np.ascontiguousarray(encoded.bits),
        tokens=tokens,
        plaintext=plaintext,
        vocab=vocab,
        truth=truth,
        schema=schema,
        decoy=decoy,
    )


def reidentified(data: AttackData, guesses: NDArray[np.int64]) -> float:
    """Share of the encoded records re-identified.

    Share of the encoded records (decoys aside) whose guessed register row is their own
    person's.

    Raises:
        ValueError: the guesses are not one to one (a register row guessed twice).
    """
    if guesses.shape != data.truth.shape:
        raise ValueError("one guess (or -1) per encoding expected")
    made = guesses[guesses >= 0]
    if np.unique(made).size != made.size:
        raise ValueError("guesses must be one to one")
    records = data.records
    if not records:
        return 0.0
    return float(((guesses == data.truth) & (data.truth >= 0)).sum() / records)


def dice_profile(bits: NDArray[np.uint8], anchors: NDArray[np.uint8]) -> NDArray[np.float32]:
    """Dice of every row of ``bits`` with every row of ``anchors``.

    Dice of every packed row of ``bits`` with every packed row of ``anchors`` (dense
    ``(n, a)``): the similarity fingerprint the anchor-based attacks match on.

    Counts are float32 matrix products of the unpacked bits, exact for filters this short,
    done a few million cells at a time.
    """
    anchor_bits = np.unpackbits(anchors, axis=1).astype(np.float32)
    anchor_pop = anchor_bits.sum(axis=1)
    out = np.empty((bits.shape[0], anchors.shape[0]), dtype=np.float32)
    step = max(16, (1 << 23) // max(bits.shape[1] * 8, 1))
    for start in range(0, bits.shape[0], step):
        block = np.unpackbits(bits[start : start + step], axis=1).astype(np.float32)
        common = block @ anchor_bits.T
        total = block.sum(axis=1)[:, None] + anchor_pop[None, :]
        out[start : start + step] = 2 * common / np.maximum(total, 1)
    return out
