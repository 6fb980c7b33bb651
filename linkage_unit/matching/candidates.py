"""Candidate pairs ``(i, j, score)``: the one type every comparison returns and every solver takes.

Row ``i`` of one party, row ``j`` of another and their Dice coefficient, as three equal-length
arrays.  :class:`Candidates` is a named tuple, so ``i, j, score = dice_candidates(...)`` keeps
working and a result compares equal to the plain triple.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

import numpy as np
from numpy.typing import ArrayLike, NDArray

__all__ = ["Candidates", "CandidatesLike"]

#: Candidates as callers may pass them: any three array-likes ``(i, j, score)``.
CandidatesLike = tuple[ArrayLike, ArrayLike, ArrayLike]


class Candidates(NamedTuple):
    """Candidate pairs: int64 rows ``i`` and ``j`` and their float64 ``score``.

    Attributes:
        i: Row of each pair in the first party's records.
        j: Row of each pair in the second party's records.
        score: Dice coefficient of each pair.
    """

    i: NDArray[np.int64]
    j: NDArray[np.int64]
    score: NDArray[np.float64]

    @classmethod
    def empty(cls) -> Candidates:
        """No pairs."""
        return cls(np.empty(0, np.int64), np.empty(0, np.int64), np.empty(0, np.float64))

    @classmethod
    def concatenate(cls, parts: Sequence[tuple[ArrayLike, ArrayLike, ArrayLike]]) -> Candidates:
        """The pairs of every part, in order (no part: :meth:`empty`)."""
        if not parts:
            return cls.empty()
        i, j, score = (np.concatenate(arrays) for arrays in zip(*parts, strict=True))
        return cls(i.astype(np.int64, copy=False), j.astype(np.int64, copy=False),
                   score.astype(np.float64, copy=False))  # fmt: skip

    @classmethod
    def checked(cls, candidates: CandidatesLike, what: str) -> Candidates:
        """Check and convert caller-supplied candidates.

        Args:
            candidates: ``(i, j, score)`` as 1-D array-likes of one length: non-negative
                integer rows and finite real scores (empty arrays of any dtype are fine).
            what: Names the candidates in error messages.

        Raises:
            ValueError: If the arrays are not 1-D or differ in length, a row is not a
                non-negative integer, or a score is not a finite real number.
        """
        ii, jj, ss = (np.asarray(a) for a in candidates)
        if ii.ndim != 1 or jj.ndim != 1 or ss.ndim != 1:
            raise ValueError(f"{what}: i, j and score must be 1-D arrays")
        if not len(ii) == len(jj) == len(ss):
            raise ValueError(
                f"{what}: i, j and score must have the same length, "
                f"got {len(ii)}, {len(jj)}, {len(ss)}"
            )
        for name, arr in (("i", ii), ("j", jj)):
            if len(arr) and arr.dtype.kind not in "iu":
                raise ValueError(f"{what}: {name} must hold integers, got dtype {arr.dtype}")
        if len(ss) and ss.dtype.kind not in "fiu":
            raise ValueError(f"{what}: score must hold real numbers, got dtype {ss.dtype}")
        i64 = ii.astype(np.int64, copy=False)
        j64 = jj.astype(np.int64, copy=False)
        s64 = ss.astype(np.float64, copy=False)
        if len(i64) and (i64.min() < 0 or j64.min() < 0):
            raise ValueError(f"{what}: row indices must be non-negative")
        if not np.isfinite(s64).all():
            raise ValueError(f"{what}: scores must be finite")
        return cls(i64, j64, s64)

    def sorted_unique(self, n_b: int) -> Candidates:
        """These pairs sorted by ``(i, j)``, each pair once (``j < n_b``).

        The first of any repeat is kept; repeats found by one kernel are the same pair with
        the same score, so which one is kept does not matter.
        """
        code = self.i * n_b + self.j
        order = np.argsort(code)
        code = code[order]
        keep = np.ones(code.shape[0], np.bool_)
        keep[1:] = code[1:] != code[:-1]
        order = order[keep]
        return Candidates(self.i[order], self.j[order], self.score[order])

    def take(self, rows: NDArray[np.intp] | NDArray[np.int64] | NDArray[np.bool_]) -> Candidates:
        """The pairs at ``rows`` (indices or a boolean mask), in that order."""
        return Candidates(self.i[rows], self.j[rows], self.score[rows])
