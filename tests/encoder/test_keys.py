"""Secrets: generation, file mode, strength checks, sources, redaction, key check value."""

from __future__ import annotations

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
    path = tmp_path / "k"
    path.write_text(weak)
    with pytest.raises(SecretError, match="too short") as info:
        load_secret(path)
    assert weak not in str(info.value)


def test_surrounding_whitespace_is_stripped(tmp_path: Path) -> None:
    path = tmp_path / "k"
    value = "a" * 10 + "0123456789abcdef0123456789abcdef"
    path.write_text(f"  {value}\n\n")
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
    (tmp_path / "empty").write_text("  \n")
    with pytest.raises(SecretError, match="empty"):
        load_secret(tmp_path / "empty")


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
