"""The linkage unit's HTTP API (FastAPI), organised by resource.

`create_app` builds the application for one data folder and database; `pacelink unit
serve` runs it with uvicorn beside a worker process. OpenAPI docs are served at `/docs`,
the web console (:mod:`linkage_unit.console`) at `/console`.
"""

from __future__ import annotations

from fastapi import FastAPI

from linkage_unit import console
from linkage_unit.api import audit, projects, releases, runs, uploads, withdrawals
from linkage_unit.api.deps import Refusal, UnitState, hash_token
from linkage_unit.api.refusals import handle_refusal
from linkage_unit.audit import load_audit_key
from linkage_unit.database import make_engine, migrate, session_factory
from linkage_unit.settings import UnitSettings
from linkage_unit.storage import Storage

__all__ = ["create_app"]


def create_app(settings: UnitSettings) -> FastAPI:
    """The API for ``settings``: checks the admin token, migrates the database.

    Raises:
        AdminTokenError: If the admin token is missing, a placeholder or too weak.
    """
    token = settings.checked_admin_token()
    storage = Storage(settings.data_dir)
    storage.prepare()
    engine = make_engine(settings.url())
    migrate(engine)
    app = FastAPI(
        title="pacelink linkage unit",
        summary="Matches partners' encodings; releases only what each project's policy allows.",
        version="1",
    )
    app.state.unit = UnitState(
        settings=settings,
        engine=engine,
        sessions=session_factory(engine),
        storage=storage,
        audit_key=load_audit_key(settings.data_dir),
        admin_token_hash=hash_token(token),
    )
    for module in (projects, uploads, withdrawals, runs, releases, audit):
        app.include_router(module.router)
    app.add_exception_handler(Refusal, handle_refusal)
    console.install(app)  # after the API's handlers: its own replace them, API answers unchanged

    @app.get("/health", tags=["health"])
    def health() -> dict[str, str]:
        """Liveness: the service answers."""
        return {"status": "ok"}

    return app
