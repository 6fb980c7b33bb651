"""Settings of the linkage-unit service and its workers, read from the environment on demand.

Library code takes explicit arguments; only the service, the workers and the operator's
commands build a :class:`UnitSettings`, and only when they start (never at import), so a
test or a second unit in the same process can use other values.
"""

from __future__ import annotations

from pathlib import Path
from typing import Final

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from encoder.keys import estimate_secret_bits

__all__ = ["MIN_ADMIN_TOKEN_BITS", "AdminTokenError", "UnitSettings", "check_admin_token"]

#: Least estimated strength of the operator's admin token.
MIN_ADMIN_TOKEN_BITS: Final = 128

# Values people paste from examples; refused whatever their length.
_PLACEHOLDERS: Final = ("changeme", "change-me", "change_me", "secret", "password", "admin",
                        "token", "example", "xxxx", "placeholder")  # fmt: skip


class AdminTokenError(ValueError):
    """The admin token is missing, a placeholder or too weak."""


def check_admin_token(token: str | None) -> str:
    """Return the admin token if it is strong enough, else raise :class:`AdminTokenError`.

    The message never contains the token.
    """
    if not token or not token.strip():
        raise AdminTokenError(
            "PACELINK_ADMIN_TOKEN is not set: the linkage unit refuses to start without an "
            'admin token; create one with `python -c "import secrets; '
            'print(secrets.token_hex(32))"`'
        )
    token = token.strip()
    lowered = token.lower()
    if any(p in lowered for p in _PLACEHOLDERS) or len(set(token)) < 8:
        raise AdminTokenError("PACELINK_ADMIN_TOKEN looks like a placeholder: use a random token")
    bits = estimate_secret_bits(token)
    if bits < MIN_ADMIN_TOKEN_BITS:
        raise AdminTokenError(
            f"PACELINK_ADMIN_TOKEN is too weak: about {bits:.0f} bits, at least "
            f"{MIN_ADMIN_TOKEN_BITS} are required (e.g. 32 random hex characters)"
        )
    return token


class UnitSettings(BaseSettings):
    """Where the unit keeps its state and how it runs (environment prefix ``PACELINK_``)."""

    model_config = SettingsConfigDict(env_prefix="PACELINK_", extra="ignore")

    data_dir: Path = Field(description="Folder for the database (SQLite) and encodings.")
    database_url: str | None = Field(
        default=None,
        description="SQLAlchemy URL; default: SQLite file unit.db in the data folder.",
    )
    admin_token: SecretStr | None = Field(default=None, description="The operator's token.")
    max_upload_bytes: int = Field(default=4 << 30, gt=0, description="Largest upload accepted.")
    heartbeat_seconds: float = Field(default=2.0, gt=0)
    stale_after_seconds: float = Field(
        default=15.0, gt=0, description="A running job without a heartbeat this long is retaken."
    )
    poll_seconds: float = Field(default=0.5, gt=0, description="Worker idle poll interval.")
    retention_check_seconds: float = Field(default=60.0, gt=0)

    @field_validator("data_dir")
    @classmethod
    def _absolute(cls, value: Path) -> Path:
        return value.expanduser().resolve()

    def url(self) -> str:
        """The database URL, defaulting to SQLite inside the data folder."""
        if self.database_url:
            return self.database_url
        return f"sqlite:///{self.data_dir / 'unit.db'}"

    def checked_admin_token(self) -> str:
        """The admin token, refused when missing, a placeholder or weaker than 128 bits."""
        raw = self.admin_token.get_secret_value() if self.admin_token is not None else None
        return check_admin_token(raw)
