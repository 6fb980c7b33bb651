"""The partnership secret: generation, loading from file/environment/prompt, and its check value."""

from __future__ import annotations

import getpass
import math
import os
import secrets
import shlex
import stat
import string
import sys
from dataclasses import dataclass, field
from pathlib import Path

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

__all__ = [
    "MIN_SECRET_BITS",
    "SECRET_ENV_VAR",
    "Secret",
    "SecretError",
    "check_private_file",
    "estimate_secret_bits",
    "generate_secret",
    "key_check_value",
    "load_secret",
    "write_secret",
]

#: Below this many bits of estimated strength a secret is refused.
MIN_SECRET_BITS = 128
#: Environment variable a secret may be read from (never from argv).
SECRET_ENV_VAR = "PACELINK_SECRET"
# HKDF label for the key check value. It differs from any label clkhash uses, so the check
# value reveals nothing about the keys that set Bloom-filter bits.
_KCV_INFO = b"pacelink key check value v1"
_KCV_SALT = b"pacelink-kcv"


class SecretError(ValueError):
    """The secret is missing, unreadable or too weak. Messages never contain the secret."""


@dataclass(frozen=True)
class Secret:
    """A partnership secret. Its repr and str are redacted so it cannot leak into logs."""

    value: str = field(repr=False)

    def __repr__(self) -> str:
        return "Secret('**********')"

    __str__ = __repr__

    def as_bytes(self) -> bytes:
        """The secret as clkhash uses it: the UTF-8 bytes of the stripped text."""
        return self.value.encode("utf-8")


_ALPHABETS: tuple[tuple[frozenset[str], int], ...] = (
    (frozenset(string.digits), 10),
    (frozenset(string.hexdigits), 16),
    (frozenset(string.ascii_lowercase), 26),
    (frozenset(string.ascii_uppercase), 26),
    (frozenset(string.ascii_letters + string.digits), 62),
    (frozenset(string.ascii_letters + string.digits + "+/=-_"), 64),
    (frozenset(string.printable), 95),
)


def estimate_secret_bits(text: str) -> float:
    """Upper bound on the strength of a secret, in bits.

    Length times log2 of the smallest common alphabet that holds every character: a 32-digit
    hex string counts 128 bits, a 16-letter word only 75. This is an upper bound (a
    pass-phrase is far weaker than its length suggests), which is why keygen exists.
    """
    chars = set(text)
    for alphabet, size in _ALPHABETS:
        if chars <= alphabet:
            return len(text) * math.log2(size)
    return len(text.encode("utf-8")) * 8.0


def _check(text: str, source: str) -> Secret:
    stripped = text.strip()
    if not stripped:
        raise SecretError(f"the secret from {source} is empty")
    bits = estimate_secret_bits(stripped)
    if bits < MIN_SECRET_BITS:
        raise SecretError(
            f"the secret from {source} is too short: about {bits:.0f} bits, at least "
            f"{MIN_SECRET_BITS} are required; create one with `pacelink keygen --out KEY`"
        )
    return Secret(stripped)


def load_secret(secret_file: Path | None = None, *, prompt: bool = True) -> Secret:
    """Load the secret from a file, else the environment, else an interactive prompt.

    A secret file that its group or other users may read is refused, as ssh refuses such a
    private key: whoever can read the secret can compute anyone's encoding.

    Args:
        secret_file: File holding the secret; surrounding whitespace is stripped.
        prompt: Ask on the terminal when neither file nor environment gives one.

    Raises:
        SecretError: No secret available, unreadable, readable by others, or too weak.
    """
    if secret_file is not None:
        try:
            with secret_file.open("rb") as fh:
                check_private_file(secret_file, os.fstat(fh.fileno()).st_mode, "secret file")
                raw = fh.read()
        except OSError as exc:
            raise SecretError(f"cannot read secret file {secret_file}: {exc.strerror}") from None
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError:
            raise SecretError(f"secret file {secret_file} is not UTF-8 text") from None
        return _check(text, f"file {secret_file}")
    env = os.environ.get(SECRET_ENV_VAR)
    if env is not None:
        return _check(env, f"environment variable {SECRET_ENV_VAR}")
    if prompt and sys.stdin.isatty():
        return _check(getpass.getpass("Partnership secret: "), "the prompt")
    raise SecretError(
        f"no secret given: use --secret-file KEY or set {SECRET_ENV_VAR} "
        "(secrets are never taken from the command line)"
    )


def check_private_file(path: Path, mode: int, what: str) -> None:
    """Refuse a file of secrets (the partnership secret, a party token) that group or others
    may read or write, as ssh refuses such a private key.

    POSIX only: Windows protects files by access lists, which these bits do not describe.

    Args:
        mode: The file's `st_mode`, from the descriptor that will be read (no race).
        what: How the message names the file, e.g. "secret file".

    Raises:
        SecretError: Naming the file, its mode and the command that fixes it.
    """
    if os.name != "posix" or not stat.S_ISREG(mode):
        return
    loose = stat.S_IMODE(mode) & 0o077
    if loose:
        fix = f"chmod 600 {shlex.quote(str(path))}"
        raise SecretError(
            f"{what} {path} is readable or writable by other users "
            f"(mode {stat.S_IMODE(mode):04o}); restrict it to yourself with: {fix}"
        )


def generate_secret() -> Secret:
    """A fresh 256-bit random secret, hex-encoded (64 characters)."""
    return Secret(secrets.token_hex(32))


def write_secret(path: Path, secret: Secret, *, overwrite: bool = False) -> None:
    """Write the secret to a new file readable by its owner only (mode 0600).

    The file is created with 0600 from the start, so the secret is never briefly readable
    by others.
    """
    flags = os.O_WRONLY | os.O_CREAT | (os.O_TRUNC if overwrite else os.O_EXCL)
    try:
        fd = os.open(path, flags, 0o600)
    except FileExistsError:
        raise SecretError(f"{path} already exists; refusing to overwrite a secret") from None
    except OSError as exc:
        raise SecretError(f"cannot create secret file {path}: {exc.strerror}") from None
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        fh.write(secret.value + "\n")
    os.chmod(path, 0o600)


def key_check_value(secret: Secret) -> str:
    """A public value that proves two files used the same secret without revealing it.

    HKDF-SHA256 with its own salt and label, 128 bits, hex.
    """
    hkdf = HKDF(algorithm=hashes.SHA256(), length=16, salt=_KCV_SALT, info=_KCV_INFO)
    return hkdf.derive(secret.as_bytes()).hex()
