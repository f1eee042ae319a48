"""Peers that do not know the secret, or send garbage, reach nothing and disturb no one else."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from center.tables import task_process
from protocol import statuses
from protocol.codec import encode
from protocol.errors import AuthError
from protocol.messages import Exec, RunRef, RunSpec
from protocol.stream import Connection, open_handshake
from tests.integration.cluster import (
    add_rule,
    agent_row,
    approve_agent,
    now_us,
    poll,
    running_agent,
    running_center,
    runs_of,
)

pytestmark = pytest.mark.timeout(90)


async def _read_until_closed(reader: asyncio.StreamReader) -> bytes:
    async with asyncio.timeout(10):
        return await reader.read()  # EOF: the peer closed the connection


async def _still_running(engine: AsyncEngine, task_id: int) -> None:
    since = now_us()
    await poll(
        lambda: runs_of(
            engine,
            task_id,
            task_process.c.status == statuses.SUCCESS,
            task_process.c.sched_us > since,
        ),
        10,
    )


async def test_unauthenticated_exec_starts_nothing(
    db_url: str, engine: AsyncEngine, tmp_path: Path
):
    """An exec without the handshake, or after one with the wrong secret, runs nothing."""
    marker = tmp_path / "pwned"
    async with (
        running_center(db_url) as center,
        running_agent(tmp_path, center.registration_port) as agent,
    ):
        aid = await approve_agent(engine, "agent-1")
        task_id = await add_rule(engine, [aid])
        await _still_running(engine, task_id)
        exec_frame = encode(
            Exec(
                epoch=10**9,
                ref=RunRef(runid="x-1", task_id=999, sched_us=1),
                spec=RunSpec(task_id=999, command=f"/usr/bin/touch {marker}", run_user="root"),
            )
        )
        reader, writer = await asyncio.open_connection("127.0.0.1", agent.port)
        writer.write(exec_frame)
        await writer.drain()
        await _read_until_closed(reader)
        writer.close()

        reader, writer = await asyncio.open_connection("127.0.0.1", agent.port)
        conn = Connection(reader, writer)
        with pytest.raises(AuthError):
            await open_handshake(
                conn, (b"not-the-cluster-secret-at-all",), role="center", name="evil"
            )
        await conn.close()
        await _still_running(engine, task_id)
    assert not marker.exists()
    assert await runs_of(engine, 999) == []


@pytest.mark.parametrize("garbage", [b"GET / HTTP/1.1\r\n\r\n", b"$99999999999\r\n", b"\x00" * 64])
async def test_garbage_closes_only_that_connection(
    db_url: str, engine: AsyncEngine, tmp_path: Path, garbage: bytes
):
    """Garbage to the agent's or center's port closes that socket; runs and registration go on."""
    async with (
        running_center(db_url) as center,
        running_agent(tmp_path, center.registration_port) as agent,
    ):
        aid = await approve_agent(engine, "agent-1")
        task_id = await add_rule(engine, [aid])
        await _still_running(engine, task_id)
        for port in (agent.port, center.registration_port):
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.write(garbage)
            await writer.drain()
            await _read_until_closed(reader)
            writer.close()
        beat = (await agent_row(engine, "agent-1"))["heart_beat_time"]
        await _still_running(engine, task_id)
        await poll(lambda: _later_beat(engine, beat), 10)


async def _later_beat(engine: AsyncEngine, beat: int) -> bool:
    return bool((await agent_row(engine, "agent-1"))["heart_beat_time"] > beat)
