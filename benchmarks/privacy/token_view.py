"""The frequency attacks' view of a register: records as (salted) token sets, grouped."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from benchmarks.privacy.population import AttackData
from encoder.schema import LinkageSchema

__all__ = [
    "I64",
    "U8",
    "Incidence",
    "Progress",
    "attacker_view",
    "feature_of",
    "members_by_group",
    "quiet",
    "token_strategies",
    "value_groups",
]

Progress = Callable[[str], None]
I64 = NDArray[np.int64]
U8 = NDArray[np.uint8]

#: Joins a record salt and a token in the attacker's view of a salted register.
_SALTED = "\x1f"


def attacker_view(data: AttackData) -> AttackData:
    """The register's tokens as the attacker must count them under the schema's hardening.

    A record salt (a slice of a feature, e.g. the year of birth) permutes the positions of
    every record of a salt group alike: a token has different positions in each group, so
    the attacker, who knows the schema and reads the salt off its own plaintext, counts
    each (salt, token) as a token of its own. Without a salt the register is as given.
    """
    hardening = getattr(data.schema, "hardening", None)
    salt = getattr(hardening, "record_salt", None)
    if salt is None or any(_SALTED in t for t in data.vocab[:1]):
        return data
    feature = next(f for f in data.schema.hashed_features if f.name == salt.feature)
    prefix = f"{feature.index}:"
    tokens: list[frozenset[str]] = []
    for record in data.tokens:
        value = _value_of([t[len(prefix) :] for t in record if t.startswith(prefix)])
        cut = value[salt.start : salt.end]
        tokens.append(frozenset(f"{cut}{_SALTED}{t}" for t in record))
    vocab = sorted(set().union(*tokens)) if tokens else []
    return dataclasses.replace(data, tokens=tokens, vocab=vocab)


def _value_of(tokens: list[str]) -> str:
    """A feature's value rebuilt from its tokens.

    A feature's value rebuilt from its clkhash positional unigrams (``"3 8"``: the third
    character is 8), as the salt is cut from it; other tokens, joined in order, stand for
    the value as well as the attacker can tell.
    """
    parts: list[tuple[int, str]] = []
    for token in tokens:
        position, _, char = token.partition(" ")
        if not position.isdigit() or len(char) != 1:
            return "".join(sorted(tokens))
        parts.append((int(position), char))
    return "".join(char for _, char in sorted(parts))


@dataclass(frozen=True)
class Incidence:
    """The register's token sets as a 0/1 matrix, by record and by token (compressed)."""

    indptr: I64  # per record, into ``indices``
    indices: I64  # the tokens (vocabulary rows) of each record in turn
    rows: I64  # the record of each entry of ``indices``
    token_ptr: I64  # per token, into ``token_rows``
    token_rows: I64  # the records holding each token in turn
    tokens: int

    @classmethod
    def of(cls, data: AttackData) -> Incidence:
        """The incidence of a register's token sets."""
        index = {t: i for i, t in enumerate(data.vocab)}
        lengths = np.fromiter((len(t) for t in data.tokens), np.int64, len(data.tokens))
        indptr = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
        indices = np.fromiter(
            (index[t] for record in data.tokens for t in record), np.int64, int(indptr[-1])
        )
        rows = np.repeat(np.arange(len(data.tokens), dtype=np.int64), lengths)
        order = np.argsort(indices, kind="stable")
        token_ptr = np.searchsorted(indices[order], np.arange(len(data.vocab) + 1))
        return cls(indptr, indices, rows, token_ptr.astype(np.int64), rows[order], len(index))

    def _entries(self, records: I64) -> tuple[I64, I64]:
        """Where the records' entries are and whose they are.

        The entries of ``records``: their positions in ``indices`` and whose they are
        (as positions in ``records``).
        """
        starts = self.indptr[records]
        lengths = self.indptr[records + 1] - starts
        owner = np.repeat(np.arange(records.size, dtype=np.int64), lengths)
        shift = np.repeat(starts - (np.cumsum(lengths) - lengths), lengths)
        return shift + np.arange(owner.size, dtype=np.int64), owner

    def counts(self, records: I64) -> NDArray[np.float64]:
        """How many of ``records`` hold each token."""
        entries, _ = self._entries(records)
        return np.bincount(self.indices[entries], minlength=self.tokens).astype(np.float64)

    def holders(self, token: int) -> I64:
        """The records holding ``token``."""
        return self.token_rows[self.token_ptr[token] : self.token_ptr[token + 1]]

    def dense(self, records: I64, tokens: Sequence[int]) -> NDArray[np.bool_]:
        """``(len(records), len(tokens))``: whether each record holds each token."""
        column = np.full(self.tokens, -1, dtype=np.int64)
        column[np.asarray(tokens, dtype=np.int64)] = np.arange(len(tokens))
        entries, owner = self._entries(records)
        wanted = column[self.indices[entries]]
        out = np.zeros((records.size, len(tokens)), dtype=bool)
        out[owner[wanted >= 0], wanted[wanted >= 0]] = True
        return out


def value_groups(tokens: Sequence[frozenset[str]]) -> tuple[I64, I64]:
    """Group id of each register record (identical token sets share one) and group sizes."""
    ids: dict[frozenset[str], int] = {}
    group = np.fromiter((ids.setdefault(t, len(ids)) for t in tokens), np.int64, len(tokens))
    return group, np.bincount(group, minlength=len(ids)).astype(np.int64)


def members_by_group(group: I64) -> list[I64]:
    """The members of each group, by group id (ids from 0, as :func:`value_groups` gives)."""
    order = np.argsort(group, kind="stable")
    bounds = np.searchsorted(group[order], np.arange(int(group.max()) + 2 if group.size else 1))
    return [order[bounds[g] : bounds[g + 1]] for g in range(bounds.size - 1)]


def token_strategies(schema: LinkageSchema) -> dict[int, Callable[[int], tuple[int, ...]]]:
    """Per feature index: bits per token given the feature's number of tokens (clkhash's)."""
    return {
        f.index: f.spec.hashing_properties.strategy.bits_per_token for f in schema.hashed_features
    }


def feature_of(token: str) -> int:
    """The feature index a (possibly salted) token is tagged with."""
    return int(token.rsplit(_SALTED, 1)[-1].split(":", 1)[0])


def quiet(_line: str) -> None:
    """Progress that reports nothing (the attacks' default)."""
    return None
