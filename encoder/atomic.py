"""Writing a file whole or not at all: readers never see half of one, a failure leaves none.

A partner's outputs (the report, a mapping from the unit) and the operator's (GROUPS.csv)
are written under a temporary name in the same folder and moved into place only once
complete, so a run that fails or is interrupted never leaves a truncated file where last
month's complete one was.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TextIO

__all__ = ["atomic_write"]


@contextmanager
def atomic_write(path: Path) -> Iterator[TextIO]:
    """A UTF-8 text handle whose content replaces `path` when the block ends without error.

    The file is created readable by its owner only (mode 0600): what pacelink writes this
    way (reports, mappings, linkage groups) stays on the premises of whoever wrote it. If
    the block raises, the temporary file is removed and `path` is left as it was.

    Raises:
        FileNotFoundError: The folder of `path` does not exist.
    """
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as fh:
            yield fh
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
