"""Starting a center process: the event loop choice and the schema check."""

from __future__ import annotations

import asyncio

import structlog

from center.bulk import tune_collector
from center.config import CenterConfig
from center.store.db import schema_ready

log = structlog.get_logger("center")


async def _serve(config: CenterConfig) -> int:
    from center.service import CenterService

    code = await schema_ready(config.db_url, "center")
    if code:
        return code
    await CenterService(config).serve()
    return 0


def run_center(config: CenterConfig) -> int:
    """Serve until a signal; the center is network-bound, so it runs on uvloop when allowed."""
    tune_collector()
    if config.center_uvloop:
        import uvloop

        return uvloop.run(_serve(config))
    return asyncio.run(_serve(config))
