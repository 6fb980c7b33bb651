"""The pattern-mining attack: re-identify Bloom-filter encodings from the patterns tokens set.

Christen, Ranbaduge, Vatsalan and Schnell (PAKDD 2017 / TKDE 2018): each frequent token's bit
positions are found as the largest set of positions that are set together in that token's
share of the encodings (:mod:`benchmarks.privacy.token_patterns`); encodings and plaintext
records are partitioned by whether they hold the token, and the mining goes on with the next
most frequent token in each partition (:func:`mine_token_positions`). Each encoding then has
tokens it must contain (all positions set) and cannot contain (a position unset); it is
matched one to one with the register record whose identified tokens agree best
(:func:`pattern_mining_attack`). The attacker's knowledge is that of
:mod:`benchmarks.privacy.frequency`'s docstring; ``python -m benchmarks.privacy.frequency``
runs both attacks.

This module is over 500 lines because the miner (:class:`_Miner`) is one algorithm whose
state (identified tokens, noise estimates, partitions) every step reads and updates; its
statistical tests, which need none of that state, are in
:mod:`benchmarks.privacy.token_patterns`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from benchmarks.privacy.population import AttackData
from benchmarks.privacy.token_patterns import expected_by_chance, mine_pattern, prune_positions
from benchmarks.privacy.token_view import (
    I64,
    U8,
    Incidence,
    Progress,
    attacker_view,
    feature_of,
    members_by_group,
    quiet,
    token_strategies,
    value_groups,
)
from linkage_unit.matching import iter_dice_candidates

__all__ = [
    "MinedPatterns",
    "mine_token_positions",
    "pattern_mining_attack",
    "token_assignments_correct",
]

_CHUNK = 4096
#: Tokens held by the same records but this share are twins (mined as one).
_TWIN_SLACK = 0.01


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
# Scoring (reads the truth; the attacks never do)
# --------------------------------------------------------------------------------------


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
    view = attacker_view(data)
    present = data.truth >= 0
    sets = _contained(data.encodings[present], [mined.positions[t] for t in names])
    index = {t: i for i, t in enumerate(view.vocab)}
    holders = Incidence.of(view).dense(data.truth[present], [index[t] for t in names])
    both = (sets & holders).sum(axis=0)
    recall = both / np.maximum(holders.sum(axis=0), 1)
    precision = both / np.maximum(sets.sum(axis=0), 1)
    return int(((recall >= 0.97) & (precision >= 0.5)).sum()), len(names)


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
    say = progress or quiet
    mined = mined if mined is not None else mine_token_positions(data, progress=progress)
    n_enc = data.encodings.shape[0]
    guesses = np.full(n_enc, -1, dtype=np.int64)
    if not mined.positions or n_enc == 0 or not data.tokens:
        return guesses
    view = attacker_view(data)
    names = sorted(mined.positions)
    enc_tokens = _contained(data.encodings, [mined.positions[t] for t in names])
    index = {t: i for i, t in enumerate(view.vocab)}
    everyone = np.arange(len(view.tokens), dtype=np.int64)
    reg_tokens = Incidence.of(view).dense(everyone, [index[t] for t in names])
    say(
        f"pattern mining: {len(names)} tokens identified; an encoding contains "
        f"{enc_tokens.sum(axis=1).mean():.1f} of them on average"
    )
    val_group, _ = value_groups(data.tokens)
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
    ``tries`` in turn) the itemset is mined column-wise (:func:`mine_pattern`): seeds are
    the pairs of positions that co-occur often enough and most exceed chance, grown
    greedily up to ``k``, and a set is kept when its support, less what chance explains,
    lies nearer ``q``'s count than its neighbours'. It is accepted when it has at least
    ``min_pattern_share`` of ``k`` positions, holds over all encodings (positions that all
    of ``q``'s holders here but not elsewhere set are pruned; :func:`prune_positions`),
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
    data = attacker_view(data)
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
    say = progress or quiet
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
    """A partition of encodings and register records, and its decided tokens.

    Encodings, the register records that should be the same people, and the tokens
    decided on the way (``positive``: those they all hold).
    """

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
        self.incidence = Incidence.of(data)
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
        candidates = mine_pattern(
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
                pattern = prune_positions(self.columns[candidate], self.band, candidate, shortest)
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
        """Whether a pattern's support in a partition is within the band.

        Whether the encodings of ``enc`` holding ``pattern``, less those expected to hold
        it by chance, number within ``band``.
        """
        columns = self.columns[np.ix_(pattern, enc)]
        held = int(columns.all(axis=0).sum())
        density = np.zeros(self.length, dtype=np.int64)
        density[pattern] = columns.sum(axis=1, dtype=np.int64)
        support = held - expected_by_chance(density, pattern, held, enc.size)
        return band[0] <= support <= band[1]

    def _where(self, pattern: I64, band: tuple[float, float]) -> int:
        """Whether a pattern's support is below, within or above the band.

        -1, 0 or 1: the encodings holding ``pattern``, less those expected to hold it by
        chance, number below, within or above ``band``.
        """
        held = int(self.columns[pattern].all(axis=0).sum())
        support = held - expected_by_chance(self.density, pattern, held, self.n_enc)
        return -1 if support < band[0] else (1 if support > band[1] else 0)

    def _band(self, count: float, records: int, encodings: int) -> tuple[float, float]:
        """A token's expected holders among the encodings, and its support band.

        Expected holders among ``encodings`` of a token ``count`` of ``records`` hold, and
        the half-width of its support band.
        """
        f = count / records
        expected = f * encodings
        sd = np.sqrt(expected * (1.0 - f) * (1.0 + encodings / records))
        return expected, self.support_z * self.noise.scale * float(sd)

    def _fits(self, holders: I64, pattern: I64) -> bool:
        """Whether a pattern plausibly belongs to the token its holders hold.

        Whether ``pattern`` is plausibly that of the token ``holders`` (register rows) hold,
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
        by_chance = expected_by_chance(self.density, pattern, int(held.sum()), self.n_enc)
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
    """How many positions a token sets in a record.

    How many positions a token sets in a record (the schema's strategy, the attacker's
    knowledge): fixed per feature for ``bitsPerToken``, shared among the feature's tokens
    for ``bitsPerFeature`` (clkhash gives the first tokens one more; a token's positions
    are a prefix of one keyed sequence, so those set in every record are the fewest).
    """

    feature_of_token: I64
    per_record: NDArray[np.int32]  # (records, features): the feature's tokens in a record
    strategies: dict[int, Callable[[int], tuple[int, ...]]]
    fewest_anywhere: I64  # per token: the fewest positions it sets in any record

    @classmethod
    def of(cls, data: AttackData, incidence: Incidence) -> _TokenBits:
        feature = np.fromiter((feature_of(t) for t in data.vocab), np.int64, len(data.vocab))
        width = int(feature.max()) + 1 if feature.size else 1
        records = len(data.tokens)
        cells = incidence.rows * width + feature[incidence.indices]
        counted = np.bincount(cells, minlength=records * width).reshape(records, width)
        per_record: NDArray[np.int32] = counted.astype(np.int32)
        strategies = token_strategies(data.schema)
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


def _weight_bands(weights: I64, bands: int = 20) -> I64:
    """Each encoding's band of Hamming weight (by quantiles, ``0 .. bands - 1``)."""
    if not weights.size:
        return np.zeros(0, dtype=np.int64)
    edges = np.quantile(weights, np.linspace(0.0, 1.0, bands + 1)[1:-1])
    return np.searchsorted(edges, weights, side="right").astype(np.int64)


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
    members = members_by_group(val_group)
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
