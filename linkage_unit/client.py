"""A client of the linkage unit's HTTP API, used by the partner and operator commands.

Errors come back as :class:`UnitError` carrying the unit's own message (which never holds
identifiers), the HTTP status and the request that failed.
"""

from __future__ import annotations

import hashlib
import ssl
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import httpx

__all__ = ["UnitClient", "UnitError"]

_CHUNK = 1 << 20


class UnitError(Exception):
    """The unit refused a request or could not be reached."""

    def __init__(self, message: str, status: int | None = None) -> None:
        """Keep the unit's message and the HTTP status (None when the unit was not reached)."""
        super().__init__(message)
        self.status = status


def _detail(response: httpx.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        return response.text[:200] or response.reason_phrase
    detail = body.get("detail", body) if isinstance(body, dict) else body
    if isinstance(detail, list):  # FastAPI validation errors
        return "; ".join(
            f"{'.'.join(str(p) for p in d.get('loc', []))}: {d.get('msg')}" for d in detail
        )
    return str(detail)


class UnitClient:
    """Calls the unit at ``url`` with ``token`` (admin or party)."""

    def __init__(
        self, url: str, token: str, *, verify: bool | str = True, timeout: float = 60.0,
        transport: httpx.BaseTransport | None = None,
    ) -> None:  # fmt: skip
        """Open a connection pool to the unit.

        `verify` is True, False or the path of a CA bundle (a unit with its own certificate);
        `transport`, when given, replaces httpx's network transport.
        """
        self.url = url.rstrip("/")
        # A CA bundle (a unit with its own certificate) becomes an SSL context.
        trust: bool | ssl.SSLContext = (
            ssl.create_default_context(cafile=verify) if isinstance(verify, str) else verify
        )
        self._http = httpx.Client(
            base_url=self.url,
            headers={"Authorization": f"Bearer {token}"},
            verify=trust,
            timeout=timeout,
            transport=transport,
        )

    def close(self) -> None:
        """Close the connection pool."""
        self._http.close()

    def __enter__(self) -> UnitClient:
        """Use the client in a `with` block, which closes it."""
        return self

    def __exit__(self, *exc: object) -> None:
        """Close the connection pool."""
        self.close()

    def _request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        try:
            response = self._http.request(method, path, **kwargs)
        except httpx.HTTPError as exc:
            raise UnitError(f"cannot reach the linkage unit at {self.url}: {exc}") from None
        if response.status_code >= 400:
            raise UnitError(
                f"{method} {path}: {_detail(response)} (HTTP {response.status_code})",
                response.status_code,
            )
        return response

    def _json(self, method: str, path: str, **kwargs: Any) -> Any:
        return self._request(method, path, **kwargs).json()

    # ----------------------------------------------------------------- operator

    def create_project(self, body: dict[str, Any]) -> dict[str, Any]:
        """Create a project; returns its ID and the party tokens."""
        result: dict[str, Any] = self._json("POST", "/projects", json=body)
        return result

    def project(self, project_id: str) -> dict[str, Any]:
        """A project's settings and state."""
        result: dict[str, Any] = self._json("GET", f"/projects/{project_id}")
        return result

    def delete_project(self, project_id: str) -> None:
        """Delete a project and its data."""
        self._request("DELETE", f"/projects/{project_id}")

    def start_run(self, project_id: str, threshold: float | str | None = None) -> dict[str, Any]:
        """Queue a run."""
        result: dict[str, Any] = self._json(
            "POST", f"/projects/{project_id}/runs", json={"threshold": threshold}
        )
        return result

    def run(self, project_id: str, run_id: str) -> dict[str, Any]:
        """A run's status."""
        result: dict[str, Any] = self._json("GET", f"/projects/{project_id}/runs/{run_id}")
        return result

    def runs(self, project_id: str) -> list[dict[str, Any]]:
        """The project's runs, newest first."""
        result: list[dict[str, Any]] = self._json("GET", f"/projects/{project_id}/runs")
        return result

    def wait(
        self, project_id: str, run_id: str, *, poll: float = 0.5, timeout: float = 3600.0,
        on_update: Callable[[dict[str, Any]], None] | None = None,
    ) -> dict[str, Any]:  # fmt: skip
        """Poll a run until it is done or failed."""
        deadline = time.monotonic() + timeout
        while True:
            run = self.run(project_id, run_id)
            if on_update is not None:
                on_update(run)
            if run["status"] in ("done", "failed"):
                return run
            if time.monotonic() > deadline:
                raise UnitError(f"run {run_id} did not finish within {timeout:.0f} s")
            time.sleep(poll)

    def audit(self, project_id: str | None = None, after: int = 0) -> list[dict[str, Any]]:
        """Audit entries."""
        params: dict[str, Any] = {"after": after}
        if project_id:
            params["project_id"] = project_id
        result: list[dict[str, Any]] = self._json("GET", "/audit", params=params)
        return result

    def verify_audit(self) -> dict[str, Any]:
        """Have the unit check its audit chain."""
        result: dict[str, Any] = self._json("GET", "/audit/verify")
        return result

    def scores(self, project_id: str) -> dict[str, Any]:
        """Score histogram and pairs near the threshold (operator)."""
        result: dict[str, Any] = self._json("GET", f"/projects/{project_id}/releases/scores")
        return result

    # ----------------------------------------------------------------- party

    def upload(self, project_id: str, path: Path, kind: str | None = None) -> dict[str, Any]:
        """Stream a `.plk` file to the unit as a new batch.

        Args:
            project_id: The project to add the batch to.
            path: The `.plk` file.
            kind: "snapshot" (the party's whole current list: records absent from it are
                withdrawn) or "delta" (new and changed records); None lets the unit
                decide: a party's first upload is a snapshot, later ones deltas.
        """
        digest = hashlib.sha256()
        with path.open("rb") as fh:
            for block in iter(lambda: fh.read(_CHUNK), b""):
                digest.update(block)

        def body() -> Iterator[bytes]:
            with path.open("rb") as fh:
                yield from iter(lambda: fh.read(_CHUNK), b"")

        result: dict[str, Any] = self._json(
            "POST",
            f"/projects/{project_id}/uploads",
            params={} if kind is None else {"kind": kind},
            content=body(),
            headers={
                "Content-Type": "application/octet-stream",
                "Content-Length": str(path.stat().st_size),
                "X-Content-SHA256": digest.hexdigest(),
            },
        )
        return result

    def withdraw(
        self, project_id: str, record_keys: Sequence[str], *, allow_unknown: bool = False
    ) -> dict[str, Any]:
        """Withdraw the party's records named by their record keys (a run is queued)."""
        result: dict[str, Any] = self._json(
            "POST",
            f"/projects/{project_id}/withdrawals",
            json={"record_keys": list(record_keys), "allow_unknown": allow_unknown},
        )
        return result

    def uploads(self, project_id: str) -> list[dict[str, Any]]:
        """Uploads visible to the caller."""
        result: list[dict[str, Any]] = self._json("GET", f"/projects/{project_id}/uploads")
        return result

    def mapping(self, project_id: str, upload_id: str | None = None) -> str:
        """CSV ``upload_id,row,linkage_id`` of the caller's rows."""
        params = {"upload": upload_id} if upload_id else {}
        return self._request("GET", f"/projects/{project_id}/releases/mapping", params=params).text

    def flags(self, project_id: str, other: str, upload_id: str | None = None) -> str:
        """CSV ``upload_id,row,flag``: which of the caller's rows ``other`` also holds."""
        params = {"upload": upload_id} if upload_id else {}
        return self._request(
            "GET", f"/projects/{project_id}/releases/flags/{other}", params=params
        ).text

    def counts(self, project_id: str) -> dict[str, Any]:
        """Overlap counts, suppressed and rounded."""
        result: dict[str, Any] = self._json("GET", f"/projects/{project_id}/releases/counts")
        return result
