"""The center as it runs in production, on uvloop: agents keep registering with their
certificate and the link comes up (a stream server there swallowed the ClientHello)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
import uvloop
from sqlalchemy.ext.asyncio import AsyncEngine
from structlog.testing import capture_logs

from center.store.db import create_engine, upgrade_database
from tests.integration.cluster import (
    add_group,
    approve_agent,
    poll,
    running_agent,
    running_center,
)

pytestmark = [pytest.mark.slow, pytest.mark.timeout(120)]
WAIT_S = 20.0
REGISTER_EVERY_S = 0.2


def test_an_agent_with_a_certificate_registers_again_and_links_on_uvloop(
    sqlite_url: str, tmp_path: Path
) -> None:
    """Its own loop: pytest-asyncio's is the default one, which never showed the fault."""

    async def main() -> None:
        assert isinstance(asyncio.get_running_loop(), uvloop.Loop)
        async with asyncio.timeout(60):
            await upgrade_database(sqlite_url)
        engine = create_engine(sqlite_url)
        try:
            async with asyncio.timeout(2 * WAIT_S):
                await _registers_again(sqlite_url, engine, tmp_path)
        finally:
            await engine.dispose()

    uvloop.run(main())


async def _registers_again(db_url: str, engine: AsyncEngine, tmp_path: Path) -> None:
    with capture_logs() as logs:
        async with (
            running_center(db_url) as center,
            running_agent(
                tmp_path, center.registration_port, agent_register_interval_s=REGISTER_EVERY_S
            ) as agent,
        ):
            aid = await approve_agent(engine, "agent-1", await add_group(engine))

            async def linked() -> bool:
                leader = center.leader
                link = leader.pool.links.get(aid) if leader else None
                return link is not None and link.connected and link.conn is not None

            await poll(linked, WAIT_S)
            assert agent.tls.link.material is not None, "the agent has its certificate"
            seen = _registrations(logs)

            async def registered_again_with_it() -> bool:
                return _registrations(logs) >= seen + 3

            await poll(registered_again_with_it, WAIT_S)
    refused = [e for e in logs if e["event"] in {"center.tls_refused", "agent.register_failed"}]
    assert not [e for e in refused if "Connect call failed" not in str(e.get("error", ""))]


def _registrations(logs: list[dict[str, object]]) -> int:
    return sum(1 for e in logs if e["event"] == "agent.registered" and "aid" in e)
