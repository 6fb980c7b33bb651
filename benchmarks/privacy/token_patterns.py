"""One token's bit positions: the pattern search of the mining attack and its chance tests."""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

from benchmarks.privacy.token_view import I64, U8

__all__ = [
    "expected_by_chance",
    "mine_pattern",
    "prune_positions",
]


def mine_pattern(
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
    """Candidate patterns: sets of positions set together in a band of encodings.

    Sets of positions (up to ``cap``) set together in a number of ``enc`` within ``band``:
    candidate maximal frequent itemsets, found column-wise.

    Each seed is the pair of candidate positions (each set often enough) that co-occur at
    least as often as the band's low end and most exceed chance, among pairs no earlier set
    holds both of (another token's set, or a mix, must not hide q's); it grows greedily by
    the position set in most of the encodings holding all chosen ones (:func:`_grow`). Seeds
    and growth are worked out on a sample of rows, supports on all of ``enc``; a grown set
    is pruned of positions that not all its holders here set (:func:`prune_positions`:
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
        if support > high + expected_by_chance(density, positions, support, enc.size):
            continue  # a more frequent token's (pruning only adds encodings)
        # A position held by most but not all of q's encodings (another token's, that
        # nearly always comes with q here) may have joined while the cap allowed.
        pruned = prune_positions(
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
    """Whether a set of positions' support in ``part`` is within the band.

    Whether the rows of ``part`` holding all ``positions``, less those expected to hold
    them by chance, number within ``band``.
    """
    support = int(part[:, positions].all(axis=1).sum())
    by_chance = expected_by_chance(density, positions, support, part.shape[0])
    return band[0] <= support - by_chance <= band[1]


def prune_positions(
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
    """Expected encodings holding a pattern's rows by chance, by how many rows.

    Expected encodings not in ``held`` with at least ``t`` of the rows of ``kept``
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
    """Tail probabilities of a sum of independent successes.

    ``P(X >= t)`` for ``t = 0 .. m``, per row of ``rho`` ``(rows, m)``: X the number of
    independent successes with those probabilities.
    """
    rows, size = rho.shape
    pmf = np.zeros((rows, size + 1))
    pmf[:, 0] = 1.0
    for j in range(size):
        p = rho[:, j : j + 1]
        pmf[:, 1:] = pmf[:, 1:] * (1.0 - p) + pmf[:, :-1] * p
        pmf[:, 0] *= 1.0 - p[:, 0]
    out: NDArray[np.float64] = np.cumsum(pmf[:, ::-1], axis=1)[:, ::-1]
    return out


def expected_by_chance(density: I64, positions: I64, held: int, total: int) -> float:
    """Expected encodings that hold ``positions`` without the token.

    Expected encodings that hold ``positions`` without the token: those outside the
    ``held`` rows, times the product of the positions' densities among them.
    """
    others = total - held
    if others <= 0:
        return 0.0
    return others * float(np.prod(np.clip((density[positions] - held) / others, 0.0, 1.0)))
