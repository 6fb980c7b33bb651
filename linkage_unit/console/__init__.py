"""The linkage unit's web console: pages for the operator and the partners, served by the unit.

``install`` adds the console to the unit's FastAPI app (``pacelink unit serve`` and the
embedded unit): the pages under ``/console`` (:mod:`.views`), their stylesheet and scripts
under ``/console/static`` (no CDN, nothing fetched at run time) and error pages, so a
refused or missing page answers in HTML with the same status and audit entry as the API.
See ``docs/console.md``.
"""

from __future__ import annotations

from pathlib import Path
from urllib.parse import quote

from fastapi import FastAPI, Request
from fastapi.exception_handlers import http_exception_handler
from fastapi.responses import RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from starlette.exceptions import HTTPException as StarletteHTTPException

from linkage_unit.api.deps import Refusal
from linkage_unit.api.refusals import audit_refusal
from linkage_unit.console.views import PREFIX, SECURITY_HEADERS, NotSignedIn, page, router

__all__ = ["PREFIX", "install"]


def _in_console(request: Request) -> bool:
    return request.url.path == PREFIX or request.url.path.startswith(PREFIX + "/")


async def _not_signed_in(request: Request, exc: Exception) -> Response:
    if request.method != "GET":
        return page(request, "error.html", {"status": 401, "message": "Please sign in."}, 401)
    target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    return RedirectResponse(f"{PREFIX}/login?next={quote(target, safe='')}", status_code=303,
                            headers=SECURITY_HEADERS)  # fmt: skip


async def _http_error(request: Request, exc: Exception) -> Response:
    """Console pages answer errors as pages; the API answers as before (JSON)."""
    assert isinstance(exc, StarletteHTTPException)
    if isinstance(exc, Refusal):
        await audit_refusal(request, exc)
    if not _in_console(request):
        return await http_exception_handler(request, exc)
    return page(request, "error.html", {"status": exc.status_code, "message": str(exc.detail)},
                exc.status_code)  # fmt: skip


def install(app: FastAPI) -> None:
    """Serve the console from ``app``."""
    app.include_router(router)
    app.mount(f"{PREFIX}/static", StaticFiles(directory=Path(__file__).parent / "static"),
              name="console-static")  # fmt: skip
    app.add_exception_handler(NotSignedIn, _not_signed_in)
    # Replaces the API's handler of refusals with one that audits them the same way
    # (audit_refusal) and answers console requests with a page.
    app.add_exception_handler(Refusal, _http_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)

    @app.get(PREFIX, include_in_schema=False)
    def console_root() -> Response:
        return RedirectResponse(PREFIX + "/", status_code=307)
