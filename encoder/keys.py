"""Keys: the partnership secret (shared by the partners) and a partner's own record key.

The partnership secret sets the Bloom-filter bits; every partner holds it, the linkage unit
never does. The record key is one partner's alone: it turns that partner's local record IDs
into pseudonyms (HMAC-SHA256, 128 bits) that the linkage unit uses to recognise an updated
record in a later delivery and to withdraw records, without learning the IDs. No one else
can compute or reverse them. The two files look different on disk (a record key file opens
with `RECORD_KEY_MARKER`), so neither can be used in place of the other by mistake.
"""

from __future__ import annotations

import getpass
import hashlib
import hmac
import math
import os
import secrets
import shlex
import stat
import string
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from encoder.atomic import atomic_write

if TYPE_CHECKING:  # numpy is imported on use: light commands (keygen) start faster without it
    import numpy as np
    from numpy.typing import NDArray

__all__ = [
    "MIN_SECRET_BITS",
    "PSEUDONYM_ALGORITHM",
    "PSEUDONYM_BYTES",
    "RECORD_KEY_BYTES",
    "RECORD_KEY_MARKER",
    "SECRET_ENV_VAR",
    "RecordKey",
    "Secret",
    "SecretError",
    "check_private_file",
    "estimate_secret_bits",
    "generate_record_key",
    "generate_secret",
    "hardening_key",
    "key_check_value",
    "load_record_key",
    "load_secret",
    "pseudonym_hex",
    "write_record_key",
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
# HKDF salt of the hardening keys (`encoder.hardening`); each use has its own label.
_HARDENING_SALT = b"pacelink-hardening"

#: A record key file is this marker followed by the key as 64 hex digits, on one line.
RECORD_KEY_MARKER = "pacelink-record-key-v1:"
#: Length of a record key.
RECORD_KEY_BYTES = 32
#: Length of a record pseudonym (HMAC-SHA256 truncated to 128 bits).
PSEUDONYM_BYTES = 16
#: How the `.plk` header names the pseudonym function.
PSEUDONYM_ALGORITHM: Literal["hmac-sha256-128"] = "hmac-sha256-128"
# Distinct HMAC messages for the check value and the pseudonyms: the public check value is
# never the pseudonym of any local ID.
_RECORD_CHECK_LABEL = b"pacelink/record-key-check/v1"
_PSEUDONYM_LABEL = b"pacelink/record-pseudonym/v1:"
_HEX_DIGITS = frozenset("0123456789abcdef")


class SecretError(ValueError):
    """The secret is missing, unreadable or too weak. Messages never contain the secret."""


@dataclass(frozen=True)
class Secret:
    """A partnership secret. Its repr and str are redacted so it cannot leak into logs."""

    value: str = field(repr=False)

    def __repr__(self) -> str:
        """Redacted: a secret never reaches a log or a traceback."""
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
        _refuse_record_key(text, f"secret file {secret_file}")
        return _check(text, f"file {secret_file}")
    env = os.environ.get(SECRET_ENV_VAR)
    if env is not None:
        _refuse_record_key(env, f"environment variable {SECRET_ENV_VAR}")
        return _check(env, f"environment variable {SECRET_ENV_VAR}")
    if prompt and sys.stdin.isatty():
        typed = getpass.getpass("Partnership secret: ")
        _refuse_record_key(typed, "the text typed at the prompt")
        return _check(typed, "the prompt")
    raise SecretError(
        f"no secret given: use --secret-file KEY or set {SECRET_ENV_VAR} "
        "(secrets are never taken from the command line)"
    )


def _refuse_record_key(text: str, source: str) -> None:
    """Refuse a record key given as the partnership secret, by its marker.

    It would pass as a strong secret and give encodings no other partner can match.
    """
    if text.strip().startswith(RECORD_KEY_MARKER):
        raise SecretError(
            f"{source} holds a pacelink record key (your own key for record pseudonyms, for "
            "--record-key), not the partnership secret expected here: give the partnership "
            "secret shared by the partners"
        )


def check_private_file(path: Path, mode: int, what: str) -> None:
    """Refuse a file of secrets that group or others may read or write.

    The partnership secret and party tokens are refused as ssh refuses such a private key.
    POSIX only: Windows protects files by access lists, which these bits do not describe.

    Args:
        path: The file, as messages name it.
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
    by others, and appears whole or not at all.

    Raises:
        SecretError: The file exists (and not `overwrite`), or cannot be created.
    """
    try:
        with atomic_write(path, overwrite=overwrite) as fh:
            fh.write(secret.value + "\n")
    except FileExistsError:
        raise SecretError(f"{path} already exists; refusing to overwrite a secret") from None
    except OSError as exc:
        raise SecretError(f"cannot create secret file {path}: {exc.strerror}") from None


def key_check_value(secret: Secret) -> str:
    """A public value that proves two files used the same secret without revealing it.

    HKDF-SHA256 with its own salt and label, 128 bits, hex.
    """
    hkdf = HKDF(algorithm=hashes.SHA256(), length=16, salt=_KCV_SALT, info=_KCV_INFO)
    return hkdf.derive(secret.as_bytes()).hex()


def hardening_key(secret: Secret, purpose: str) -> bytes:
    """A 256-bit key for one hardening step (`encoder.hardening`), from the secret.

    HKDF-SHA256 with pacelink's hardening salt and the label `pacelink hardening <purpose>
    v1`: no clkhash label, so the key says nothing of the keys that set Bloom-filter bits,
    nor of the key check value or the other steps' keys. Every partner holding the secret
    derives the same key.
    """
    info = b"pacelink hardening " + purpose.encode("ascii") + b" v1"
    hkdf = HKDF(algorithm=hashes.SHA256(), length=32, salt=_HARDENING_SALT, info=info)
    return hkdf.derive(secret.as_bytes())


# --------------------------------------------------------------------------- record keys


def pseudonym_hex(rows: NDArray[np.uint8]) -> NDArray[np.str_]:
    """Lower-case hex of each row of a `(n, 16)` uint8 array, as a `<U32` array.

    Vectorised (a lookup table over nibbles): a million pseudonyms take milliseconds.
    """
    import numpy as np  # noqa: PLC0415 - numpy adds ~50 ms; keygen never needs it

    if rows.ndim != 2 or rows.shape[1] != PSEUDONYM_BYTES:
        raise ValueError(f"expected rows of {PSEUDONYM_BYTES} bytes")
    digits = np.frombuffer(b"0123456789abcdef", dtype=np.uint8)
    n = rows.shape[0]
    chars = np.empty((n, 2 * PSEUDONYM_BYTES), dtype=np.uint8)
    chars[:, 0::2] = digits[rows >> 4]
    chars[:, 1::2] = digits[rows & 0x0F]
    width = 2 * PSEUDONYM_BYTES
    result: NDArray[np.str_] = chars.view(f"S{width}").reshape(n).astype(f"<U{width}")
    return result


@dataclass(frozen=True)
class RecordKey:
    """A partner's own key for record pseudonyms: 32 random bytes, never shared.

    Its repr and str show only the public check value, so the key cannot leak into logs.
    """

    value: bytes = field(repr=False)

    def __post_init__(self) -> None:
        """Refuse a key of the wrong length."""
        if len(self.value) != RECORD_KEY_BYTES:
            raise SecretError(f"a record key has {RECORD_KEY_BYTES} bytes")

    def __repr__(self) -> str:
        """The check value only: the key itself never reaches a log."""
        return f"RecordKey(check_value={self.check_value!r})"

    __str__ = __repr__

    @property
    def check_value(self) -> str:
        """Public value naming the key: HMAC-SHA256(key, its own label), 128 bits, 32 hex.

        The linkage unit pins it per party, so it can refuse a file encoded with another
        partner's key, or with a lost and replaced one.
        """
        return hmac.digest(self.value, _RECORD_CHECK_LABEL, "sha256")[:PSEUDONYM_BYTES].hex()

    def pseudonym_bytes(self, local_ids: Sequence[str]) -> NDArray[np.uint8]:
        """`(n, 16)` uint8: row i is HMAC-SHA256(key, label + UTF-8 of `local_ids[i]`), truncated.

        IDs are taken as given: pass canonical local IDs, as the key map holds them (see
        `encoder.keymap.canonical_local_id`). The HMAC starts from precomputed inner and
        outer pad states (RFC 2104), half the cost of one `hmac.digest` per ID (about 2 s per
        million IDs); a test checks it against `hmac.digest`.
        """
        import numpy as np  # noqa: PLC0415 - as above, not for keygen

        pad = self.value.ljust(hashlib.sha256().block_size, b"\0")
        inner = hashlib.sha256(bytes(b ^ 0x36 for b in pad) + _PSEUDONYM_LABEL)
        outer = hashlib.sha256(bytes(b ^ 0x5C for b in pad))
        copy_inner, copy_outer = inner.copy, outer.copy
        parts: list[bytes] = []
        append = parts.append
        for local_id in local_ids:
            i = copy_inner()
            i.update(local_id.encode("utf-8"))
            o = copy_outer()
            o.update(i.digest())
            append(o.digest()[:PSEUDONYM_BYTES])
        result: NDArray[np.uint8] = np.frombuffer(b"".join(parts), dtype=np.uint8).reshape(
            len(parts), PSEUDONYM_BYTES
        )
        return result

    def pseudonyms(self, local_ids: Sequence[str]) -> NDArray[np.str_]:
        """One 32-hex pseudonym per local ID (`<U32`), as `Encodings.record_keys` shows them."""
        return pseudonym_hex(self.pseudonym_bytes(local_ids))


def generate_record_key() -> RecordKey:
    """A fresh record key: 32 random bytes."""
    return RecordKey(secrets.token_bytes(RECORD_KEY_BYTES))


def write_record_key(path: Path, key: RecordKey, *, overwrite: bool = False) -> None:
    """Write a record key file (`RECORD_KEY_MARKER` + 64 hex digits), readable by its owner only.

    Written to a temporary file in the same folder (mode 0600 from the start) and moved into
    place only when complete, so a failure never leaves a half-written key.

    Raises:
        SecretError: The file exists (and not `overwrite`), or cannot be created.
    """
    try:
        # Mode 0600 from the start; without `overwrite` an existing key is never replaced.
        with atomic_write(path, overwrite=overwrite) as fh:
            fh.write(RECORD_KEY_MARKER + key.value.hex() + "\n")
    except FileExistsError:
        raise SecretError(
            f"{path} already exists; refusing to overwrite a record key (a new key makes your "
            "next delivery look like all-new clients)"
        ) from None
    except OSError as exc:
        raise SecretError(f"cannot create record key file {path}: {exc.strerror}") from None


def load_record_key(path: Path) -> RecordKey:
    """Read a record key file written by `write_record_key`.

    Refused, as the partnership secret is, when group or others may read it. A partnership
    secret file given here by mistake is recognised and named as such.

    Raises:
        SecretError: Unreadable, readable by others, a partnership secret, or malformed; the
            message names the file, never its content.
    """
    try:
        with path.open("rb") as fh:
            check_private_file(path, os.fstat(fh.fileno()).st_mode, "record key file")
            raw = fh.read(4096)  # a record key file is one short line
    except OSError as exc:
        raise SecretError(f"cannot read record key file {path}: {exc.strerror}") from None
    expected = f"expected your record key file, one line starting {RECORD_KEY_MARKER}"
    try:
        text = raw.decode("utf-8").strip()
    except UnicodeDecodeError:
        raise SecretError(f"{path} is not a pacelink record key file ({expected})") from None
    if not text.startswith(RECORD_KEY_MARKER):
        if "\n" not in text and estimate_secret_bits(text) >= MIN_SECRET_BITS:
            raise SecretError(
                f"{path} looks like the partnership secret, not a record key ({expected}); "
                "never use the partnership secret as a record key: create your own with "
                "`pacelink keygen --record-key --out FILE`"
            )
        raise SecretError(f"{path} is not a pacelink record key file ({expected})")
    digits = text[len(RECORD_KEY_MARKER) :]
    if len(digits) != 2 * RECORD_KEY_BYTES or not set(digits) <= _HEX_DIGITS:
        raise SecretError(
            f"record key file {path} is damaged: expected {2 * RECORD_KEY_BYTES} lower-case "
            f"hex digits after {RECORD_KEY_MARKER}; restore it from your backup"
        )
    return RecordKey(bytes.fromhex(digits))
