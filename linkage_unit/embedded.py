"""A whole linkage unit inside one process: the API on loopback and an in-process worker.

`pacelink demo` runs on it, and so do the service tests: requests still travel over real
HTTP on 127.0.0.1, and the worker still claims runs through the database.
"""

from __future__ import annotations

import secrets
import socket
import threading
import time
from pathlib import Path
from types import TracebackType

import uvicorn
from pydantic import SecretStr

from linkage_unit.api import create_app
from linkage_unit.jobs.worker import Worker
from linkage_unit.settings import UnitSettings

__all__ = ["EmbeddedUnit"]


class EmbeddedUnit:
    """Start with ``with EmbeddedUnit(data_dir) as unit:``; ``unit.url`` is its address.

    Args:
        data_dir: The unit's data folder.
        database_url: Default: SQLite in the data folder.
        admin_token: Default: a fresh random one (``unit.admin_token``).
        worker: Whether to run an in-process worker.
        settings: Extra settings (heartbeat, staleness …) as keyword arguments.
    """

    def __init__(
        self, data_dir: Path, *, database_url: str | None = None, admin_token: str | None = None,
        worker: bool = True, **settings: float,
    ) -> None:  # fmt: skip
        """Prepare the unit's settings; `with` starts it."""
        self.admin_token = admin_token or secrets.token_hex(32)
        self.settings = UnitSettings(
            data_dir=data_dir, database_url=database_url,
            admin_token=SecretStr(self.admin_token),
            **settings,  # type: ignore[arg-type]
        )  # fmt: skip
        self._want_worker = worker
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._server: uvicorn.Server | None = None
        self.url = ""

    def __enter__(self) -> EmbeddedUnit:
        """Start the server (and the worker) on a free loopback port."""
        app = create_app(self.settings)
        self.app = app
        self._state = app.state.unit
        # proto=IPPROTO_TCP: asyncio sets TCP_NODELAY only on sockets that say they are TCP,
        # and without it every response waits ~40 ms for a delayed ACK (Nagle).
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
        self.url = f"http://127.0.0.1:{port}"
        config = uvicorn.Config(app, log_level="warning", access_log=False, lifespan="off")
        self._server = uvicorn.Server(config)
        server = self._server
        api = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True,
                               name="pacelink-api")  # fmt: skip
        api.start()
        self._threads.append(api)
        deadline = time.monotonic() + 30
        while not server.started:
            if not api.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("the embedded linkage unit did not start")
            time.sleep(0.01)
        if self._want_worker:
            worker = Worker(self.settings, name="embedded")
            thread = threading.Thread(target=worker.serve, args=(self._stop,), daemon=True,
                                      name="pacelink-worker")  # fmt: skip
            thread.start()
            self._threads.append(thread)
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:  # fmt: skip
        """Stop the server and the worker, and wait for them."""
        self._stop.set()
        if self._server is not None:
            self._server.should_exit = True
        for thread in self._threads:
            thread.join(timeout=30)
        self._state.engine.dispose()
