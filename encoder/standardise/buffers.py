"""Byte buffers for the fields' numba kernels: string arrays built from them, word tables."""

from __future__ import annotations

from typing import Any

import numpy as np
import pyarrow as pa
from numba import njit

__all__ = ["find_word", "pack_words", "string_array"]


def string_array(
    ok: np.ndarray[Any, Any], offsets: np.ndarray[Any, Any], data: np.ndarray[Any, Any]
) -> pa.Array:
    """Build a string array from a kernel's output: null where not `ok`."""
    return pa.Array.from_buffers(
        pa.large_string(),
        ok.shape[0],
        [
            pa.py_buffer(np.packbits(ok, bitorder="little")),
            pa.py_buffer(offsets),
            pa.py_buffer(data[: offsets[-1]] if offsets[-1] else np.zeros(1, np.uint8)),
        ],
    ).cast(pa.string())


def pack_words(words: list[str]) -> tuple[np.ndarray[Any, Any], np.ndarray[Any, Any]]:
    """Pack ASCII words as (offsets, bytes), the way the kernels take string tables."""
    data = np.frombuffer("".join(words).encode("ascii"), dtype=np.uint8).copy()
    offsets = np.zeros(len(words) + 1, dtype=np.int64)
    np.cumsum([len(w) for w in words], out=offsets[1:])
    return offsets, data if data.size else np.zeros(1, np.uint8)


@njit(cache=True, nogil=True)
def find_word(
    data: np.ndarray[Any, Any], start: int, end: int,
    table_offsets: np.ndarray[Any, Any], table: np.ndarray[Any, Any],
) -> int:  # fmt: skip
    """Return the index of data[start:end] in a packed word table, or -1."""
    length = end - start
    for w in range(table_offsets.shape[0] - 1):
        ws = table_offsets[w]
        if table_offsets[w + 1] - ws != length:
            continue
        same = True
        for i in range(length):
            if data[start + i] != table[ws + i]:
                same = False
                break
        if same:
            return w
    return -1
