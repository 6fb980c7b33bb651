"""Frequency and pattern-mining attacks: re-identify Bloom-filter encodings from frequencies alone.

Both attacks need no known pairs: the attacker holds a register of plaintext identities from
a population like the encoded one and knows the schema (features, tokenisation, the number of
bits each token or feature sets, the filter length) but not the secret.

* :func:`frequency_attack` (Kuzu et al. 2011; Christen et al. 2017) aligns what repeats:
  identical encodings with identical plaintext records by the rank of their frequencies, and
  a filter's Hamming weight with the number of hash insertions a record's tokens make, where
  that weight fits only one plaintext value.
* pattern mining (Christen, Ranbaduge, Vatsalan and Schnell, PAKDD 2017 / TKDE 2018, in
  :mod:`benchmarks.privacy.pattern_mining`) finds each frequent token's bit positions as the
  largest set of positions that are set together in that token's share of the encodings,
  partitions encodings and plaintext records by whether they hold the token, and goes on
  with the next most frequent token in each partition. Each encoding then has tokens it must
  contain (all positions set) and cannot contain (a position unset); it is matched one to
  one with the register record whose identified tokens agree best.

Under a record salt (``hardening.recordSalt``) the attacker, who knows the schema and reads
each register record's salt off its plaintext, counts every (salt, token) as a token of its
own; other hardening is attacked as if absent.

``python -m benchmarks.privacy.frequency`` measures both on deliberately weak schemas (plain
CLKs of the names, optionally with the date of birth, with few hash functions per token: the
published validation setting), on ``pace-default`` and on ``pace-default`` without its
hardening::

    python -m benchmarks.privacy.frequency --schemas weak,pace-default --records 10000
"""

from __future__ import annotations

import argparse
import copy
import json
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from benchmarks.privacy import encodings
from benchmarks.privacy.pattern_mining import (
    mine_token_positions,
    pattern_mining_attack,
    token_assignments_correct,
)
from benchmarks.privacy.population import AttackData, attack_data, reidentified
from benchmarks.privacy.token_view import (
    I64,
    U8,
    Progress,
    feature_of,
    members_by_group,
    quiet,
    token_strategies,
    value_groups,
)
from encoder.schema import LinkageSchema, load_schema, parse_schema

__all__ = [
    "frequency_attack",
    "main",
    "value_reidentified",
    "weak_schema",
]

# --------------------------------------------------------------------------------------
# The weak schema of the published validations
# --------------------------------------------------------------------------------------


def weak_schema(bits_per_token: int = 15, *, date_of_birth: bool = False) -> LinkageSchema:
    """A plain CLK of given name and surname (and optionally the date of birth) in 1024 bits.

    The setting the pattern-mining papers validate on: bigrams of few fields, each inserted
    with a small fixed number of hash functions (clkhash ``bitsPerToken``), no derived
    features (:func:`benchmarks.privacy.encodings.weak_schema`, names only by default).

    Args:
        bits_per_token: Hash functions per bigram (the papers' k).
        date_of_birth: Also encode the date of birth (``%Y-%m-%d``) as bigrams.
    """
    doc = encodings.weak_schema(bits_per_token, date_of_birth=date_of_birth)
    suffix = "-dob" if date_of_birth else ""
    return parse_schema(doc, f"<weak names{suffix} k={bits_per_token}>")


# --------------------------------------------------------------------------------------
# Scoring (reads the truth; the attacks never do)
# --------------------------------------------------------------------------------------


def value_reidentified(data: AttackData, guesses: I64) -> float:
    """Share of encodings whose guessed record has their person's identity.

    As :func:`~benchmarks.privacy.population.reidentified`, but a guess of another person
    with exactly the same identifiers counts: the attacker has learnt who the encoding is
    as far as its identifiers can tell, and which of the namesakes it is stays a coin flip.
    """
    if guesses.shape != data.truth.shape:
        raise ValueError("one guess (or -1) per encoding expected")
    if not guesses.size:
        return 0.0
    group, _ = value_groups(data.tokens)
    made = (guesses >= 0) & (data.truth >= 0)
    right = group[guesses[made]] == group[data.truth[made]]
    return float(right.sum() / guesses.size)


# --------------------------------------------------------------------------------------
# Frequency attack
# --------------------------------------------------------------------------------------


def frequency_attack(
    data: AttackData,
    *,
    weight_z: float = 3.0,
    size_z: float = 3.0,
    progress: Progress | None = None,
) -> I64:
    """Align repeated encodings and telling Hamming weights with the register's frequencies.

    The encoding is deterministic, so identical encodings are people with identical
    identities, and a filter's Hamming weight reflects how many hash insertions its tokens
    made (the attacker knows each feature's bits per token or per feature). Three
    alignments, as a frequency attacker makes them:

    1. Groups of identical encodings and groups of identical register records, sorted by
       size: the i-th largest of each are aligned where both sizes differ from their
       neighbours' (a tie makes the rank a coin flip) and agree with each other within
       ``size_z`` Poisson deviations, scaled by the sizes of the two collections.
    2. A repeated encoding left over is aligned with a value of a compatible frequency when
       that is the only such value whose weight window holds its weight.
    3. A single encoding is aligned with a value when that is the only value in the whole
       register whose weight window holds its weight (records with unusually many or few
       tokens).

    A record's window is its expected number of set bits (``h`` insertions at uniform
    positions: the occupancy distribution) plus or minus ``weight_z`` standard deviations.
    Within aligned groups rows are paired in order: which of several people with identical
    identities is which cannot be told, and the metric counts such a guess as the coin
    flip it is.

    Args:
        data: Encodings and the attacker's register.
        weight_z: Half-width of a weight window in standard deviations.
        size_z: Tolerance on group sizes in Poisson standard deviations.
        progress: Called with a line of progress.

    Returns:
        One register row per encoding (-1: no guess), one to one.
    """
    say = progress or quiet
    n_enc, n_reg = data.encodings.shape[0], len(data.tokens)
    guesses = np.full(n_enc, -1, dtype=np.int64)
    if n_enc == 0 or n_reg == 0:
        return guesses
    scale = n_enc / n_reg
    enc_group, enc_sizes = _groups_of_rows(data.encodings)
    val_group, val_sizes = value_groups(data.tokens)
    weights = np.unpackbits(data.encodings, axis=1).sum(axis=1, dtype=np.int64)
    group_weight = np.zeros(enc_sizes.size, dtype=np.int64)
    group_weight[enc_group] = weights
    windows = _WeightWindows.of(data, val_group, val_sizes.size, weight_z)

    pairs = _align_by_frequency(enc_sizes, val_sizes, scale, size_z)
    say(f"frequency: {len(pairs)} groups of identical encodings aligned by frequency rank")
    by_weight = _align_repeated_by_weight(
        enc_sizes, val_sizes, group_weight, windows, pairs, scale, size_z
    )
    say(f"frequency: {len(by_weight)} more told apart by Hamming weight")
    members = members_by_group(val_group)
    rows_of = members_by_group(enc_group)
    used = np.zeros(n_reg, dtype=bool)
    for e_group, v_group in pairs + by_weight:
        rows, records = rows_of[e_group], members[v_group]
        take = min(rows.size, records.size)
        guesses[rows[:take]] = records[:take]
        used[records[:take]] = True

    single = windows.single(weights)
    free = np.flatnonzero((guesses < 0) & (single >= 0))
    # Encodings that single out the same value take its records, closest weight first.
    distance = np.abs(weights[free] - windows.mean[single[free]])
    free = free[np.lexsort((distance, single[free]))]
    taken = 0
    for row in free:
        for record in members[single[row]]:
            if not used[record]:
                guesses[row] = record
                used[record] = True
                taken += 1
                break
    say(f"frequency: {taken} single encodings singled out by Hamming weight")
    return guesses


@dataclass(frozen=True)
class _WeightWindows:
    """Each plaintext value's Hamming-weight window, by its number of hash insertions.

    Windows grow with the insertions ``h``, so a weight falls in the windows of a contiguous
    range of levels of ``h``; values are kept sorted by level to read such ranges off.
    """

    mean: NDArray[np.float64]  # per value group
    lo: NDArray[np.float64]  # per level
    hi: NDArray[np.float64]  # per level
    level: I64  # per value group
    order: I64  # value groups sorted by level
    start: I64  # per level (and one past the last): first position in ``order``

    @classmethod
    def of(cls, data: AttackData, group: I64, groups: int, z: float) -> _WeightWindows:
        length = data.encodings.shape[1] * 8
        first = np.full(groups, -1, dtype=np.int64)
        first[group[::-1]] = np.arange(group.size - 1, -1, -1)
        insertions = _insertions([data.tokens[r] for r in first], data.schema)
        levels, level = np.unique(insertions, return_inverse=True)
        h = levels.astype(np.float64)
        empty = (1.0 - 1.0 / length) ** h
        mean = length * (1.0 - empty)
        both = (1.0 - 2.0 / length) ** h
        var = length * (length - 1) * both + length * empty - (length * empty) ** 2
        sd = np.sqrt(np.maximum(var, 0.25))
        order = np.argsort(level, kind="stable")
        return cls(
            mean=mean[level],
            # Forced monotone (it is, at any realistic load) so that ranges are contiguous.
            lo=np.maximum.accumulate(mean - z * sd),
            hi=np.maximum.accumulate(mean + z * sd),
            level=level.astype(np.int64),
            order=order.astype(np.int64),
            start=np.searchsorted(level[order], np.arange(levels.size + 1)).astype(np.int64),
        )

    def span(self, weights: I64) -> tuple[I64, I64]:
        """Positions ``[s, e)`` in ``order`` of the values whose windows hold each weight."""
        first = np.searchsorted(self.hi, weights, side="left")
        end = np.maximum(np.searchsorted(self.lo, weights, side="right"), first)
        return self.start[first], self.start[end]

    def single(self, weights: I64) -> I64:
        """The one value whose window holds each weight, or -1 (none, or several)."""
        s, e = self.span(weights)
        out = np.full(weights.size, -1, dtype=np.int64)
        one = np.flatnonzero(e - s == 1)
        out[one] = self.order[s[one]]
        return out


def _align_repeated_by_weight(
    enc_sizes: I64,
    val_sizes: I64,
    group_weight: I64,
    windows: _WeightWindows,
    aligned: list[tuple[int, int]],
    scale: float,
    z: float,
) -> list[tuple[int, int]]:
    """Repeated encodings whose weight fits one value of a compatible frequency only."""
    taken_enc = np.zeros(enc_sizes.size, dtype=bool)
    taken_val = np.zeros(val_sizes.size, dtype=bool)
    for e, v in aligned:
        taken_enc[e], taken_val[v] = True, True
    todo = np.flatnonzero((enc_sizes >= 2) & ~taken_enc)
    first, end = windows.span(group_weight[todo])
    choice: dict[int, list[tuple[float, int]]] = {}
    for g, a, b in zip(todo.tolist(), first.tolist(), end.tolist(), strict=True):
        cands = windows.order[a:b]
        cands = cands[~taken_val[cands]]
        expected = val_sizes[cands] * scale
        fits = cands[np.abs(expected - enc_sizes[g]) <= z * np.sqrt(expected) + 0.5]
        if fits.size == 1:
            v = int(fits[0])
            choice.setdefault(v, []).append((abs(group_weight[g] - windows.mean[v]), g))
    # A value chosen by several encoding groups goes to the one whose weight fits best.
    return [(min(claims)[1], v) for v, claims in choice.items()]


def _groups_of_rows(bits: U8) -> tuple[I64, I64]:
    """Group id of each row (identical rows share one) and each group's size."""
    rows = np.ascontiguousarray(bits)
    keyed = rows.view(np.dtype((np.void, rows.dtype.itemsize * rows.shape[1]))).ravel()
    _, inverse, sizes = np.unique(keyed, return_inverse=True, return_counts=True)
    return inverse.astype(np.int64).ravel(), sizes.astype(np.int64)


def _align_by_frequency(
    enc_sizes: I64, val_sizes: I64, scale: float, z: float = 3.0
) -> list[tuple[int, int]]:
    """Pairs (encoding group, value group) whose frequency ranks align unambiguously.

    Only repeated values (size >= 2) carry frequency information. A rank is used when its
    size differs from the sizes just above and below it on both sides (a tie makes the rank
    a coin flip) and the two sizes agree within ``z`` Poisson deviations.
    """
    enc_order = np.argsort(-enc_sizes, kind="stable")
    val_order = np.argsort(-val_sizes, kind="stable")
    e = enc_sizes[enc_order]
    v = val_sizes[val_order]
    depth = int(min((e >= 2).sum(), (v >= 2).sum()))
    pairs: list[tuple[int, int]] = []
    for rank in range(depth):
        if not (_distinct_rank(e, rank) and _distinct_rank(v, rank)):
            continue
        expected = v[rank] * scale
        if abs(e[rank] - expected) > z * np.sqrt(expected) + 0.5:
            continue
        pairs.append((int(enc_order[rank]), int(val_order[rank])))
    return pairs


def _distinct_rank(sizes: I64, rank: int) -> bool:
    above = rank == 0 or sizes[rank - 1] > sizes[rank]
    below = rank + 1 >= sizes.size or sizes[rank + 1] < sizes[rank]
    return bool(above and below)


def _insertions(tokens: Sequence[frozenset[str]], schema: LinkageSchema) -> I64:
    """Hash insertions each record's tokens make (from the schema's strategies)."""
    strategies = token_strategies(schema)
    out = np.zeros(len(tokens), dtype=np.int64)
    for row, record in enumerate(tokens):
        per_feature: dict[int, int] = {}
        for token in record:
            feature = feature_of(token)
            per_feature[feature] = per_feature.get(feature, 0) + 1
        out[row] = sum(sum(strategies[f](count)) for f, count in per_feature.items())
    return out


# --------------------------------------------------------------------------------------
# Command line
# --------------------------------------------------------------------------------------

_SCHEMAS: dict[str, Callable[[], LinkageSchema]] = {
    "weak": weak_schema,
    "weak-k10": lambda: weak_schema(10),
    "weak-k20": lambda: weak_schema(20),
    "weak-dob": lambda: weak_schema(date_of_birth=True),
    "pace-default": lambda: load_schema("pace-default"),
    "pace-default-unhardened": lambda: _unhardened(load_schema("pace-default")),
}


def _unhardened(schema: LinkageSchema) -> LinkageSchema:
    """The schema without its ``hardening`` (a plain clkhash CLK of the same features)."""
    doc = copy.deepcopy(schema.raw)
    doc.pop("hardening", None)
    return parse_schema(doc, f"{schema.source} (unhardened)")


def main(argv: Sequence[str] | None = None) -> int:
    """Run both attacks on the chosen schemas and print (optionally write) the shares."""
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.privacy.frequency", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("--schemas", default="weak,pace-default", help=", ".join(_SCHEMAS))
    parser.add_argument("--records", type=int, default=10_000, help="encodings and register")
    parser.add_argument("--overlap", type=float, default=1.0, help="share of encoded in register")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--attacks", default="frequency,pattern")
    parser.add_argument("--out", type=Path, help="also write the results here (JSON)")
    args = parser.parse_args(argv)
    started = time.perf_counter()

    def log(line: str) -> None:
        print(f"[{time.perf_counter() - started:7.1f} s] {line}", flush=True)

    results: list[dict[str, Any]] = []
    for name in [s.strip() for s in args.schemas.split(",") if s.strip()]:
        if name not in _SCHEMAS:
            parser.error(f"unknown schema {name!r}; choose from {', '.join(_SCHEMAS)}")
        data = attack_data(_SCHEMAS[name](), args.records, overlap=args.overlap, seed=args.seed)
        log(f"{name}: {args.records} encodings, {data.in_register} of them in the register")
        for attack in [a.strip() for a in args.attacks.split(",") if a.strip()]:
            t0 = time.perf_counter()
            row: dict[str, Any] = {
                "schema": name,
                "records": args.records,
                "overlap": args.overlap,
                "seed": args.seed,
                "attack": attack,
            }
            if attack == "frequency":
                guesses = frequency_attack(data, progress=log)
            elif attack == "pattern":
                mined = mine_token_positions(data, progress=log)
                guesses = pattern_mining_attack(data, mined=mined, progress=log)
                correct, identified = token_assignments_correct(data, mined)
                row.update(tokens_identified=identified, tokens_correct=correct)
            else:
                parser.error(f"unknown attack {attack!r}; choose frequency or pattern")
            row.update(
                seconds=round(time.perf_counter() - t0, 1),
                guesses=int((guesses >= 0).sum()),
                reidentified=round(reidentified(data, guesses), 4),
                identity_learnt=round(value_reidentified(data, guesses), 4),
            )
            log(json.dumps(row))
            results.append(row)
    print()
    print(
        f"{'schema':<14}{'n':>8}{'overlap':>9}  {'attack':<10}{'re-identified':>14}"
        f"{'identity':>10}{'tokens':>10}{'seconds':>9}"
    )
    for row in results:
        tokens = (
            f"{row['tokens_correct']}/{row['tokens_identified']}" if "tokens_correct" in row else ""
        )
        print(
            f"{row['schema']:<14}{row['records']:>8}{row['overlap']:>9.2f}  {row['attack']:<10}"
            f"{row['reidentified']:>14.1%}{row['identity_learnt']:>10.1%}{tokens:>10}"
            f"{row['seconds']:>9.1f}"
        )
    if args.out is not None:
        args.out.write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
