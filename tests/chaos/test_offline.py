"""Offline detection of an agent whose link breaks: a reset, or a blackhole that closes nothing."""

from __future__ import annotations

import contextlib
from pathlib import Path

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from center.service import CenterService
from tests.chaos.procs import free_port, now_us
from tests.chaos.proxy import TcpProxy
from tests.integration.cluster import agent_row, approve_agent, poll, running_agent, running_center

pytestmark = [pytest.mark.slow, pytest.mark.timeout(60)]
OFFLINE_AFTER_S = 2.0
PING_S = 0.5
POLL_S = 0.2
# Silence is noticed at the first ping after OFFLINE_AFTER_S, the status written at the next
# poll of the agents; the rest is slack for a loaded machine.
BOUND_S = OFFLINE_AFTER_S + PING_S + POLL_S + 0.6


async def _offline_after(db_url: str, engine: AsyncEngine, tmp_path: Path, breaks: str) -> float:
    """Seconds from breaking the agent's link (`cut` or `blackhole`) to its status 2."""
    port = free_port()
    proxy = TcpProxy(port)
    await proxy.start()
    settings = {
        "center_offline_after_s": OFFLINE_AFTER_S,
        "center_ping_interval_s": PING_S,
        "center_agents_poll_s": POLL_S,
    }
    agent_settings = {
        "agent_listen": f"127.0.0.1:{port}",
        "agent_advertise": f"127.0.0.1:{proxy.port}",
    }
    try:
        async with contextlib.AsyncExitStack() as stack:
            center = await stack.enter_async_context(running_center(db_url, **settings))
            await stack.enter_async_context(
                running_agent(tmp_path, center.registration_port, **agent_settings)
            )
            aid = await approve_agent(engine, "agent-1")
            await poll(lambda: _linked(center, aid), 10)
            began = now_us()
            getattr(proxy, breaks)()
            await poll(lambda: _status(engine, 2), 15)
            return (now_us() - began) / 1e6
    finally:
        await proxy.close()


async def _linked(center: CenterService, aid: int) -> bool:
    return center.leader is not None and center.leader.pool.connected(aid)


async def _status(engine: AsyncEngine, status: int) -> bool:
    row = await agent_row(engine, "agent-1")
    return row is not None and row["status"] == status


async def test_a_reset_link_is_offline_within_the_bound(
    db_url: str, engine: AsyncEngine, tmp_path: Path
):
    """An agent whose connection is reset and refused is unreachable (status 2) within ~3 s."""
    took_s = await _offline_after(db_url, engine, tmp_path, "cut")
    assert took_s <= BOUND_S, f"offline after {took_s:.2f} s, bound {BOUND_S:.2f} s"


async def test_a_silent_link_is_offline_within_the_bound(
    db_url: str, engine: AsyncEngine, tmp_path: Path
):
    """An agent that stops answering without closing (blackhole) is unreachable within ~3 s:
    the silence counts towards offline_after, not only the time after the link is closed."""
    took_s = await _offline_after(db_url, engine, tmp_path, "blackhole")
    assert took_s <= BOUND_S, f"offline after {took_s:.2f} s, bound {BOUND_S:.2f} s"
