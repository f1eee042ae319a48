"""Limits of a real agent: connections, processes, outbox, frame size; each logged and counted."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import pytest
import structlog

from agent.config import AgentConfig
from agent.service import AgentService
from protocol import statuses
from protocol.errors import ConnectionClosed
from protocol.messages import AgentState, Error, Kill, RunFinished, RunStarted
from tests.agent.peer import WAIT_S, CenterPeer, exec_msg, running, wait_for


def _hits(agent: AgentService, limit: str) -> float:
    value = agent.metrics.registry.get_sample_value(
        "unitedcron_agent_limit_hits_total", {"limit": limit}
    )
    return value or 0.0


def _open(agent: AgentService) -> float:
    value = agent.metrics.registry.get_sample_value(
        "unitedcron_agent_connections", {"state": "open"}
    )
    return value or 0.0


async def _read_or_reset(reader: asyncio.StreamReader) -> bytes:
    """What a closed connection yields: EOF, or a reset (the agent aborts it)."""
    try:
        return await reader.read(1)
    except ConnectionResetError:
        return b""


def _limit_lines(logs: list[dict[str, object]], limit: str) -> list[dict[str, object]]:
    return [e for e in logs if e["event"] == "agent.limit_reached" and e["limit"] == limit]


async def test_connection_beyond_the_limit_is_closed_at_once(
    make_config: Callable[..., AgentConfig],
) -> None:
    """With two connections open (silent, unauthenticated), a third is closed before any
    handshake, once logged and counted; when one goes, a center gets in again."""
    with structlog.testing.capture_logs() as logs:
        async with running(make_config(agent_max_connections=2)) as agent:
            async with asyncio.timeout(WAIT_S):
                idle = [await asyncio.open_connection("127.0.0.1", agent.port) for _ in range(2)]
                await wait_for(lambda: _open(agent) == 2)
                reader, writer = await asyncio.open_connection("127.0.0.1", agent.port)
                assert await _read_or_reset(reader) == b""  # aborted: no byte, no handshake
                writer.close()
                idle[0][1].close()
                await wait_for(lambda: _open(agent) == 1)
            peer = await CenterPeer.connect(agent.port)
            try:
                assert isinstance(await peer.recv(), AgentState)
            finally:
                await peer.close()
                idle[1][1].close()
            assert _hits(agent, "connections") == 1
    lines = _limit_lines(logs, "connections")
    assert len(lines) == 1 and lines[0]["max"] == 2
    assert lines[0]["action"] == "closed before the handshake"


async def test_run_beyond_the_process_limit_is_skipped(
    make_config: Callable[..., AgentConfig],
) -> None:
    """At agent_max_processes running, the next exec ends `skipped` with the reason (one log
    line, counted); once a process ends there is room again."""
    with structlog.testing.capture_logs() as logs:
        async with running(make_config(agent_max_processes=2)) as agent:
            peer = await CenterPeer.connect(agent.port)
            try:
                first, second, third = (exec_msg("/bin/sleep 300", task_id=t) for t in (1, 2, 3))
                await peer.send(first, second)
                for msg in (first, second):
                    await peer.expect(RunStarted, msg.ref.runid)
                await peer.send(third)
                skipped = await peer.expect(RunFinished, third.ref.runid)
                await peer.send(Kill(epoch=1, task_id=1))
                await peer.expect(RunFinished, first.ref.runid)
                later = await peer.run(exec_msg("/usr/bin/true", task_id=4))
                await peer.send(Kill(epoch=1, task_id=2))
                await peer.expect(RunFinished, second.ref.runid)
            finally:
                await peer.close()
            assert _hits(agent, "processes") == 1
    assert (skipped.status, skipped.start_us, skipped.pid) == (statuses.SKIPPED, 0, 0)
    assert skipped.reason == (
        "agent process limit reached: 2 processes running (UNITEDCRON_AGENT_MAX_PROCESSES=2)"
    )
    assert later.status == statuses.SUCCESS
    lines = _limit_lines(logs, "processes")
    assert len(lines) == 1 and lines[0]["runid"] == third.ref.runid and lines[0]["max"] == 2


async def test_outbox_limit_drops_oldest_starts_and_counts_them(
    make_config: Callable[..., AgentConfig],
) -> None:
    """agent_outbox_max_events bounds the unacked events: the oldest run_started go first,
    counted as outbox limit hits; every run_finished is kept."""
    with structlog.testing.capture_logs() as logs:
        async with running(make_config(agent_outbox_max_events=10)) as agent:
            peer = await CenterPeer.connect(agent.port)
            try:
                msgs = [exec_msg("/usr/bin/true") for _ in range(6)]
                for msg in msgs:
                    await peer.run(msg)  # never acked: 12 events for 10 places
                await wait_for(lambda: _hits(agent, "outbox") == 2)
                kinds = [type(e) for e in agent.outbox.unacked()]
            finally:
                await peer.close()
    assert len(kinds) == 10
    assert kinds.count(RunFinished) == 6 and kinds.count(RunStarted) == 4
    assert any(e["event"] == "agent.outbox_full" and e["limit"] == 10 for e in logs)


async def test_frame_above_the_limit_closes_that_connection(
    make_config: Callable[..., AgentConfig],
) -> None:
    """A frame above agent_max_frame_bytes is answered with frame_too_large and closes that
    connection only (one log line, counted); nothing of it runs."""
    with structlog.testing.capture_logs() as logs:
        async with running(make_config(agent_max_frame_bytes=4096)) as agent:
            peer = await CenterPeer.connect(agent.port)
            other = await CenterPeer.connect(agent.port)
            try:
                await peer.expect(AgentState)
                big = exec_msg("/usr/bin/true " + "x" * 5000)
                await peer.send(big)
                rest: list[object] = []
                with pytest.raises(ConnectionClosed):
                    while True:
                        rest.append(await peer.recv())
                assert any(isinstance(m, Error) and m.code == "frame_too_large" for m in rest)
                assert (await other.run(exec_msg("/usr/bin/true"))).status == statuses.SUCCESS
            finally:
                await peer.close()
                await other.close()
            assert _hits(agent, "frame") == 1
            assert not agent.outbox.seen(big.ref.runid)
    errors = [e for e in logs if e["event"] == "agent.protocol_error"]
    assert len(errors) == 1 and errors[0]["code"] == "frame_too_large"
