"""Secrets: generation, file mode, strength checks, sources, redaction, key check value."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from encoder.keys import (
    SECRET_ENV_VAR,
    Secret,
    SecretError,
    estimate_secret_bits,
    generate_secret,
    key_check_value,
    load_secret,
    write_secret,
)


def _private(path: Path, text: str) -> Path:
    """A secret file as a partner should keep it: readable by its owner only."""
    path.write_text(text)
    path.chmod(0o600)
    return path


def test_generated_secret_is_256_bits_and_written_0600(tmp_path: Path) -> None:
    secret = generate_secret()
    assert len(secret.value) == 64
    assert estimate_secret_bits(secret.value) == pytest.approx(256)
    path = tmp_path / "k"
    write_secret(path, secret)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert load_secret(path) == secret
    assert generate_secret() != secret


def test_write_refuses_to_overwrite(tmp_path: Path) -> None:
    path = tmp_path / "k"
    write_secret(path, generate_secret())
    with pytest.raises(SecretError, match="already exists"):
        write_secret(path, generate_secret())


@pytest.mark.parametrize("weak", ["password", "correcthorsebatterystaple", "0123456789abcdef",
                                  "Tr0ub4dor&3"])  # fmt: skip
def test_weak_secrets_refused_without_echoing_them(tmp_path: Path, weak: str) -> None:
    path = _private(tmp_path / "k", weak)
    with pytest.raises(SecretError, match="too short") as info:
        load_secret(path)
    assert weak not in str(info.value)


def test_surrounding_whitespace_is_stripped(tmp_path: Path) -> None:
    value = "a" * 10 + "0123456789abcdef0123456789abcdef"
    path = _private(tmp_path / "k", f"  {value}\n\n")
    assert load_secret(path).value == value


def test_environment_and_missing(monkeypatch: pytest.MonkeyPatch) -> None:
    value = generate_secret().value
    monkeypatch.setenv(SECRET_ENV_VAR, value)
    assert load_secret(None).value == value
    monkeypatch.delenv(SECRET_ENV_VAR)
    with pytest.raises(SecretError, match="never taken from the command line"):
        load_secret(None, prompt=False)


def test_unreadable_and_empty(tmp_path: Path) -> None:
    with pytest.raises(SecretError, match="cannot read"):
        load_secret(tmp_path / "absent")
    with pytest.raises(SecretError, match="is empty"):
        load_secret(_private(tmp_path / "blank", "  \n"))


def test_secret_is_redacted() -> None:
    secret = generate_secret()
    for text in (repr(secret), str(secret), f"{secret}", repr([secret])):
        assert secret.value not in text


def test_key_check_value_separates_secrets_and_hides_them() -> None:
    a, b = generate_secret(), generate_secret()
    assert key_check_value(a) == key_check_value(Secret(a.value))
    assert key_check_value(a) != key_check_value(b)
    assert len(key_check_value(a)) == 32
    assert a.value[:16] not in key_check_value(a)


@pytest.mark.skipif(os.name != "posix", reason="POSIX file modes")
@pytest.mark.parametrize("mode", [0o640, 0o604, 0o644, 0o620, 0o660])
def test_secret_files_others_can_read_are_refused(tmp_path: Path, mode: int) -> None:
    """As ssh refuses a private key others can read: with the exact command that fixes it."""
    value = generate_secret().value
    path = _private(tmp_path / "shared key", value)
    path.chmod(mode)
    with pytest.raises(SecretError, match=r"readable or writable by other users") as info:
        load_secret(path)
    message = str(info.value)
    assert f"(mode {mode:04o})" in message
    assert f"chmod 600 '{path}'" in message  # quoted: the path has a space
    assert value not in message
    path.chmod(0o600)
    assert load_secret(path).value == value
    path.chmod(0o400)  # read-only for the owner is fine too
    assert load_secret(path).value == value
