"""Rotating the cluster secret without downtime, as the README's procedure says, step by step."""

from __future__ import annotations

import asyncio
import contextlib
import socket
from pathlib import Path

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from center.store.db import upgrade_database
from center.tables import agents, task_process
from protocol import statuses
from protocol.errors import AuthError
from protocol.stream import Connection, open_handshake
from tests.integration.cluster import (
    add_group,
    add_rule,
    approve_agent,
    now_us,
    poll,
    running_agent,
    running_center,
    runs_of,
)

OLD = "old-cluster-secret-0123456789"
NEW = "new-cluster-secret-9876543210"
pytestmark = [pytest.mark.slow, pytest.mark.timeout(120)]


@pytest.fixture
async def db_url(sqlite_url: str) -> str:
    """SQLite only: the rotation is a matter of the handshake, not of the backend."""
    async with asyncio.timeout(60):
        await upgrade_database(sqlite_url)
    return sqlite_url


class Fleet:
    """One center on a fixed port and named agents, each restarted with new secrets."""

    def __init__(self, db_url: str, tmp_path: Path) -> None:
        self.db_url, self.tmp_path = db_url, tmp_path
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = int(s.getsockname()[1])
        self._stacks: dict[str, contextlib.AsyncExitStack] = {}

    async def _restart(self, name: str, context: contextlib.AbstractAsyncContextManager) -> None:
        if name in self._stacks:
            await self._stacks.pop(name).aclose()
        stack = contextlib.AsyncExitStack()
        await stack.enter_async_context(context)
        self._stacks[name] = stack

    async def center(self, secret: str) -> None:
        # Every agent registers every second from 127.0.0.1: no per-address limit here.
        context = running_center(
            self.db_url,
            secret=secret,
            center_listen=f"127.0.0.1:{self.port}",
            center_registrations_per_minute=0,
        )
        await self._restart("center", context)

    async def agent(self, name: str, secret: str) -> None:
        context = running_agent(self.tmp_path, self.port, name=name, secret=secret)
        await self._restart(name, context)

    async def close(self) -> None:
        for name in reversed(list(self._stacks)):
            await self._stacks.pop(name).aclose()


async def _lands_on_each(engine: AsyncEngine, task_id: int, aids: list[int], step: str) -> None:
    """A run of the rule succeeds on every agent after this moment."""
    since, landed = now_us(), set()

    async def on_all() -> bool:
        final = task_process.c.status == statuses.SUCCESS
        rows = await runs_of(engine, task_id, final, task_process.c.sched_us > since)
        landed.update(r["aid"] for r in rows)
        return landed >= set(aids)

    try:
        await poll(on_all, 20)
    except TimeoutError:
        raise AssertionError(f"after {step}: runs landed on {sorted(landed)} of {aids}") from None


async def _refused_with(port: int, secret: str) -> bool:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    conn = Connection(reader, writer)
    try:
        await open_handshake(conn, (secret.encode(),), role="agent", name="stale")
    except AuthError:
        return True
    finally:
        await conn.close()
    return False


async def test_rotate_the_secret_while_runs_go_on(db_url: str, engine: AsyncEngine, tmp_path: Path):
    """old → center new,old → each agent new,old → each agent new → center new: a rule on two
    agents lands on both after every step; an agent with only the old secret is refused."""
    fleet = Fleet(db_url, tmp_path)
    try:
        await fleet.center(OLD)
        for name in ("a", "b"):
            await fleet.agent(name, OLD)
        gid = await add_group(engine)
        aids = [await approve_agent(engine, name, gid) for name in ("a", "b")]
        task_id = await add_rule(engine, aids, gid=gid)
        steps = [
            ("center", f"{NEW},{OLD}"),
            ("a", f"{NEW},{OLD}"),
            ("b", f"{NEW},{OLD}"),
            ("a", NEW),
            ("b", NEW),
            ("center", NEW),
        ]
        await _lands_on_each(engine, task_id, aids, "the start")
        for who, secret in steps:
            await (fleet.center(secret) if who == "center" else fleet.agent(who, secret))
            await _lands_on_each(engine, task_id, aids, f"{who} on {secret}")
        assert await _refused_with(fleet.port, OLD)
        await fleet.agent("stale", OLD)
        await asyncio.sleep(2)  # two registration intervals
        async with engine.connect() as conn:
            names = (await conn.scalars(select(agents.c.name))).all()
        assert sorted(names) == ["a", "b"]
    finally:
        await fleet.close()
