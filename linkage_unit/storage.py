"""Where the unit keeps files: encodings, entity indexes and run results under the data folder.

Layout (all under ``DATA_DIR``)::

    incoming/                 uploads being received (same file system, so moves are atomic)
    projects/<project>/
        salt                  the project's secret for linkage IDs (mode 0600)
        uploads/<upload>.plk  accepted encodings, read-only, until a run has linked them
                              (then they live in the entity index only)
        uploads/<upload>.keys.npy   the key of each row of a delivery (record pseudonyms,
                              or hashes of the encodings), "" once withdrawn
        uploads/<upload>.withdraw.npy  the record keys of a withdrawal, until linked
        runs/<run>/           a run's outputs: entity index, per-upload IDs, scores

A file appears under its final name only when complete (written elsewhere, then renamed),
and a run's folder counts only once the database records the run as done, so a crash
leaves nothing that a reader could take for a result.
"""

from __future__ import annotations

import os
import secrets
import shutil
from pathlib import Path
from typing import Final

import numpy as np
from numpy.typing import NDArray

__all__ = ["Storage", "save_keys"]

_SALT_BYTES: Final = 32


def save_keys(path: Path, keys: NDArray[np.str_], *, replace: bool = False) -> None:
    """Write an array of record keys (``.npy``, no pickle) durably: as a new file, never over
    an existing one, or with ``replace`` in place of one, which readers see whole or not at
    all (written beside it, then renamed)."""
    target = path.with_name(path.name + ".tmp") if replace else path
    with open(target, "wb" if replace else "xb") as fh:
        np.save(fh, keys, allow_pickle=False)
        fh.flush()
        os.fsync(fh.fileno())
    if replace:
        os.replace(target, path)


class Storage:
    """Paths and file operations of one data folder."""

    def __init__(self, data_dir: Path) -> None:
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
        (base / "runs").mkdir(mode=0o700, exist_ok=True)
        fd = os.open(base / "salt", os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as fh:
            fh.write(secrets.token_bytes(_SALT_BYTES))
            fh.flush()
            os.fsync(fh.fileno())

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

    def run_dir(self, project_id: str, run_id: str) -> Path:
        """A run's output folder."""
        return self.project_dir(project_id) / "runs" / run_id

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
        runs = self.project_dir(project_id) / "runs"
        if not runs.exists():
            return
        for child in runs.iterdir():
            if child.name not in keep:
                shutil.rmtree(child, ignore_errors=True)
