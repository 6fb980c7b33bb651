"""A run's outputs: the `.plk`, its key map and its rejects file, placed only when all succeeded.

The three files are written under temporary names beside `OUT.plk` and moved into place
only when the whole run succeeded, so a failed run leaves nothing behind (and never a `.plk`
without its key map). `encode_dataframe` keeps the same outputs in memory instead.
"""

from __future__ import annotations

import csv
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from encoder.atomic import move_into_place, temporary_beside
from encoder.fileformat import EncodingWriter, HeaderFacts, PlkHeader
from encoder.keymap import KeyMapWriter, spreadsheet_safe
from encoder.keys import PSEUDONYM_BYTES
from encoder.options import EncodeError

__all__ = [
    "AS_MISSING",
    "REJECTED",
    "REJECTS_HEADER",
    "FileOutputs",
    "MemoryOutputs",
    "Outputs",
    "RejectLine",
    "check_outputs_free",
    "output_paths",
]

#: The rejects file's columns: the row as a spreadsheet numbers it, the field, what was done
#: (`rejected`: the record was not encoded; `treated as missing`: it was encoded without
#: that field), and why.
REJECTS_HEADER = ("input_row", "field", "action", "reason")
#: The rejects file's actions.
REJECTED = "rejected"
AS_MISSING = "treated as missing"

_U8 = np.ndarray[Any, np.dtype[np.uint8]]
#: A rejects line: (row, field, action, reason).
RejectLine = tuple[int, str, str, str]


def output_paths(out: Path) -> tuple[Path, Path]:
    """The key map and rejects file written beside `OUT.plk`: `OUT.keys.csv`, `OUT.rejects.csv`."""
    stem = out.name[: -len(".plk")] if out.name.endswith(".plk") else out.name
    return out.with_name(stem + ".keys.csv"), out.with_name(stem + ".rejects.csv")


def check_outputs_free(paths: Sequence[Path]) -> None:
    """Refuse to replace last run's outputs.

    `pacelink results` needs the matching .plk and key map, and a re-run would silently
    break that pair.

    Raises:
        EncodeError: Naming the first output that exists.
    """
    for path in paths:
        if path.exists():
            raise EncodeError(
                f"{path} already exists; refusing to overwrite it (the .plk and key map of "
                "an earlier run must stay together for `pacelink results`). Choose another "
                "--out, move the old files away, or pass --force to overwrite"
            )


class Outputs:
    """Where a run's results go, in encoding-row order."""

    def encoded(self, bits: _U8, first: int, ids: pa.Array, pseudonyms: _U8 | None) -> None:
        """Take rows `first`, `first + 1`, … : their bits, local IDs and pseudonyms."""
        raise NotImplementedError

    def rejects(self, rows: list[RejectLine]) -> None:
        """Take lines of the rejects file."""
        raise NotImplementedError


class FileOutputs(Outputs):
    """The `.plk` writer, the key map and the rejects file of `OUT.plk`, written atomically.

    Use as a context manager and call `finish` inside it; leaving it otherwise (or with an
    exception) removes every temporary file and leaves no output behind.
    """

    def __init__(self, out: Path, bit_length: int) -> None:
        """Prepare the outputs of `out` (`output_paths` names the other two)."""
        self.out = out
        self.keys_path, self.rejects_path = output_paths(out)
        self._writer = EncodingWriter(out, bit_length)
        self._tmp: list[Path] = []
        self._files: list[Any] = []
        self._placed = False  # the .plk is in place
        self._done = False  # all three are

    def __enter__(self) -> FileOutputs:
        """Create the temporary files."""
        # Owner-only files: the key map links encodings back to people.
        key_fd, key_tmp = temporary_beside(self.keys_path)
        self._tmp.append(key_tmp)
        key_fh = os.fdopen(key_fd, "wb")
        self._files.append(key_fh)
        rej_fd, rej_tmp = temporary_beside(self.rejects_path)
        self._tmp.append(rej_tmp)
        rej_fh = os.fdopen(rej_fd, "w", newline="", encoding="utf-8")
        self._files.append(rej_fh)
        self._writer.__enter__()
        self._keys = KeyMapWriter(key_fh)
        self._rejects = csv.writer(rej_fh)
        self._rejects.writerow(REJECTS_HEADER)
        return self

    def encoded(self, bits: _U8, first: int, ids: pa.Array, pseudonyms: _U8 | None) -> None:
        """Append rows to the `.plk` and the key map."""
        self._writer.append(bits, pseudonyms)
        self._keys.write(first, ids)

    def rejects(self, rows: list[RejectLine]) -> None:
        """Append lines to the rejects file."""
        # Field names come from the schema or --id-column, reasons are fixed texts: escaped
        # all the same, as every text cell pacelink writes for spreadsheets.
        self._rejects.writerows(
            (row, spreadsheet_safe(name), action, spreadsheet_safe(reason))
            for row, name, action, reason in rows
        )

    def finish(self, facts: HeaderFacts) -> PlkHeader:
        """Complete the `.plk` (as `EncodingWriter.finish`) and place all three files."""
        self._keys.close()
        header = self._writer.finish(facts)
        self._placed = True
        for fh in self._files:
            fh.close()
        key_tmp, rej_tmp = self._tmp
        move_into_place(key_tmp, self.keys_path)
        move_into_place(rej_tmp, self.rejects_path)
        self._done = True
        return header

    def __exit__(self, *exc_info: Any) -> None:
        """Remove whatever a run that did not finish left behind."""
        for fh in self._files:
            fh.close()
        self._writer.__exit__(*exc_info)
        if self._done:
            return
        for path in self._tmp:
            path.unlink(missing_ok=True)
        if self._placed:
            self.out.unlink(missing_ok=True)  # moved into place, but a later step failed


class MemoryOutputs(Outputs):
    """Outputs of `encode_dataframe`: bits, local IDs and pseudonyms kept in memory."""

    def __init__(self) -> None:
        """Start empty."""
        self.bits: list[_U8] = []
        self.ids: list[pa.Array] = []
        self.pseudonyms: list[_U8] = []
        self.rejected: list[RejectLine] = []

    def encoded(self, bits: _U8, first: int, ids: pa.Array, pseudonyms: _U8 | None) -> None:
        """Keep the rows."""
        self.bits.append(bits)
        self.ids.append(ids)
        if pseudonyms is not None:
            self.pseudonyms.append(pseudonyms)

    def rejects(self, rows: list[RejectLine]) -> None:
        """Keep the lines."""
        self.rejected.extend(rows)

    def all_bits(self, bit_length: int) -> _U8:
        """Every row's bits `(n, bit_length / 8)`."""
        if not self.bits:
            return np.zeros((0, bit_length // 8), dtype=np.uint8)
        return np.concatenate(self.bits)

    def all_pseudonyms(self) -> _U8:
        """Every row's pseudonym `(n, 16)` (for a run with a record key)."""
        if not self.pseudonyms:
            return np.zeros((0, PSEUDONYM_BYTES), dtype=np.uint8)
        return np.concatenate(self.pseudonyms)

    def local_ids(self) -> list[str]:
        """Every row's local ID, as the key map would hold it."""
        if not self.ids:
            return []
        ids: list[str] = pa.concat_arrays([a.cast(pa.string()) for a in self.ids]).to_pylist()
        return ids
