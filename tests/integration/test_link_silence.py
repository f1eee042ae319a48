"""A center closes an agent's link as silent for the agent's silence, not for the time its own
burst of frames kept its ping from reaching the agent: a real agent reading a long burst keeps
its link; an agent that stopped reading is found silent even behind a full send buffer."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from agent.config import AgentConfig
from center.agent_pool import AgentLink, LinkSettings, PoolListener
from center.routing import AgentInfo
from protocol.codec import encode_many
from protocol.messages import Ack, AgentState, Ping, Pong
from protocol.stream import Connection, accept_handshake
from tests.agent.peer import SECRET, SECRETS, running

pytestmark = [pytest.mark.slow, pytest.mark.timeout(120)]
BURST = 300_000  # frames: over a second of reading for the agent, past offline_after_s
SETTINGS = LinkSettings(
    secrets=SECRETS,
    center_name="c1",
    ping_interval_s=0.1,
    offline_after_s=0.6,
    reconnect_max_s=1.0,
    max_frame_bytes=1 << 20,
)


MARK_MS = 7  # the ping after the burst: its pong says the agent has read it all


class Listener(PoolListener):
    def __init__(self) -> None:
        self.connected = asyncio.Event()
        self.disconnected = asyncio.Event()
        self.burst_read = asyncio.Event()

    def on_pong(self, aid: int, pong: Pong) -> None:
        if pong.sent_ms == MARK_MS:
            self.burst_read.set()

    def on_connected(self, aid: int, state: AgentState) -> None:
        self.connected.set()

    def on_disconnected(self, aid: int) -> None:
        self.disconnected.set()


async def _first(*events: asyncio.Event) -> None:
    """Return when any of `events` is set."""
    waits = [asyncio.create_task(event.wait()) for event in events]
    try:
        await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for wait in waits:
            wait.cancel()


def _link(port: int, listener: Listener) -> AgentLink:
    info = AgentInfo(id=1, name="agent-1", ip="127.0.0.1", port=port, status=1)
    return AgentLink(info, SETTINGS, listener)


async def test_a_real_agent_reading_a_long_burst_keeps_its_link(tmp_path: Path) -> None:
    config = AgentConfig(
        secret=SECRET,
        agent_listen="127.0.0.1:0",
        agent_center="127.0.0.1:1",
        agent_state_dir=tmp_path / "state",
        agent_name="agent-1",
        agent_metrics_listen="",
        insecure_plaintext=True,
    )
    # Encoded before the link is up: encoding takes a CPU second, which would stall the loop.
    burst = encode_many([*(Ack(seqs=[]) for _ in range(BURST)), Ping(epoch=0, sent_ms=MARK_MS)])
    listener = Listener()
    async with running(config) as agent:
        link = _link(agent.port, listener)
        try:
            async with asyncio.timeout(60):
                await listener.connected.wait()
                began = asyncio.get_running_loop().time()
                assert link.send_bytes(burst)
                await _first(listener.burst_read, listener.disconnected)
                took_s = asyncio.get_running_loop().time() - began
            assert took_s > SETTINGS.offline_after_s, f"the burst took only {took_s:.2f} s"
            assert not listener.disconnected.is_set()
            assert link.connected
        finally:
            await link.close()


async def _hung_agent(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, stop: asyncio.Event
) -> None:
    """Says who it is, then never reads nor answers again (a stopped process)."""
    conn = Connection(reader, writer)
    await accept_handshake(conn, SECRETS, name="agent-1", expect_role="center")
    conn.send(AgentState(epoch=0, running=[], agent_name="agent-1"))
    await stop.wait()
    await conn.close()


async def test_an_agent_that_stopped_reading_is_silent_behind_a_full_buffer() -> None:
    stop, listener = asyncio.Event(), Listener()
    burst = encode_many([Ack(seqs=list(range(4000))) for _ in range(3000)])  # 36 MB
    server = await asyncio.start_server(lambda r, w: _hung_agent(r, w, stop), "127.0.0.1", 0)
    link = _link(server.sockets[0].getsockname()[1], listener)
    try:
        async with asyncio.timeout(20):
            await listener.connected.wait()
            assert link.send_bytes(burst)
            await listener.disconnected.wait()
    finally:
        stop.set()
        await link.close()
        server.close()
        await server.wait_closed()
