"""`encoder.atomic`: a file is replaced whole or not at all, and is private to its owner."""

from __future__ import annotations

import stat
from collections.abc import Callable
from contextlib import AbstractContextManager
from pathlib import Path
from typing import IO, Any

import pytest

from encoder.atomic import atomic_write, atomic_write_bytes, move_into_place, temporary_beside


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


def test_bytes_are_written_whole_and_private(tmp_path: Path) -> None:
    path = tmp_path / "salt"
    with atomic_write_bytes(path) as fh:
        fh.write(b"\x00\xff")
        assert not path.exists()
    assert path.read_bytes() == b"\x00\xff"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


@pytest.mark.parametrize("write", [atomic_write, atomic_write_bytes])
def test_without_overwrite_an_existing_file_is_kept(
    tmp_path: Path, write: Callable[..., AbstractContextManager[IO[Any]]]
) -> None:
    path = tmp_path / "record.key"
    path.write_text("the old key\n", encoding="utf-8")
    with pytest.raises(FileExistsError), write(path, overwrite=False) as fh:
        fh.write("a new key\n" if write is atomic_write else b"a new key\n")
    assert path.read_text(encoding="utf-8") == "the old key\n"
    assert [p.name for p in tmp_path.iterdir()] == ["record.key"]


def test_without_overwrite_a_new_file_is_written(tmp_path: Path) -> None:
    path = tmp_path / "keys.npy"
    with atomic_write_bytes(path, overwrite=False) as fh:
        fh.write(b"keys")
    assert path.read_bytes() == b"keys"
    assert [p.name for p in tmp_path.iterdir()] == ["keys.npy"]


def test_the_two_halves_place_a_file_kept_open_across_calls(tmp_path: Path) -> None:
    path = tmp_path / "out.plk"
    fd, tmp = temporary_beside(path)
    assert tmp.parent == tmp_path and tmp.name.startswith(".out.plk.")
    with open(fd, "wb") as fh:
        fh.write(b"whole")
    assert not path.exists()
    move_into_place(tmp, path)
    assert path.read_bytes() == b"whole" and not tmp.exists()
