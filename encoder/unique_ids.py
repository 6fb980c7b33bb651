"""Local IDs of a run's input: which are unusable, and the first pass that refuses duplicates.

The check reads only the ID and consent columns, before any encoding work, and reports
duplicates by counts and spreadsheet row numbers, never by value.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from numba import njit

from encoder.keymap import canonical_local_ids, has_control_characters
from encoder.options import EncodeError
from encoder.read import Chunk, TableReader, string_buffers

__all__ = ["check_unique_ids", "empty_ids"]

# Duplicate local IDs: how many groups a message lists, and rows per group.
_DUPLICATES_SHOWN = 5
_DUPLICATE_ROWS_SHOWN = 3


def empty_ids(ids: pa.Array) -> np.ndarray[Any, np.dtype[np.bool_]]:
    """Which local IDs are empty once surrounding whitespace is removed."""
    lengths = pc.utf8_length(pc.utf8_trim_whitespace(ids))
    result: np.ndarray[Any, np.dtype[np.bool_]] = lengths.to_numpy(zero_copy_only=False) == 0
    return result


def check_unique_ids(
    reader: TableReader,
    id_column: str,
    consent_column: str | None,
    consented: Callable[[Chunk], np.ndarray[Any, np.dtype[np.bool_]]],
    chunk_rows: int,
) -> None:
    """Check, before any encoding work, that every local ID of a record with consent is unique.

    A first pass over the ID and consent columns only.

    Memory stays bounded by keeping a 64-bit hash and a row number per record; rows whose
    hashes agree are confirmed with their real IDs in a second, equally narrow pass (a hash
    collision is possible in principle). Every duplicate is reported at once, by counts and
    spreadsheet row numbers, never by value.

    Args:
        reader: The input.
        id_column: The column of local IDs.
        consent_column: The column of consent, if any.
        consented: Which rows of a chunk have consent.
        chunk_rows: Rows per chunk read.

    Raises:
        EncodeError: Listing how many IDs repeat and the rows of the first few.
    """
    wanted = [c for c in (id_column, consent_column) if c is not None]
    hashes: list[np.ndarray[Any, Any]] = []
    rows: list[np.ndarray[Any, Any]] = []
    for chunk in reader.chunks(wanted, chunk_rows):
        ids = canonical_local_ids(chunk.columns[id_column])
        keep = np.flatnonzero(consented(chunk) & ~empty_ids(ids) & ~has_control_characters(ids))
        if keep.size:
            hashes.append(_string_hashes(ids.take(pa.array(keep))))
            rows.append(chunk.first_row + keep)
    if not hashes:
        return
    all_hashes, all_rows = np.concatenate(hashes), np.concatenate(rows)
    order = np.argsort(all_hashes, kind="stable")
    sorted_hashes = all_hashes[order]
    same = sorted_hashes[1:] == sorted_hashes[:-1]
    if not same.any():
        return
    in_group = np.zeros(order.size, dtype=bool)
    in_group[1:] |= same
    in_group[:-1] |= same
    candidates = np.sort(all_rows[order[in_group]])
    # Confirm with the IDs themselves (rows of candidates only), grouped by ID.
    groups: dict[str, list[int]] = {}
    for chunk in reader.chunks([id_column], chunk_rows):
        lo = np.searchsorted(candidates, chunk.first_row)
        hi = np.searchsorted(candidates, chunk.first_row + len(chunk))
        if lo == hi:
            continue
        picked = candidates[lo:hi]
        ids = canonical_local_ids(chunk.columns[id_column])
        values = ids.take(pa.array(picked - chunk.first_row)).to_pylist()
        for row, value in zip(picked.tolist(), values, strict=True):
            groups.setdefault(value, []).append(row)
    repeated = sorted((r for r in groups.values() if len(r) > 1), key=lambda r: r[0])
    if not repeated:
        return
    sheet_row = reader.sheet_row
    shown = []
    for group in repeated[:_DUPLICATES_SHOWN]:
        numbers = [str(sheet_row(r)) for r in group[:_DUPLICATE_ROWS_SHOWN]]
        extra = len(group) - _DUPLICATE_ROWS_SHOWN
        more = f" and {extra} more" if extra > 0 else ""
        shown.append(f"rows {', '.join(numbers)}{more}")
    rest = len(repeated) - len(shown)
    listed = "; ".join(shown) + (f"; and {rest} more IDs" if rest else "")
    n_ids, n_rows = len(repeated), sum(len(g) for g in repeated)
    raise EncodeError(
        f"{reader.path}: local IDs must be unique (column {id_column!r}), but "
        f"{n_ids:,} ID{'s' if n_ids != 1 else ''} appear{'s' if n_ids == 1 else ''} more than "
        f"once ({n_rows:,} rows in all): {listed}. Nothing was encoded"
    )


@njit(cache=True, nogil=True)
def _fnv1a(offsets: np.ndarray[Any, Any], data: np.ndarray[Any, Any]) -> np.ndarray[Any, Any]:
    """64-bit FNV-1a of each string of an Arrow string array (to find duplicate IDs)."""
    n = offsets.shape[0] - 1
    out = np.empty(n, dtype=np.uint64)
    for i in range(n):
        h = np.uint64(14695981039346656037)
        for j in range(offsets[i], offsets[i + 1]):
            h = (h ^ np.uint64(data[j])) * np.uint64(1099511628211)
        out[i] = h
    return out


def _string_hashes(array: pa.Array) -> np.ndarray[Any, np.dtype[np.uint64]]:
    """64-bit FNV-1a of each string of `array`."""
    offsets, data = string_buffers(array)
    result: np.ndarray[Any, np.dtype[np.uint64]] = _fnv1a(offsets, data)
    return result
