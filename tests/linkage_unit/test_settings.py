"""The admin token: the unit refuses to start without a strong one."""

from __future__ import annotations

import secrets
from pathlib import Path

import pytest

from encoder.keys import estimate_secret_bits
from linkage_unit.api import create_app
from linkage_unit.settings import AdminTokenError, UnitSettings, check_admin_token


@pytest.mark.parametrize(
    ("token", "message"),
    [
        (None, "not set"),
        ("", "not set"),
        ("changeme-changeme-changeme-changeme", "placeholder"),
        ("changeme", "placeholder"),
        ("changeme123", "placeholder"),
        ("admin-token-please", "placeholder"),
        ("Admin_Token_2026!", "placeholder"),
        ("aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", "too weak"),
        ("k3Jx9QmP2vLr8TzW4nYb", "too weak"),  # 20 characters: about 119 bits at most
        ("3f9a1c7e5b2d4a60", "too weak"),  # 64 bits of hex
        ("Tr0ub4dor&3", "too weak"),
    ],
)
def test_weak_tokens_are_refused(token: str | None, message: str) -> None:
    with pytest.raises(AdminTokenError, match=message) as exc:
        check_admin_token(token)
    if token:
        assert token not in str(exc.value)


def test_messages_explain_the_rule() -> None:
    with pytest.raises(AdminTokenError) as placeholder:
        check_admin_token("admin-token-please")
    assert "digits and punctuation are removed" in str(placeholder.value)
    assert "token_hex(32)" in str(placeholder.value)  # and how to make a good one
    with pytest.raises(AdminTokenError) as weak:
        check_admin_token("k3Jx9QmP2vLr8TzW4nYb")
    assert "at least 128 are required" in str(weak.value)
    assert "length and the kinds of characters" in str(weak.value)


def test_words_inside_a_random_token_are_fine() -> None:
    # 190 random bits (hex), with words that example tokens use around them.
    for token in (f"admin-{secrets.token_hex(24)}", f"{secrets.token_hex(24)}token",
                  f"ADMIN_TOKEN_{secrets.token_urlsafe(24)}"):  # fmt: skip
        assert check_admin_token(token) == token


def test_known_words_count_for_little() -> None:
    # Long enough for 128 bits by its alphabet alone, but it is words and repeats.
    token = "admin-token-secret-password-Zq9"
    assert estimate_secret_bits(token) >= 128
    with pytest.raises(AdminTokenError, match="too weak"):
        check_admin_token(token)


def test_unset_token_message_fits_the_command() -> None:
    with pytest.raises(AdminTokenError) as starting:
        check_admin_token(None)
    assert "refuses to start" in str(starting.value)
    with pytest.raises(AdminTokenError) as calling:
        check_admin_token(None, for_command="pacelink unit project create")
    message = str(calling.value)
    assert "refuses to start" not in message
    assert "`pacelink unit project create`" in message
    assert "the admin token the unit was started with" in message


def test_random_tokens_pass() -> None:
    for token in (secrets.token_hex(16), secrets.token_hex(32), secrets.token_urlsafe(32)):
        assert check_admin_token(token) == token


def test_service_refuses_to_start_without_a_token(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("PACELINK_ADMIN_TOKEN", raising=False)
    with pytest.raises(AdminTokenError):
        create_app(UnitSettings(data_dir=tmp_path))
    assert not (tmp_path / "unit.db").exists()  # refused before touching anything


def test_settings_come_from_the_environment_when_built(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PACELINK_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("PACELINK_HEARTBEAT_SECONDS", "0.5")
    settings = UnitSettings()  # type: ignore[call-arg]  # data_dir from the environment
    assert settings.data_dir == tmp_path.resolve()
    assert settings.heartbeat_seconds == 0.5
    assert settings.url() == f"sqlite:///{tmp_path.resolve() / 'unit.db'}"
    assert "secret" not in repr(UnitSettings(data_dir=tmp_path, admin_token="secret" * 8))
