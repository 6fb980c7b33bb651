"""Signing in to the console: a signed cookie that says who the caller is, never its token.

A person signs in once with the admin token or a party token (the same tokens the API
takes); the console answers with a cookie ``<kind>.<party>.<expiry>.<token tag>.<mac>``:

* the MAC is HMAC-SHA256 under a key derived from the unit's audit key, so only this unit
  can issue a cookie, and a changed field (another party, a later expiry) is refused;
* the token tag is the first 16 hex digits of the token's stored SHA-256 hash, checked
  again on every request: when the operator's token is rotated or a project (and so its
  parties) is deleted, its cookies stop working at once;
* the cookie is ``HttpOnly`` (no script reads it), ``SameSite=Strict`` (no other site's
  page can make the browser send it, which is what makes the sign-in form safe against
  cross-site request forgery) and ``Secure`` when the unit is served over TLS, and it
  lasts :data:`LIFETIME` seconds.

The token itself is never stored: a stolen cookie expires, a stolen token would not.
"""

from __future__ import annotations

import hashlib
import hmac
import time
from typing import Final

from sqlalchemy.orm import Session

from linkage_unit.api.deps import Caller, UnitState
from linkage_unit.database import Party

__all__ = ["COOKIE", "LIFETIME", "issue", "resolve"]

#: The cookie's name.
COOKIE: Final = "pacelink_console"
#: How long a sign-in lasts, in seconds (a working day).
LIFETIME: Final = 8 * 3600
_LABEL: Final = b"pacelink console session v1"
_TAG: Final = 16


def _key(unit: UnitState) -> bytes:
    return hmac.new(unit.audit_key, _LABEL, hashlib.sha256).digest()


def _mac(unit: UnitState, body: str) -> str:
    return hmac.new(_key(unit), body.encode("ascii"), hashlib.sha256).hexdigest()


def issue(unit: UnitState, caller: Caller, token_hash: str, *, now: float | None = None) -> str:
    """The cookie value for ``caller``, who signed in with the token of ``token_hash``."""
    expires = int((time.time() if now is None else now) + LIFETIME)
    body = f"{caller.kind}.{caller.party_id or 0}.{expires}.{token_hash[:_TAG]}"
    return f"{body}.{_mac(unit, body)}"


def resolve(unit: UnitState, session: Session, cookie: str, *,
            now: float | None = None) -> Caller | None:  # fmt: skip
    """Who the cookie names, or None if it is forged, altered, expired or its token is gone."""
    parts = cookie.split(".")
    if len(parts) != 5 or len(parts[3]) != _TAG:
        return None
    kind, party, expires, tag, mac = parts
    body = ".".join(parts[:4])
    if not hmac.compare_digest(mac, _mac(unit, body)):
        return None
    if not expires.isdigit() or int(expires) < (time.time() if now is None else now):
        return None
    if kind == "admin":
        return Caller("admin") if unit.admin_token_hash.startswith(tag) else None
    if kind != "party" or not party.isdigit():
        return None
    row = session.get(Party, int(party))
    if row is None or not row.token_hash.startswith(tag):
        return None
    caller = Caller("party", row.project_id, row.id, row.name, row.position)
    session.rollback()  # as deps.caller_for_token: hold no SQLite write lock
    return caller
