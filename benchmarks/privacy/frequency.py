"""Frequency and pattern-mining attacks: re-identify Bloom-filter encodings from frequencies alone.

Both attacks need no known pairs: the attacker holds a register of plaintext identities from
a population like the encoded one and knows the schema (features, tokenisation, the number of
bits each token or feature sets, the filter length) but not the secret.

* :func:`frequency_attack` (Kuzu et al. 2011; Christen et al. 2017) aligns what repeats:
  identical encodings with identical plaintext records by the rank of their frequencies, and
  a filter's Hamming weight with the number of hash insertions a record's tokens make, where
  that weight fits only one plaintext value.
* :func:`pattern_mining_attack` (Christen, Ranbaduge, Vatsalan and Schnell, PAKDD 2017 /
  TKDE 2018) finds each frequent token's bit positions as the largest set of positions that
  are set together in that token's share of the encodings, partitions encodings and
  plaintext records by whether they hold the token, and goes on with the next most frequent
  token in each partition (:func:`mine_token_positions`). Each encoding then has tokens it
  must contain (all positions set) and cannot contain (a position unset); it is matched one
  to one with the register record whose identified tokens agree best.

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
import dataclasses
import json
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from benchmarks.privacy import encodings
from benchmarks.privacy.population import AttackData, attack_data, reidentified
from encoder.schema import LinkageSchema, load_schema, parse_schema
from linkage_unit.matching import iter_dice_candidates

__all__ = [
    "MinedPatterns",
    "frequency_attack",
    "main",
    "mine_token_positions",
    "pattern_mining_attack",
    "token_assignments_correct",
    "value_reidentified",
    "weak_schema",
]

Progress = Callable[[str], None]
I64 = NDArray[np.int64]
U8 = NDArray[np.uint8]

_CHUNK = 4096
#: Tokens held by the same records but this share are twins (mined as one).
_TWIN_SLACK = 0.01
#: Joins a record salt and a token in the attacker's view of a salted register.
_SALTED = "\x1f"


@dataclass(frozen=True)
class MinedPatterns:
    """What the pattern mining learnt.

    Attributes:
        positions: Each identified token's bit positions (sorted), the token tagged with its
            feature as in :attr:`AttackData.tokens`.
        partitions: Partitions examined.
        attempts: Times a pattern was mined for a token not yet identified.
        rejected: Attempts that found no pattern passing the checks.
        ambiguous: Partitions where no unidentified token's count stood out from its
            neighbours' enough to tell which token a pattern belongs to.
    """

    positions: dict[str, I64]
    partitions: int
    attempts: int
    rejected: int
    ambiguous: int


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
    group, _ = _value_groups(data.tokens)
    made = (guesses >= 0) & (data.truth >= 0)
    right = group[guesses[made]] == group[data.truth[made]]
    return float(right.sum() / guesses.size)


def token_assignments_correct(data: AttackData, mined: MinedPatterns) -> tuple[int, int]:
    """How many of the identified tokens got correct positions, of how many identified.

    Positions are correct when every encoding whose person holds the token sets them all
    (allowing 3% for a position of a token that nearly always comes with it) and at least
    half of the encodings that set them all hold the token. Only encodings of people in
    the register count.
    """
    names = sorted(mined.positions)
    if not names:
        return 0, 0
    view = _attacker_view(data)
    present = data.truth >= 0
    sets = _contained(data.encodings[present], [mined.positions[t] for t in names])
    index = {t: i for i, t in enumerate(view.vocab)}
    holders = _Incidence.of(view).dense(data.truth[present], [index[t] for t in names])
    both = (sets & holders).sum(axis=0)
    recall = both / np.maximum(holders.sum(axis=0), 1)
    precision = both / np.maximum(sets.sum(axis=0), 1)
    return int(((recall >= 0.97) & (precision >= 0.5)).sum()), len(names)


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
    say = progress or _quiet
    n_enc, n_reg = data.encodings.shape[0], len(data.tokens)
    guesses = np.full(n_enc, -1, dtype=np.int64)
    if n_enc == 0 or n_reg == 0:
        return guesses
    scale = n_enc / n_reg
    enc_group, enc_sizes = _groups_of_rows(data.encodings)
    val_group, val_sizes = _value_groups(data.tokens)
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
    members = _members_by_group(val_group)
    rows_of = _members_by_group(enc_group)
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


# --------------------------------------------------------------------------------------
# Pattern-mining attack
# --------------------------------------------------------------------------------------


def pattern_mining_attack(
    data: AttackData,
    *,
    min_score: float = 0.5,
    mined: MinedPatterns | None = None,
    progress: Progress | None = None,
) -> I64:
    """Re-identify encodings from the token positions :func:`mine_token_positions` finds.

    Each encoding must contain the identified tokens whose positions are all set and cannot
    contain those with a position unset; a register record's identified tokens are read
    off its plaintext. Both are compared by Dice on the identified tokens (a record holding
    a token the encoding cannot contain, or lacking one it must, scores lower), signature
    against signature since many share one when few tokens are identified. An encoding is
    placed with its best record signature when that scores above every other and belongs
    to records of one identity only (namesakes share a signature; which of them is which
    stays a coin flip); placed encodings then take records of that identity one to one,
    best score and widest margin first.

    Args:
        data: Encodings and the attacker's register.
        min_score: Least Dice (on identified tokens) for a guess.
        mined: The mining's result, when it was run already.
        progress: Called with a line of progress.

    Returns:
        One register row per encoding (-1: no guess), one to one.
    """
    say = progress or _quiet
    mined = mined if mined is not None else mine_token_positions(data, progress=progress)
    n_enc = data.encodings.shape[0]
    guesses = np.full(n_enc, -1, dtype=np.int64)
    if not mined.positions or n_enc == 0 or not data.tokens:
        return guesses
    view = _attacker_view(data)
    names = sorted(mined.positions)
    enc_tokens = _contained(data.encodings, [mined.positions[t] for t in names])
    index = {t: i for i, t in enumerate(view.vocab)}
    everyone = np.arange(len(view.tokens), dtype=np.int64)
    reg_tokens = _Incidence.of(view).dense(everyone, [index[t] for t in names])
    say(
        f"pattern mining: {len(names)} tokens identified; an encoding contains "
        f"{enc_tokens.sum(axis=1).mean():.1f} of them on average"
    )
    val_group, _ = _value_groups(data.tokens)
    guesses = _resolve(
        np.packbits(enc_tokens, axis=1), np.packbits(reg_tokens, axis=1), val_group, min_score
    )
    say(f"pattern mining: {int((guesses >= 0).sum())} encodings guessed")
    return guesses


def mine_token_positions(
    data: AttackData,
    *,
    min_partition: int | None = None,
    min_token_count: float = 10.0,
    support_z: float = 3.0,
    gap_z: float = 2.0,
    profile_z: float = 5.0,
    min_pattern_share: float = 0.5,
    sample_rows: int = 4096,
    tries: int = 3,
    passes: int = 3,
    seed: int = 0,
    progress: Progress | None = None,
) -> MinedPatterns:
    """Find tokens' bit positions by recursive partitioning and frequent-pattern mining.

    The papers' procedure. A partition is a set of encodings and the register records that
    should be the same people (at first, all of both). A token ``q`` held by a share ``f``
    of a partition's records sets all of its ``k`` positions in about ``f`` of its
    encodings (hashing is deterministic), so a set of positions set together in that many
    encodings, a frequent itemset at that support, is ``q``'s when no other token has a
    similar share. ``k`` is known from the schema (``bitsPerToken``, or ``bitsPerFeature``
    shared among the feature's tokens: then the fewest any holder gets).

    In each partition, the candidates are the tokens not identified yet whose count stands
    out from the nearest counts of other such tokens, above and below, by ``gap_z``
    standard deviations of the difference (the papers' minimum frequency difference; at
    the root this is the most frequent token). For the most frequent of them (up to
    ``tries`` in turn) the itemset is mined column-wise (:func:`_mine_pattern`): seeds are
    the pairs of positions that co-occur often enough and most exceed chance, grown
    greedily up to ``k``, and a set is kept when its support, less what chance explains,
    lies nearer ``q``'s count than its neighbours'. It is accepted when it has at least
    ``min_pattern_share`` of ``k`` positions, holds over all encodings (positions that all
    of ``q``'s holders here but not elsewhere set are pruned; :func:`_prune_positions`),
    its support over all encodings is within ``support_z`` deviations of ``q``'s count in
    the whole register (the papers' confidence check), its co-occurrence with every
    identified token matches ``q``'s in the register within ``profile_z`` deviations, and
    it is not mostly an identified token's positions.

    The partition then splits on ``q``: the encodings holding all its positions with the
    records holding ``q``, and the rest with the rest; without a new token it splits on its
    most frequent identified token not decided yet. Both halves are processed in turn
    (halves smaller than ``min_partition`` are not; nor tokens expected fewer than
    ``min_token_count`` times). A token identified once is known everywhere, and the
    splits on it make the conditional frequencies in which other tokens stand out. Passes
    from the root are repeated while they identify new tokens (up to ``passes``).

    The deviations are those of two independent samples, scaled by how far the splits made
    so far actually strayed from their register partitions (:class:`_Noise`): when the
    register holds the very people encoded, the attacker sees the splits agree exactly and
    trusts smaller differences.

    Args:
        data: Encodings and the attacker's register.
        min_partition: Smallest partition (encodings and records) that is processed;
            default 20, or one in 2,000 encodings if more (the work grows with the number
            of partitions).
        min_token_count: Smallest expected number of holders of a token to mine it.
        support_z: Half-width of a token's support band, in standard deviations of its
            count (its own sampling and the register's).
        gap_z: Minimum frequency difference, in standard deviations of the difference.
        profile_z: Largest deviation of a pattern's co-occurrence with an identified token.
        min_pattern_share: Shortest acceptable pattern, as a share of the token's ``k``.
        sample_rows: Rows sampled to estimate the co-occurrence of positions.
        tries: Most tokens tried in a partition, in order of frequency, until one's pattern
            is found.
        passes: Most passes over the partitions from the root; a pass starts with the tokens
            and the noise level the earlier ones learnt, so tokens that did not stand out
            then may now (it stops early when a pass identifies nothing new).
        seed: Seeds the row sample.
        progress: Called with a line of progress now and then.

    Returns:
        The identified tokens' positions and counts of what the mining did.
    """
    data = _attacker_view(data)
    if data.encodings.shape[0] == 0 or not data.tokens:
        return MinedPatterns(positions={}, partitions=0, attempts=0, rejected=0, ambiguous=0)
    miner = _Miner(
        data,
        min_token_count=min_token_count,
        support_z=support_z,
        gap_z=gap_z,
        profile_z=profile_z,
        min_pattern_share=min_pattern_share,
        sample_rows=sample_rows,
        tries=tries,
        rng=np.random.default_rng(seed),
    )
    say = progress or _quiet
    if min_partition is None:
        min_partition = max(20, data.encodings.shape[0] // 2000)
    none = np.zeros(0, dtype=np.int64)
    root = _Partition(
        np.arange(data.encodings.shape[0], dtype=np.int64),
        np.arange(len(data.tokens), dtype=np.int64),
        none,
        none,
    )
    for round_ in range(passes):
        before = len(miner.known)
        stack = [root]
        while stack:
            part = stack.pop()
            if miner.partitions % 1000 == 999:
                say(f"pattern mining: {miner.partitions + 1} partitions, {len(miner.known)} tokens")
            for side in miner.process(part):
                if side.enc.size >= min_partition and side.reg.size >= min_partition:
                    stack.append(side)
        say(f"pattern mining: pass {round_ + 1}, {len(miner.known)} tokens identified")
        if len(miner.known) == before:
            break
    say(
        f"pattern mining: {miner.partitions} partitions, {miner.attempts} patterns mined, "
        f"{miner.rejected} rejected, {miner.ambiguous} without a token standing out; "
        f"{len(miner.known)} tokens identified"
    )
    return MinedPatterns(
        positions={data.vocab[t]: p for t, p in miner.known.items()},
        partitions=miner.partitions,
        attempts=miner.attempts,
        rejected=miner.rejected,
        ambiguous=miner.ambiguous,
    )


@dataclass(frozen=True)
class _Partition:
    """Encodings, the register records that should be the same people, and the tokens
    decided on the way (``positive``: those they all hold)."""

    enc: I64
    reg: I64
    decided: I64
    positive: I64


class _Miner:
    """The state of the mining: identified tokens and what is known about them."""

    def __init__(
        self,
        data: AttackData,
        *,
        min_token_count: float,
        support_z: float,
        gap_z: float,
        profile_z: float,
        min_pattern_share: float,
        sample_rows: int,
        tries: int,
        rng: np.random.Generator,
    ) -> None:
        bits = np.unpackbits(data.encodings, axis=1)
        band = _weight_bands(bits.sum(axis=1, dtype=np.int64))
        # Encodings are kept sorted by band of Hamming weight (a partition, a sorted subset,
        # then has its bands in runs) and also position by position (``columns``: a
        # position's bits over all encodings are contiguous).
        order = np.argsort(band, kind="stable")
        self.bits = np.ascontiguousarray(bits[order])
        self.band = band[order]
        self.columns = np.ascontiguousarray(self.bits.T)
        self.n_enc, self.length = self.bits.shape
        self.n_reg = len(data.tokens)
        self.incidence = _Incidence.of(data)
        self.token_bits = _TokenBits.of(data, self.incidence)
        self.density = self.bits.sum(axis=0, dtype=np.int64)
        self.holders: dict[int, NDArray[np.bool_]] = {}
        self.twins: dict[tuple[int, int], bool] = {}
        # A token with fewer than two positions in some record cannot be told by a set of
        # positions set together (nor confused with one).
        self.mineable = self.token_bits.fewest_anywhere >= 2
        self.min_token_count = min_token_count
        self.support_z = support_z
        self.gap_z = gap_z
        self.profile_z = profile_z
        self.min_pattern_share = min_pattern_share
        self.sample_rows = sample_rows
        self.tries = tries
        self.rng = rng
        self.noise = _Noise()
        self.known: dict[int, I64] = {}
        self.order: list[int] = []  # known tokens in the column order of ``contained``
        self.column_of: dict[int, int] = {}
        self.contained = np.zeros((self.n_enc, 64), dtype=np.uint8)
        self.owner = np.full(self.length, -1, dtype=np.int64)  # a known token per position
        self.partitions = self.attempts = self.rejected = self.ambiguous = 0
        # (partition size, first and last encoding, token) of failed attempts: a later pass
        # meeting the same partition and token does not try again.
        self.failed: set[tuple[int, int, int, int]] = set()

    def process(self, part: _Partition) -> list[_Partition]:
        """Mine a token in a partition if one stands out, and split it."""
        self.partitions += 1
        counts = self.incidence.counts(part.reg)
        counts[part.decided] = 0.0
        # A token every record holds neither splits the partition nor can be mined in it:
        # its positions are set in every encoding, like those of other such tokens.
        counts[counts >= part.reg.size] = 0.0
        unit = self._mine(part, counts)
        if unit is None:
            known = _most_frequent_known(counts, self.known, part.reg.size)
            unit = None if known is None else (known,)
        if unit is None:
            return []
        has = self.contained[part.enc, self.column_of[unit[0]]].astype(bool)
        holds = self._holders(unit, part.reg)
        self.noise.observe(int(has.sum()), int(holds.sum()), part.enc.size, part.reg.size)
        members = np.asarray(unit, dtype=np.int64)
        decided = np.append(part.decided, members)
        return [
            _Partition(part.enc[~has], part.reg[~holds], decided, part.positive),
            _Partition(part.enc[has], part.reg[holds], decided, np.append(part.positive, members)),
        ]

    def _mine(self, part: _Partition, counts: NDArray[np.float64]) -> tuple[int, ...] | None:
        """Identify a token standing out in the partition; it (with its twins), or None."""
        scale = part.enc.size / part.reg.size
        candidates = self.mineable.copy()
        candidates[list(self.known)] = False
        units, unit_counts = self._units(counts, candidates, part.reg, scale)
        standing = _standing_out(
            unit_counts, part.reg.size, scale, self.min_token_count, self.gap_z * self.noise.scale
        )
        if not standing:
            self.ambiguous += 1
        tries = 0
        # The support may be anywhere nearer q's count than its neighbours' (the minimum
        # frequency difference keeps them apart).
        for index, low, high in standing:
            unit = units[index]
            tried = (part.enc.size, int(part.enc[0]), int(part.enc[-1]), unit[0])
            if tried in self.failed:
                continue  # the same partition and token, in an earlier pass
            if tries == self.tries:
                break
            tries += 1
            self.attempts += 1
            found = self._pattern(part, unit, (low, high), unit_counts[index] * scale)
            if found is not None:
                self._learn(unit, found)
                return unit
            self.rejected += 1
            self.failed.add(tried)
        return None

    def _units(
        self, counts: NDArray[np.float64], candidates: NDArray[np.bool_], reg: I64, scale: float
    ) -> tuple[list[tuple[int, ...]], NDArray[np.float64]]:
        """A partition's candidate tokens, most frequent first, twins merged; their counts.

        Twins are tokens held by the same records, here and in the whole register (all but
        ``_TWIN_SLACK`` of them, e.g. a year's "19" and its leading " 1"): no frequency tells
        their positions apart, and neither would stand out from the other, so they are
        mined as one token whose positions are both's (and, holding the same records, each
        is then taken to have those positions).
        """
        viable = np.flatnonzero(candidates & (counts * scale >= self.min_token_count))
        order = viable[np.argsort(-counts[viable], kind="stable")]
        units: list[tuple[int, ...]] = []
        sizes: list[float] = []
        last: NDArray[np.bool_] | None = None  # holders of the last unit, once needed
        for token in order.tolist():
            count = float(counts[token])
            close = units and count >= (1.0 - _TWIN_SLACK) * sizes[-1]
            if close and self._twins(units[-1][0], token):
                if last is None:
                    last = self._holders(units[-1], reg)
                shared = last & self._holders((token,), reg)
                together = float(shared.sum())
                if together >= (1.0 - _TWIN_SLACK) * max(count, sizes[-1]):
                    units[-1] = (*units[-1], token)
                    sizes[-1], last = together, shared
                    continue
            units.append((token,))
            sizes.append(count)
            last = None
        return units, np.asarray(sizes, dtype=np.float64)

    def _pattern(
        self, part: _Partition, unit: tuple[int, ...], band: tuple[float, float], target: float
    ) -> I64 | None:
        """Mine a token's (or twins') pattern in a partition and check it; it, or None."""
        holders = part.reg[self._holders(unit, part.reg)]
        k = sum(self.token_bits.fewest(q, holders) for q in unit)
        shortest = max(2, int(np.ceil(self.min_pattern_share * k)))
        excluded = np.zeros(self.length, dtype=bool)
        for t in part.positive.tolist():
            excluded[self.known[t]] = True
        candidates = _mine_pattern(
            self.bits,
            part.enc,
            band,
            target,
            k,
            self.band,
            excluded,
            self.owner,
            self.rng,
            self.sample_rows,
        )
        everyone = self._holders(unit, np.arange(self.n_reg, dtype=np.int64))
        expected, spread = self._band(float(everyone.sum()), self.n_reg, self.n_enc)
        overall = band if part.enc.size == self.n_enc else (expected - spread, expected + spread)
        for candidate in candidates:
            # The confidence check again over all encodings (at the root, the same). A
            # position of a token that co-occurs with q in this partition (all of q's
            # holders there hold it) cuts the support there: it is pruned and the support
            # checked again. Pruning only adds encodings, so one above the band is out.
            pattern: I64 | None = candidate
            where = self._where(candidate, overall)
            if where < 0:
                pattern = _prune_positions(self.columns[candidate], self.band, candidate, shortest)
                if pattern is not None and self._where(pattern, overall) != 0:
                    pattern = None
            elif where > 0:
                pattern = None
            if (
                pattern is not None
                and pattern.size >= shortest
                and (pattern is candidate or self._in_partition_band(pattern, part.enc, band))
                and self._fits(np.flatnonzero(everyone), pattern)
            ):
                return pattern
        return None

    def _in_partition_band(self, pattern: I64, enc: I64, band: tuple[float, float]) -> bool:
        """Whether the encodings of ``enc`` holding ``pattern``, less those expected to hold
        it by chance, number within ``band``."""
        columns = self.columns[np.ix_(pattern, enc)]
        held = int(columns.all(axis=0).sum())
        density = np.zeros(self.length, dtype=np.int64)
        density[pattern] = columns.sum(axis=1, dtype=np.int64)
        support = held - _by_chance(density, pattern, held, enc.size)
        return band[0] <= support <= band[1]

    def _where(self, pattern: I64, band: tuple[float, float]) -> int:
        """-1, 0 or 1: the encodings holding ``pattern``, less those expected to hold it by
        chance, number below, within or above ``band``."""
        held = int(self.columns[pattern].all(axis=0).sum())
        support = held - _by_chance(self.density, pattern, held, self.n_enc)
        return -1 if support < band[0] else (1 if support > band[1] else 0)

    def _band(self, count: float, records: int, encodings: int) -> tuple[float, float]:
        """Expected holders among ``encodings`` of a token ``count`` of ``records`` hold, and
        the half-width of its support band."""
        f = count / records
        expected = f * encodings
        sd = np.sqrt(expected * (1.0 - f) * (1.0 + encodings / records))
        return expected, self.support_z * self.noise.scale * float(sd)

    def _fits(self, holders: I64, pattern: I64) -> bool:
        """Whether ``pattern`` is plausibly that of the token ``holders`` (register rows) hold,
        beyond its support.

        It must not be mostly one identified token's positions, and the encodings holding it
        must hold each identified token about as often as the token's holders in the
        register do (scaled): a pattern of another token with a similar frequency has
        another profile.
        """
        owners = self.owner[pattern]
        owners = owners[owners >= 0]
        if owners.size and np.bincount(owners).max() * 2 > pattern.size:
            return False
        if not self.order:
            return True
        held = self.columns[pattern].all(axis=0)
        by_chance = _by_chance(self.density, pattern, int(held.sum()), self.n_enc)
        columns = len(self.order)
        seen = self.contained[held, :columns].sum(axis=0, dtype=np.float64)
        ratio = self.n_enc / self.n_reg
        together = self.incidence.counts(holders)[self.order]
        expected = together * ratio
        # Encodings holding the pattern by chance hold the others at their usual rates.
        rates = self.contained[:, :columns].mean(axis=0, dtype=np.float64)
        expected = expected + by_chance * rates
        sd = np.sqrt((expected + 1.0) * (1.0 + ratio)) * self.noise.scale
        return bool(np.all(np.abs(seen - expected) <= self.profile_z * sd))

    def _learn(self, unit: tuple[int, ...], pattern: I64) -> None:
        fresh = self.owner[pattern] < 0
        self.owner[pattern[fresh]] = unit[0]
        if len(self.order) + len(unit) > self.contained.shape[1]:
            grown = np.zeros((self.n_enc, 2 * self.contained.shape[1] + len(unit)), np.uint8)
            grown[:, : self.contained.shape[1]] = self.contained
            self.contained = grown
        holds = self.columns[pattern].all(axis=0)
        for q in unit:
            self.known[q] = pattern
            self.contained[:, len(self.order)] = holds
            self.column_of[q] = len(self.order)
            self.order.append(q)

    def _twins(self, a: int, b: int) -> bool:
        """Whether tokens ``a`` and ``b`` are held by the same records of the register."""
        key = (min(a, b), max(a, b))
        known = self.twins.get(key)
        if known is None:
            one, other = self.incidence.holders(a), self.incidence.holders(b)
            shared = np.intersect1d(one, other, assume_unique=True).size
            known = shared >= (1.0 - _TWIN_SLACK) * max(one.size, other.size)
            self.twins[key] = known
        return known

    def _holders(self, unit: tuple[int, ...], reg: I64) -> NDArray[np.bool_]:
        """Which of the records ``reg`` hold all the tokens of ``unit``."""
        out = np.ones(reg.size, dtype=bool)
        for token in unit:
            mask = self.holders.get(token)
            if mask is None:
                mask = np.zeros(self.n_reg, dtype=bool)
                mask[self.incidence.holders(token)] = True
                if token in self.known:
                    self.holders[token] = mask  # split on again and again
            out &= mask[reg]
        return out


class _Noise:
    """How far encoding partitions stray from their register partitions, learnt on the way.

    A token held by ``c`` of a partition's ``m`` records is expected in ``c * n / m`` of its
    ``n`` encodings, give or take the binomial deviation of two independent samples. When
    the register holds the very people encoded the splits agree far better than that, and
    an attacker sees it: the ratio of observed to binomial deviations (root mean square over
    the splits made, starting from a prior of independent samples worth ``prior`` splits)
    scales the gap and support tests, down to ``floor``.
    """

    def __init__(self, prior: float = 2.0, floor: float = 0.1) -> None:
        self._sum = prior
        self._weight = prior
        self._floor = floor

    @property
    def scale(self) -> float:
        return max(self._floor, float(np.sqrt(self._sum / self._weight)))

    def observe(self, got: int, holders: int, n: int, m: int) -> None:
        f = holders / m
        if not 0.0 < f < 1.0:
            return
        expected = f * n
        sd = np.sqrt(expected * (1.0 - f) * (1.0 + n / m))
        self._sum += float((got - expected) / sd) ** 2
        self._weight += 1.0


def _standing_out(
    counts: NDArray[np.float64], size: int, scale: float, min_count: float, gap_z: float
) -> list[tuple[int, float, float]]:
    """The candidates whose counts stand out from their neighbours', most frequent first.

    ``counts``: the candidates' counts among a partition's ``size`` records (the tokens not
    identified yet that a pattern could belong to). Neighbours are the nearest counts above
    and below; both differences must exceed ``gap_z`` standard deviations (binomial counts
    in the encodings, plus the register's own sampling).

    Returns:
        Each such candidate (its index in ``counts``) with the midpoints to its neighbours'
        expected counts in the encodings (below, above).
    """
    order = np.argsort(-counts, kind="stable")
    c = counts[order] * scale
    viable = int(np.searchsorted(-c, -min_count, side="right"))
    if viable == 0:
        return []
    f = np.minimum(counts[order] / size, 1.0)
    var = c * (1.0 - f) * (1.0 + scale)
    padded_c = np.concatenate([[np.inf], c[: viable + 1], [0.0]])
    padded_v = np.concatenate([[0.0], var[: viable + 1], [0.0]])
    here, v = padded_c[1 : viable + 1], padded_v[1 : viable + 1]
    up = padded_c[:viable] - here >= gap_z * np.sqrt(v + padded_v[:viable])
    down = here - padded_c[2 : viable + 2] >= gap_z * np.sqrt(v + padded_v[2 : viable + 2])
    return [
        (int(order[i]), (here[i] + padded_c[i + 2]) / 2.0, (here[i] + padded_c[i]) / 2.0)
        for i in np.flatnonzero(up & down).tolist()
    ]


@dataclass(frozen=True)
class _TokenBits:
    """How many positions a token sets in a record (the schema's strategy, the attacker's
    knowledge): fixed per feature for ``bitsPerToken``, shared among the feature's tokens
    for ``bitsPerFeature`` (clkhash gives the first tokens one more; a token's positions
    are a prefix of one keyed sequence, so those set in every record are the fewest)."""

    feature_of_token: I64
    per_record: NDArray[np.int32]  # (records, features): the feature's tokens in a record
    strategies: dict[int, Callable[[int], tuple[int, ...]]]
    fewest_anywhere: I64  # per token: the fewest positions it sets in any record

    @classmethod
    def of(cls, data: AttackData, incidence: _Incidence) -> _TokenBits:
        feature = np.fromiter((_feature_of(t) for t in data.vocab), np.int64, len(data.vocab))
        width = int(feature.max()) + 1 if feature.size else 1
        records = len(data.tokens)
        cells = incidence.rows * width + feature[incidence.indices]
        counted = np.bincount(cells, minlength=records * width).reshape(records, width)
        per_record: NDArray[np.int32] = counted.astype(np.int32)
        strategies = _strategies(data.schema)
        # The most tokens a holder's feature has, per token: the fewest bits it sets.
        most = np.zeros(feature.size, dtype=np.int64)
        sizes = per_record[incidence.rows, feature[incidence.indices]]
        np.maximum.at(most, incidence.indices, sizes)
        fewest = np.array(
            [
                min(strategies[int(f)](int(n))) if n > 0 else 0
                for f, n in zip(feature, most, strict=True)
            ],
            dtype=np.int64,
        )
        return cls(feature, per_record, strategies, fewest)

    def fewest(self, token: int, records: I64) -> int:
        """The fewest positions ``token`` sets in any of ``records`` (which hold it)."""
        feature = int(self.feature_of_token[token])
        sizes = np.unique(self.per_record[records, feature])
        strategy = self.strategies[feature]
        return min((min(strategy(int(n))) for n in sizes if n > 0), default=0)


def _most_frequent_known(
    counts: NDArray[np.float64], known: dict[int, I64], size: int
) -> int | None:
    """The most frequent known undecided token that some but not all records hold."""
    if not known:
        return None
    tokens = np.fromiter(known, np.int64, len(known))
    c = counts[tokens]
    useful = (c > 0) & (c < size)
    if not useful.any():
        return None
    return int(tokens[useful][np.argmax(c[useful])])


def _mine_pattern(
    bits: U8,
    enc: I64,
    band: tuple[float, float],
    target: float,
    cap: int,
    band_of: I64,
    excluded: NDArray[np.bool_],
    owner: I64,
    rng: np.random.Generator,
    sample_rows: int,
    seeds: int = 24,
    keep: int = 3,
) -> list[I64]:
    """Sets of positions (up to ``cap``) set together in a number of ``enc`` within ``band``:
    candidate maximal frequent itemsets, found column-wise.

    Each seed is the pair of candidate positions (each set often enough) that co-occur at
    least as often as the band's low end and most exceed chance, among pairs no earlier set
    holds both of (another token's set, or a mix, must not hide q's); it grows greedily by
    the position set in most of the encodings holding all chosen ones (:func:`_grow`). Seeds
    and growth are worked out on a sample of rows, supports on all of ``enc``; a grown set
    is pruned of positions that not all its holders here set (:func:`_prune_positions`:
    another token's, joined while the cap allowed) and kept when its support, less what
    chance explains, is in the band. Positions set in every encoding of the partition are
    no candidates: they say nothing about which hold the token; nor are ``excluded`` ones,
    nor a pair of one identified token's (``owner``) positions.

    Returns:
        The sets kept (at most ``keep``, from at most ``seeds`` seeds), longest first: a pair
        of positions two tokens happen to share co-occurs often but grows no further.
    """
    low, high = band
    if cap < 2:
        return []
    part = bits[enc]
    density = part.sum(axis=0, dtype=np.int64)
    cand = np.flatnonzero((density >= low) & (density < enc.size) & ~excluded)
    if cand.size < 2:
        return []
    sampled = enc.size > sample_rows
    rows = part[rng.choice(enc.size, sample_rows, False)] if sampled else part
    sample = np.ascontiguousarray(rows[:, cand])
    floats = sample.astype(np.float32)
    together = floats.T @ floats
    ratio = sample.shape[0] / enc.size
    # A true pair's count in a sample may fall short of the scaled band by chance (two
    # hypergeometric deviations). There is no upper bound: other tokens set both
    # positions of a pair often, and correlated ones more often than independence says;
    # the grown set's support is what is checked.
    spread = 2.0 * np.sqrt(max(target * ratio * (1.0 - target / enc.size) * (1.0 - ratio), 1.0))
    s_low = low * ratio - (spread if sampled else 0.0)
    alone = np.diag(together).copy()
    excess = together.copy()
    excess -= np.outer(alone, alone / sample.shape[0])
    np.putmask(excess, together < s_low, -np.inf)
    np.fill_diagonal(excess, -np.inf)
    # Two positions of one known token are that token's pair, not a new one's.
    owned = np.flatnonzero(owner[cand] >= 0)
    if owned.size:
        block = excess[np.ix_(owned, owned)]
        np.putmask(block, owner[cand[owned]][:, None] == owner[cand[owned]][None, :], -np.inf)
        excess[np.ix_(owned, owned)] = block
    flat = excess.ravel()
    valid = np.flatnonzero(flat > 0)
    look = min(valid.size, 128 * seeds)
    if look < valid.size:
        valid = valid[np.argpartition(flat[valid], valid.size - look)[valid.size - look :]]
    order = valid[np.argsort(-flat[valid], kind="stable")]
    grown: list[set[int]] = []
    found: list[I64] = []
    for index in order.tolist():
        a, b = divmod(index, cand.size)
        # Later seeds are pairs that no set grown so far holds both of: another token's
        # set, or a mix, must not hide q's, which may share some of its positions.
        if a > b or any(a in g and b in g for g in grown):
            continue
        if len(grown) == seeds or len(found) >= keep:
            break
        chosen = _grow(sample, [a, b], density[cand], s_low, cap)
        grown.append(set(chosen))
        positions = np.sort(cand[chosen]).astype(np.int64)
        support = int(part[:, positions].all(axis=1).sum())
        if support > high + _by_chance(density, positions, support, enc.size):
            continue  # a more frequent token's (pruning only adds encodings)
        # A position held by most but not all of q's encodings (another token's, that
        # nearly always comes with q here) may have joined while the cap allowed.
        pruned = _prune_positions(
            np.ascontiguousarray(part[:, positions].T), band_of[enc], positions, 2
        )
        if pruned is None or not _in_band(part, density, pruned, band):
            continue
        found.append(pruned)
        if pruned.size >= cap - 1:
            break  # as long as q's can be (one position may be shared with a known token)
    found.sort(key=lambda p: -p.size)
    return found


def _grow(sample: U8, seed: list[int], density: I64, low: float, cap: int) -> list[int]:
    """Grow a seed pair of columns of ``sample`` greedily into a frequent itemset.

    The next column is the one set in most rows holding all chosen ones (among equals the
    one of least ``density``: a dense position is set in these rows by other tokens as
    easily as by q), while that count is at least ``low``, up to ``cap`` columns. Rows and
    columns that can no longer count are dropped as it goes.
    """
    chosen = list(seed)
    rows = sample[sample[:, seed[0]].astype(bool) & sample[:, seed[1]].astype(bool)]
    live = np.arange(sample.shape[1])
    free = np.ones(sample.shape[1], dtype=bool)
    free[seed] = False
    while len(chosen) < cap and rows.shape[0] >= low:
        count = rows.sum(axis=0, dtype=np.int64)
        keep = (count >= low) & free
        if not keep.any():
            break
        rows, live, count, free = rows[:, keep], live[keep], count[keep], free[keep]
        top = np.flatnonzero(count == count.max())
        pick = int(top[np.argmin(density[live[top]])])
        chosen.append(int(live[pick]))
        free[pick] = False
        rows = rows[rows[:, pick] == 1]
    return chosen


def _in_band(part: U8, density: I64, positions: I64, band: tuple[float, float]) -> bool:
    """Whether the rows of ``part`` holding all ``positions``, less those expected to hold
    them by chance, number within ``band``."""
    support = int(part[:, positions].all(axis=1).sum())
    by_chance = _by_chance(density, positions, support, part.shape[0])
    return band[0] <= support - by_chance <= band[1]


def _prune_positions(
    columns: U8, band: I64, pattern: I64, shortest: int, tolerance: float = 0.02
) -> I64 | None:
    """``pattern`` less the positions that are not all one token's.

    Hashing is deterministic: an encoding that holds the token sets every one of its
    positions, so encodings that hold many of a pattern's positions but not all are, for a
    true pattern, encodings without the token that hold those by chance. A pattern mined in
    a partition may hold positions of another token that all of q's holders there also
    hold, or be a mix of two tokens' positions; over more encodings many then hold one part
    but not the other. Chance is modelled per band of Hamming weight (encodings with more
    bits set hold more of any positions) as independent positions at their densities in
    the band (a Poisson-binomial count); while the encodings that hold at least ``t`` of
    the ``m`` positions but not all exceed that by more than ``tolerance`` of the holders
    (and the Poisson margin), for some ``t`` from ``m - 1`` down to two thirds of ``m``, the
    position they miss most is dropped.

    Args:
        columns: ``(m, n)``: the pattern's positions over the encodings checked.
        band: Each of those encodings' band of Hamming weight, in ascending order.
        pattern: The positions.
        shortest: Fewest positions to keep.
        tolerance: Share of the holders that may hold all but some positions.

    Returns:
        The pruned pattern, or None when fewer than ``shortest`` positions would remain.
    """
    starts = np.searchsorted(band, np.arange(int(band[-1]) + 1 if band.size else 1))
    keep = np.ones(pattern.size, dtype=bool)
    while True:
        size = int(keep.sum())
        if size < shortest:
            return None
        kept = columns[keep]
        present = kept.sum(axis=0, dtype=np.int64)
        held = present == size
        expected = _by_chance_tail(kept, starts, held)
        partial = np.bincount(present, minlength=size + 1)[:size]
        near = np.cumsum(partial[::-1])[::-1]  # near[t]: encodings with t..size-1 positions
        margin = 3.0 * np.sqrt(expected[:size]) + 1.0 + tolerance * int(held.sum())
        failing = np.flatnonzero(near > expected[:size] + margin)
        # Below two thirds, chance (tokens colliding on a few positions each) dominates.
        failing = failing[failing >= -(-2 * size // 3)]
        if failing.size == 0:
            return pattern[keep]
        t = int(failing.max())
        rows = (present >= t) & ~held
        missed = (kept[:, rows] == 0).sum(axis=1)
        keep[np.flatnonzero(keep)[int(np.argmax(missed))]] = False


def _by_chance_tail(kept: U8, starts: I64, held: NDArray[np.bool_]) -> NDArray[np.float64]:
    """Expected encodings not in ``held`` with at least ``t`` of the rows of ``kept``
    ``(m, n)``, by ``t``.

    Positions are taken as independent within bands of Hamming weight (encodings sorted by
    band, ``starts``: where each band begins), at their densities there outside ``held``.
    """
    size = kept.shape[0]
    rest = ~held
    ends = np.append(starts[1:], rest.size)
    nonempty = ends > starts
    count = np.zeros(starts.size)
    sums = np.zeros((starts.size, size))
    if nonempty.any():
        first = starts[nonempty]
        count[nonempty] = np.add.reduceat(rest, first, dtype=np.int64)
        sums[nonempty] = np.add.reduceat(kept * rest, first, axis=1, dtype=np.int64).T
    tail = _at_least(sums / np.maximum(count, 1.0)[:, None])
    out: NDArray[np.float64] = (count[:, None] * (tail - tail[:, size : size + 1])).sum(axis=0)
    return out


def _at_least(rho: NDArray[np.float64]) -> NDArray[np.float64]:
    """``P(X >= t)`` for ``t = 0 .. m``, per row of ``rho`` ``(rows, m)``: X the number of
    independent successes with those probabilities."""
    rows, size = rho.shape
    pmf = np.zeros((rows, size + 1))
    pmf[:, 0] = 1.0
    for j in range(size):
        p = rho[:, j : j + 1]
        pmf[:, 1:] = pmf[:, 1:] * (1.0 - p) + pmf[:, :-1] * p
        pmf[:, 0] *= 1.0 - p[:, 0]
    out: NDArray[np.float64] = np.cumsum(pmf[:, ::-1], axis=1)[:, ::-1]
    return out


def _weight_bands(weights: I64, bands: int = 20) -> I64:
    """Each encoding's band of Hamming weight (by quantiles, ``0 .. bands - 1``)."""
    if not weights.size:
        return np.zeros(0, dtype=np.int64)
    edges = np.quantile(weights, np.linspace(0.0, 1.0, bands + 1)[1:-1])
    return np.searchsorted(edges, weights, side="right").astype(np.int64)


def _by_chance(density: I64, positions: I64, held: int, total: int) -> float:
    """Expected encodings that hold ``positions`` without the token: those outside the
    ``held`` rows, times the product of the positions' densities among them."""
    others = total - held
    if others <= 0:
        return 0.0
    return others * float(np.prod(np.clip((density[positions] - held) / others, 0.0, 1.0)))


def _contained(encodings: U8, patterns: Sequence[I64]) -> NDArray[np.bool_]:
    """``(n, len(patterns))``: whether all of each pattern's positions are set."""
    length = encodings.shape[1] * 8
    member = np.zeros((length, len(patterns)), dtype=np.float32)
    for column, pattern in enumerate(patterns):
        member[pattern, column] = 1.0
    need = member.sum(axis=0)
    out = np.zeros((encodings.shape[0], len(patterns)), dtype=bool)
    for lo in range(0, encodings.shape[0], _CHUNK):
        bits = np.unpackbits(encodings[lo : lo + _CHUNK], axis=1).astype(np.float32)
        out[lo : lo + _CHUNK] = bits @ member >= need - 0.5
    return out


def _resolve(enc_sig: U8, reg_sig: U8, val_group: I64, min_score: float) -> I64:
    """One to one guesses from encodings' and records' identified tokens (packed rows).

    Encodings and records are compared by signature (their identified tokens; many share
    one when few tokens are identified): an encoding's best record signature must score
    above every other (a tie leaves it unguessed) and belong to records of one value only.
    The encodings so placed are then given records of that value, best score and widest
    margin first, while unused ones remain.
    """
    guesses = np.full(enc_sig.shape[0], -1, dtype=np.int64)
    enc_id, enc_rows = _unique_rows(enc_sig)
    reg_id, reg_rows = _unique_rows(reg_sig)
    # The value of each record signature, or -1 when records of several values share it.
    pairs = np.unique(np.column_stack([reg_id, val_group]), axis=0)
    per_sig = np.bincount(pairs[:, 0], minlength=reg_rows.shape[0])
    value = np.full(reg_rows.shape[0], -1, dtype=np.int64)
    single = per_sig[pairs[:, 0]] == 1
    value[pairs[single, 0]] = pairs[single, 1]
    best = np.full(enc_rows.shape[0], -1, dtype=np.int64)
    score = np.zeros(enc_rows.shape[0])
    rival = np.zeros(enc_rows.shape[0])
    for tile_i, tile_j, tile_s in iter_dice_candidates(enc_rows, reg_rows, min_score):
        order = np.lexsort((-tile_s, tile_i))
        i, j, s = tile_i[order], tile_j[order], tile_s[order]
        first = np.flatnonzero(np.r_[True, i[1:] != i[:-1]])
        best[i[first]] = j[first]
        score[i[first]] = s[first]
        second = first + 1
        has_second = (second < i.size) & (np.r_[i, -1][second] == i[first])
        rival[i[first[has_second]]] = s[second[has_second]]
    placed = (best >= 0) & (score > rival)
    placed[placed] = value[best[placed]] >= 0
    rows = np.flatnonzero(placed[enc_id])
    sig = enc_id[rows]
    order = np.lexsort((rows, -(score[sig] - rival[sig]), -score[sig]))
    members = _members_by_group(val_group)
    next_free = np.zeros(len(members), dtype=np.int64)
    for row in rows[order].tolist():
        group = int(value[best[enc_id[row]]])
        if next_free[group] < members[group].size:
            guesses[row] = members[group][next_free[group]]
            next_free[group] += 1
    return guesses


def _unique_rows(rows: U8) -> tuple[I64, U8]:
    """Each row's index among the distinct rows, and the distinct rows."""
    if rows.shape[0] == 0:
        return np.zeros(0, dtype=np.int64), rows
    contiguous = np.ascontiguousarray(rows)
    keyed = contiguous.view(np.dtype((np.void, contiguous.shape[1]))).ravel()
    _, first, inverse = np.unique(keyed, return_index=True, return_inverse=True)
    return inverse.astype(np.int64).ravel(), contiguous[first]


def _attacker_view(data: AttackData) -> AttackData:
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
    """A feature's value rebuilt from its clkhash positional unigrams (``"3 8"``: the third
    character is 8), as the salt is cut from it; other tokens, joined in order, stand for
    the value as well as the attacker can tell."""
    parts: list[tuple[int, str]] = []
    for token in tokens:
        position, _, char = token.partition(" ")
        if not position.isdigit() or len(char) != 1:
            return "".join(sorted(tokens))
        parts.append((int(position), char))
    return "".join(char for _, char in sorted(parts))


@dataclass(frozen=True)
class _Incidence:
    """The register's token sets as a 0/1 matrix, by record and by token (compressed)."""

    indptr: I64  # per record, into ``indices``
    indices: I64  # the tokens (vocabulary rows) of each record in turn
    rows: I64  # the record of each entry of ``indices``
    token_ptr: I64  # per token, into ``token_rows``
    token_rows: I64  # the records holding each token in turn
    tokens: int

    @classmethod
    def of(cls, data: AttackData) -> _Incidence:
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
        """The entries of ``records``: their positions in ``indices`` and whose they are
        (as positions in ``records``)."""
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


def _groups_of_rows(bits: U8) -> tuple[I64, I64]:
    """Group id of each row (identical rows share one) and each group's size."""
    rows = np.ascontiguousarray(bits)
    keyed = rows.view(np.dtype((np.void, rows.dtype.itemsize * rows.shape[1]))).ravel()
    _, inverse, sizes = np.unique(keyed, return_inverse=True, return_counts=True)
    return inverse.astype(np.int64).ravel(), sizes.astype(np.int64)


def _value_groups(tokens: Sequence[frozenset[str]]) -> tuple[I64, I64]:
    """Group id of each register record (identical token sets share one) and group sizes."""
    ids: dict[frozenset[str], int] = {}
    group = np.fromiter((ids.setdefault(t, len(ids)) for t in tokens), np.int64, len(tokens))
    return group, np.bincount(group, minlength=len(ids)).astype(np.int64)


def _members_by_group(group: I64) -> list[I64]:
    order = np.argsort(group, kind="stable")
    bounds = np.searchsorted(group[order], np.arange(int(group.max()) + 2 if group.size else 1))
    return [order[bounds[g] : bounds[g + 1]] for g in range(bounds.size - 1)]


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
    strategies = _strategies(schema)
    out = np.zeros(len(tokens), dtype=np.int64)
    for row, record in enumerate(tokens):
        per_feature: dict[int, int] = {}
        for token in record:
            feature = _feature_of(token)
            per_feature[feature] = per_feature.get(feature, 0) + 1
        out[row] = sum(sum(strategies[f](count)) for f, count in per_feature.items())
    return out


def _strategies(schema: LinkageSchema) -> dict[int, Callable[[int], tuple[int, ...]]]:
    """Per feature index: bits per token given the feature's number of tokens (clkhash's)."""
    return {
        f.index: f.spec.hashing_properties.strategy.bits_per_token for f in schema.hashed_features
    }


def _feature_of(token: str) -> int:
    return int(token.rsplit(_SALTED, 1)[-1].split(":", 1)[0])


def _quiet(_line: str) -> None:
    return None


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
