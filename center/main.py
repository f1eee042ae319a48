"""Starting a center process: the event loop choice and the schema check."""

from __future__ import annotations

import asyncio

import structlog

from center.config import CenterConfig
from center.db import current_revision, head_revision, safe_url

log = structlog.get_logger("center")


async def _serve(config: CenterConfig) -> int:
    from center.service import CenterService

    try:
        found = await current_revision(config.db_url)
    except Exception as exc:  # unreachable database: one clear line, no traceback
        log.error("center.database_unreachable", url=safe_url(config.db_url), reason=str(exc))
        return 1
    if found != head_revision():
        log.error(
            "center.schema_outdated",
            url=safe_url(config.db_url),
            found=found,
            wanted=head_revision(),
            fix="run `unitedcron db upgrade`",
        )
        return 2
    await CenterService(config).serve()
    return 0


def run_center(config: CenterConfig) -> int:
    """Serve until a signal; the center is network-bound, so it runs on uvloop when allowed."""
    if config.center_uvloop:
        import uvloop

        return uvloop.run(_serve(config))
    return asyncio.run(_serve(config))
