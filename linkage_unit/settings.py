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

# Words people put in example or placeholder tokens. A token made of nothing but these
# (once digits and punctuation are removed) is a placeholder, whatever its length; inside a
# longer token each counts as a few bits only (see _strength_bits). Single letters are not
# words here: a random hex token must never look like a sentence of them.
_WORDS: Final = frozenset({
    "admin", "administrator", "bar", "change", "changeme", "default", "demo", "dev",
    "example", "fixme", "foo", "here", "insert", "key", "letmein", "local", "me", "my",
    "pacelink", "pass", "passwd", "password", "placeholder", "please", "put", "qwerty",
    "replace", "secret", "test", "the", "this", "todo", "token", "unit", "with", "xx", "xxx",
    "xxxx", "your",
})  # fmt: skip
# Bits a known word adds: about what picking one of a few thousand words is worth.
_WORD_BITS: Final = 12.0
# Inside a longer token only words this long are discounted, and only runs of one character
# longer than _RUN are cut to _RUN characters: shorter ones turn up in random tokens often
# enough (a run of three in 32 hex digits: about one in ten) that discounting them would
# refuse real random tokens.
_MIN_WORD: Final = 4
_RUN: Final = 5
_HOW_TO_CREATE: Final = 'create one with `python -c "import secrets; print(secrets.token_hex(32))"`'


class AdminTokenError(ValueError):
    """The admin token is missing, a placeholder or too weak."""


def _segments_into_words(letters: str) -> bool:
    """Whether ``letters`` is a concatenation of :data:`_WORDS` (dynamic programming)."""
    longest = max(len(w) for w in _WORDS)
    reachable = [True] + [False] * len(letters)
    for end in range(1, len(letters) + 1):
        reachable[end] = any(
            reachable[start] and letters[start:end] in _WORDS
            for start in range(max(0, end - longest), end)
        )
    return reachable[-1]


def _is_placeholder(token: str) -> bool:
    """A value copied from examples: only known words once digits and punctuation go."""
    letters = "".join(c for c in token.lower() if c.isalpha())
    return not letters or _segments_into_words(letters)


def _strength_bits(token: str) -> float:
    """Estimated strength: length times alphabet, with words and repeats counted as little.

    :func:`encoder.keys.estimate_secret_bits` counts every character as drawn at random
    from the smallest alphabet holding them all: ``admin-token-please-admin-token`` would
    count as random. Here known words are cut out first and counted as :data:`_WORD_BITS`
    each, and long runs of one character are cut short, so that what remains is estimated as
    random. A token drawn at random keeps (nearly) its full estimate even when a word
    appears in it by chance (or on purpose): the rest of it still carries the bits.
    """
    rest, words, lowered, i = [], 0, token.lower(), 0
    longest = max(len(w) for w in _WORDS)
    while i < len(token):
        match = next(
            (
                n
                for n in range(min(longest, len(token) - i), _MIN_WORD - 1, -1)
                if lowered[i : i + n] in _WORDS
            ),
            0,
        )
        if match:
            words, i = words + 1, i + match
            continue
        rest.append(token[i])
        i += 1
    collapsed: list[str] = []
    for char in rest:
        if len(collapsed) >= _RUN and all(c == char for c in collapsed[-_RUN:]):
            continue
        collapsed.append(char)
    text = "".join(collapsed)
    return (estimate_secret_bits(text) if text else 0.0) + words * _WORD_BITS


def check_admin_token(token: str | None, *, for_command: str | None = None) -> str:
    """Return the admin token if it is strong enough, else raise :class:`AdminTokenError`.

    The rule: refused if it is a placeholder — made only of words found in example tokens
    (``admin``, ``token``, ``changeme`` …) once digits and punctuation are removed — or if
    its estimated strength is below :data:`MIN_ADMIN_TOKEN_BITS` bits (see
    :func:`_strength_bits`). Words inside a long random token are fine. The message never
    contains the token.

    Args:
        token: The value of ``PACELINK_ADMIN_TOKEN``, if set.
        for_command: The operator command that needs the token (e.g. ``pacelink unit
            project create``), or ``None`` when the unit itself is starting: the message
            says what the token is needed for.
    """
    if for_command is None:
        needed = "the linkage unit refuses to start without an admin token"
        refused = "the linkage unit refuses to start with it"
    else:
        needed = (f"`{for_command}` calls the linkage unit as its operator, with the admin "
                  "token the unit was started with")  # fmt: skip
        refused = (
            "the linkage unit refuses to start with such a token, so it cannot be the one "
            "the unit runs with"
        )
    if not token or not token.strip():
        if for_command is None:
            raise AdminTokenError(f"PACELINK_ADMIN_TOKEN is not set: {needed}; {_HOW_TO_CREATE}")
        raise AdminTokenError(f"PACELINK_ADMIN_TOKEN is not set: {needed}; set it to that token")
    token = token.strip()
    if _is_placeholder(token):
        raise AdminTokenError(
            "PACELINK_ADMIN_TOKEN is a placeholder: once digits and punctuation are removed "
            "it holds only words found in example tokens (such as admin, token, secret); "
            f"{refused}; {_HOW_TO_CREATE}"
        )
    bits = _strength_bits(token)
    if bits < MIN_ADMIN_TOKEN_BITS:
        raise AdminTokenError(
            f"PACELINK_ADMIN_TOKEN is too weak: about {bits:.0f} bits, at least "
            f"{MIN_ADMIN_TOKEN_BITS} are required (strength is estimated from the length and "
            "the kinds of characters used, counting known words and repeated characters as "
            f"a few bits only; 32 random hex characters are 128 bits); {refused}; "
            f"{_HOW_TO_CREATE}"
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
    scheduler: str | None = Field(
        default=None,
        description="Dask scheduler address (tcp://host:8786): runs compare on its workers, "
        "which must see the data folder (shared storage).",
    )  # fmt: skip
    retention_check_seconds: float = Field(default=60.0, gt=0)
    anonymous_audit_seconds: float = Field(
        default=60.0, gt=0,
        description="At most one audit entry per this many seconds counts the requests "
        "refused for a missing or invalid token (they have no actor; see docs/service.md).",
    )  # fmt: skip

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
