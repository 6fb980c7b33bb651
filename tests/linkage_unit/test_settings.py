"""The admin token: the unit refuses to start without a strong one."""

from __future__ import annotations

import secrets
from pathlib import Path

import pytest

from linkage_unit.api import create_app
from linkage_unit.settings import AdminTokenError, UnitSettings, check_admin_token


@pytest.mark.parametrize(
    ("token", "message"),
    [
        (None, "not set"),
        ("", "not set"),
        ("changeme-changeme-changeme-changeme", "placeholder"),
        ("aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", "placeholder"),
        ("3f9a1c7e5b2d4a60", "too weak"),  # 64 bits of hex
        ("Tr0ub4dor&3", "too weak"),
    ],
)
def test_weak_tokens_are_refused(token: str | None, message: str) -> None:
    with pytest.raises(AdminTokenError, match=message) as exc:
        check_admin_token(token)
    if token:
        assert token not in str(exc.value)


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
