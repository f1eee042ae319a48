"""Starting the admin process: schema check, then one uvicorn server on uvloop."""

from __future__ import annotations

import asyncio
import contextlib
import signal
import threading
from collections.abc import Iterator

import structlog
import uvicorn

from admin.app import create_app
from admin.config import AdminConfig
from center.store.db import safe_url
from center.store.db import schema_ready as db_schema_ready

log = structlog.get_logger("admin")


async def schema_ready(cfg: AdminConfig) -> int:
    """0 when the database is at the newest revision; otherwise log why and give the exit code."""
    return await db_schema_ready(cfg.db_url, "admin")


class AdminServer(uvicorn.Server):
    """uvicorn's server, but SIGINT/SIGTERM end a clean shutdown with exit status 0 (as the
    center and agent do) instead of re-raising the signal once the server has stopped."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        if threading.current_thread() is not threading.main_thread():
            yield
            return
        # signal.signal, not loop.add_signal_handler: the previous handlers can be restored.
        signals = (signal.SIGINT, signal.SIGTERM)
        original = {sig: signal.signal(sig, self.handle_exit) for sig in signals}
        try:
            yield
        finally:
            for sig, handler in original.items():
                signal.signal(sig, handler)


def server_for(cfg: AdminConfig) -> uvicorn.Server:
    """One process, one event loop: uvloop. The admin only serves HTTP and talks to the
    database (network-bound, like the center); it never spawns processes, which is where
    uvloop is slower (DESIGN §4). Password hashing runs in threads either way."""
    config = uvicorn.Config(
        create_app(cfg),
        host=cfg.admin_listen.host,
        port=cfg.admin_listen.port,
        loop="uvloop",
        log_config=None,  # keep the process's own logging (structlog) as configured
        access_log=False,
        server_header=False,
        # X-Forwarded-For is believed only from the proxies named in the settings: trusted from
        # any local peer, it let a client pick its own address (and so its login throttle).
        proxy_headers=bool(cfg.admin_trusted_proxies),
        forwarded_allow_ips=cfg.admin_trusted_proxies or "",
    )
    return AdminServer(config)


def run_admin(cfg: AdminConfig) -> int:
    """Serve until SIGINT/SIGTERM (uvicorn handles them); the exit code."""
    code = asyncio.run(schema_ready(cfg))
    if code:
        return code
    log.info("admin.starting", url=f"http://{cfg.admin_listen}/", db=safe_url(cfg.db_url))
    server = server_for(cfg)
    server.run()
    return 0 if server.started else 1
