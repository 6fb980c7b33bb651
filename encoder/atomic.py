"""Writing a file whole or not at all: readers never see half of one, a failure leaves none.

The one home of pacelink's atomic writes, on both sides. A partner's outputs (the report,
the key map, a mapping from the unit), the operator's (GROUPS.csv) and the unit's own files
(record keys, salts, the entity index's ``CURRENT`` pointer) are written under a temporary
name in the same folder and moved into place only once complete and flushed to disk, so a
run that fails or is interrupted never leaves a truncated file where last month's complete
one was.

:func:`atomic_write` and :func:`atomic_write_bytes` cover a file written in one block;
:func:`temporary_beside` and :func:`move_into_place` are their two halves, for writers
that keep the temporary file open across calls (the ``.plk`` writer) or place several
files together (an encoding run's key map and rejects).
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any, BinaryIO, TextIO, cast

__all__ = ["atomic_write", "atomic_write_bytes", "move_into_place", "temporary_beside"]


def temporary_beside(path: Path) -> tuple[int, Path]:
    """Create an empty temporary file in the folder of `path`, readable by its owner only.

    Same folder, so that moving it onto `path` is a rename (atomic) and never a copy; the
    name starts with a dot and `path`'s name, so a leftover is recognisable.

    Returns:
        An open descriptor (for writing) and the temporary file's path.

    Raises:
        FileNotFoundError: The folder of `path` does not exist.
    """
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    return fd, Path(tmp)


def move_into_place(tmp: Path, path: Path, *, overwrite: bool = True) -> None:
    """Give the complete file `tmp` the name `path` in one step.

    Args:
        tmp: A file from :func:`temporary_beside`, written and flushed to disk.
        path: Its final name.
        overwrite: Replace a file at `path`; if False, an existing `path` is never
            touched and `tmp` is removed.

    Raises:
        FileExistsError: `path` exists and `overwrite` is False.
    """
    if overwrite:
        os.replace(tmp, path)
        return
    try:
        os.link(tmp, path)  # fails when `path` exists, where a rename would replace it
    finally:
        tmp.unlink(missing_ok=True)


@contextmanager
def atomic_write(path: Path, *, overwrite: bool = True) -> Iterator[TextIO]:
    """A UTF-8 text handle whose content replaces `path` when the block ends without error.

    The file is created readable by its owner only (mode 0600): what pacelink writes this
    way (reports, mappings, linkage groups, keys) stays on the premises of whoever wrote
    it. If the block raises, the temporary file is removed and `path` is left as it was.

    Args:
        path: The file to write.
        overwrite: As for :func:`move_into_place`.

    Raises:
        FileNotFoundError: The folder of `path` does not exist.
        FileExistsError: `path` exists and `overwrite` is False.
    """
    with _written(path, overwrite, binary=False) as fh:
        yield cast(TextIO, fh)


@contextmanager
def atomic_write_bytes(path: Path, *, overwrite: bool = True) -> Iterator[BinaryIO]:
    """:func:`atomic_write` for binary content (``.npy`` arrays, salts).

    Takes the same arguments, and raises the same errors, as :func:`atomic_write`.
    """
    with _written(path, overwrite, binary=True) as fh:
        yield cast(BinaryIO, fh)


@contextmanager
def _written(path: Path, overwrite: bool, *, binary: bool) -> Iterator[IO[Any]]:
    fd, tmp = temporary_beside(path)
    try:
        # newline="": text is written as given, so a CSV's line ends are the CSV writer's.
        handle: IO[Any] = (
            os.fdopen(fd, "wb") if binary else os.fdopen(fd, "w", encoding="utf-8", newline="")
        )
        with handle as fh:
            yield fh
            fh.flush()
            os.fsync(fh.fileno())
        move_into_place(tmp, path, overwrite=overwrite)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
