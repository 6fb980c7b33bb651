"""Where the unit keeps files: encodings, entity indexes and run results under the data folder.

The one owner of the data folder's layout: every other module asks :class:`Storage` (and
:class:`RunFolder`, for a run's outputs) for a path instead of building one. Layout (all
under ``DATA_DIR``)::

    incoming/                 uploads being received (same file system, so moves are atomic)
    projects/<project>/
        salt                  the project's secret for linkage IDs (mode 0600)
        uploads/<upload>.plk  accepted encodings, read-only, until a run has linked them
                              (then they live in the entity index only)
        uploads/<upload>.keys.npy   the key of each row of a delivery (record pseudonyms,
                              or hashes of the encodings), "" once withdrawn
        uploads/<upload>.withdraw.npy  the record keys of a withdrawal, until linked
        runs/<run>/           a run's outputs (:class:`RunFolder`):
            index/            the entity index after the run (linkage_unit.matching.EntityIndex)
            ids/<upload>.npy  the linkage ID of every row of every delivery of the project
                              ("" for a record withdrawn since: it is in no release)
            counts.json       entities per set of parties (as bit masks), before suppression
            scores.json       histogram of candidate scores and the pairs near the threshold
            scratch/          what Dask workers read while the run compares (then removed)

A file appears under its final name only when complete (written elsewhere, then renamed),
and a run's folder counts only once the database records the run as done, so a crash
leaves nothing that a reader could take for a result.
"""

from __future__ import annotations

import secrets
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Final

import numpy as np
from numpy.typing import NDArray

from encoder.atomic import atomic_write_bytes

__all__ = ["RunFolder", "Storage", "save_keys"]

_SALT_BYTES: Final = 32


def save_keys(path: Path, keys: NDArray[np.str_], *, replace: bool = False) -> None:
    """Write an array of record keys (``.npy``, no pickle) durably and whole.

    Args:
        path: The key file.
        keys: The record keys.
        replace: Replace an existing file (readers see the old one or the new one, whole);
            without it an existing file is an error and is left as it was.

    Raises:
        FileExistsError: ``path`` exists and not ``replace``.
    """
    with atomic_write_bytes(path, overwrite=replace) as fh:
        np.save(fh, keys, allow_pickle=False)


@dataclass(frozen=True)
class RunFolder:
    """The outputs of one run, under the names the pipeline writes and releases read.

    Attributes:
        path: The run's folder.
    """

    path: Path

    @property
    def index(self) -> Path:
        """The entity index after the run."""
        return self.path / "index"

    @property
    def ids_dir(self) -> Path:
        """The folder of per-upload linkage IDs (see :meth:`ids`)."""
        return self.path / "ids"

    @property
    def counts(self) -> Path:
        """Entities per set of parties, before suppression (JSON)."""
        return self.path / "counts.json"

    @property
    def scores(self) -> Path:
        """The score histogram and the pairs near the threshold (JSON)."""
        return self.path / "scores.json"

    @property
    def scratch(self) -> Path:
        """Working files of a distributed run, removed once it has compared."""
        return self.path / "scratch"

    def ids(self, upload_id: str) -> Path:
        """The linkage ID of every row of one delivery."""
        return self.ids_dir / f"{upload_id}.npy"


class Storage:
    """Paths and file operations of one data folder."""

    def __init__(self, data_dir: Path) -> None:
        """Name the folders under ``data_dir`` (created by :meth:`prepare`)."""
        self.root = data_dir
        self.incoming = data_dir / "incoming"
        self.projects = data_dir / "projects"

    def prepare(self) -> None:
        """Create the folders (mode 0700: encodings are personal data)."""
        for path in (self.root, self.incoming, self.projects):
            path.mkdir(mode=0o700, parents=True, exist_ok=True)

    def project_dir(self, project_id: str) -> Path:
        """The folder of a project."""
        if not project_id.isalnum():  # IDs are ours, but a path must never escape the root
            raise ValueError("invalid project ID")
        return self.projects / project_id

    def create_project(self, project_id: str) -> None:
        """Make a project's folders and its salt."""
        base = self.project_dir(project_id)
        (base / "uploads").mkdir(mode=0o700, parents=True, exist_ok=True)
        self._runs(project_id).mkdir(mode=0o700, exist_ok=True)
        with atomic_write_bytes(base / "salt", overwrite=False) as fh:  # never a new salt
            fh.write(secrets.token_bytes(_SALT_BYTES))

    def salt(self, project_id: str) -> bytes:
        """The project's salt for linkage IDs."""
        return (self.project_dir(project_id) / "salt").read_bytes()

    def upload_path(self, project_id: str, upload_id: str) -> Path:
        """Where an accepted upload's encodings are kept."""
        return self.project_dir(project_id) / "uploads" / f"{upload_id}.plk"

    def keys_path(self, project_id: str, upload_id: str) -> Path:
        """Where the row keys of a delivery are kept."""
        return self.project_dir(project_id) / "uploads" / f"{upload_id}.keys.npy"

    def withdrawal_path(self, project_id: str, upload_id: str) -> Path:
        """Where a withdrawal's record keys wait for the next run."""
        return self.project_dir(project_id) / "uploads" / f"{upload_id}.withdraw.npy"

    def run_folder(self, project_id: str, run_id: str) -> RunFolder:
        """A run's output folder."""
        return RunFolder(self._runs(project_id) / run_id)

    def _runs(self, project_id: str) -> Path:
        return self.project_dir(project_id) / "runs"

    def delete_project(self, project_id: str) -> None:
        """Erase everything of a project: encodings, indexes, results and salt."""
        base = self.project_dir(project_id)
        if base.exists():
            # Rename first so a crash half-way leaves an obviously dead folder, not a
            # project that looks intact but has lost files.
            doomed = self.projects / f".deleted-{project_id}-{secrets.token_hex(4)}"
            base.rename(doomed)
            shutil.rmtree(doomed)
        for leftover in self.projects.glob(f".deleted-{project_id}-*"):
            shutil.rmtree(leftover, ignore_errors=True)

    def prune_runs(self, project_id: str, keep: set[str]) -> None:
        """Remove run folders other than ``keep`` (superseded or abandoned runs)."""
        runs = self._runs(project_id)
        if not runs.exists():
            return
        for child in runs.iterdir():
            if child.name not in keep:
                shutil.rmtree(child, ignore_errors=True)
