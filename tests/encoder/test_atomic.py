"""`atomic_write`: a file is replaced whole or not at all, and is private to its owner."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from encoder.atomic import atomic_write


def test_the_file_appears_whole_and_private(tmp_path: Path) -> None:
    path = tmp_path / "report.json"
    with atomic_write(path) as fh:
        fh.write("{}\n")
        assert not path.exists()  # nothing where readers look until the block ends
    assert path.read_text(encoding="utf-8") == "{}\n"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert [p.name for p in tmp_path.iterdir()] == ["report.json"]


def test_a_failure_leaves_the_old_file_and_no_temporary(tmp_path: Path) -> None:
    path = tmp_path / "mapping.csv"
    path.write_text("last month\n", encoding="utf-8")

    def interrupted() -> None:
        with atomic_write(path) as fh:
            fh.write("half of")
            raise RuntimeError("interrupted")

    with pytest.raises(RuntimeError):
        interrupted()
    assert path.read_text(encoding="utf-8") == "last month\n"
    assert [p.name for p in tmp_path.iterdir()] == ["mapping.csv"]


def test_a_missing_folder_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError), atomic_write(tmp_path / "no" / "x.csv"):
        pass
