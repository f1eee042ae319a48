"""An agent link is closed as silent only for the agent's silence, not for the time our own
burst of frames kept its ping from reaching it."""

from __future__ import annotations

import asyncio

import pytest

from center.agent_pool import (
    TAKEN_SIGN_BYTES,
    AgentLink,
    LinkSettings,
    PoolListener,
    last_sign_of_life,
)
from center.routing import AgentInfo
from protocol.codec import encode_many
from protocol.errors import ConnectionClosed
from protocol.messages import Ack, AgentState, Ping, Pong, Resources
from protocol.stream import Connection, accept_handshake


@pytest.mark.parametrize(
    ("last_seen", "taken_before", "taken_now", "seen"),
    [
        (7.0, 1000, 1000, 7.0),  # took nothing: silent since its last message
        (7.0, 1000, 1000 + 60, 7.0),  # took a ping or two: a hung agent's kernel does that
        (7.0, 1000, 1000 + TAKEN_SIGN_BYTES, 7.0),
        (7.0, 1000, 1000 + TAKEN_SIGN_BYTES + 1, 10.0),  # reading a burst: alive now
        (7.0, 0, 5_000_000, 10.0),
    ],
)
def test_last_sign_of_life(last_seen: float, taken_before: int, taken_now: int, seen: float):
    assert last_sign_of_life(last_seen, 10.0, taken_before, taken_now) == seen


class Listener(PoolListener):
    def __init__(self) -> None:
        self.connected = asyncio.Event()
        self.disconnects = 0
        self.disconnected = asyncio.Event()

    def on_connected(self, aid: int, state: AgentState) -> None:
        self.connected.set()

    def on_disconnected(self, aid: int) -> None:
        self.disconnects += 1
        self.disconnected.set()


BURST = 3000  # frames the slow agent below takes some 3 s to read: past offline_after_s


async def _slow_agent(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, all_read: asyncio.Event
) -> None:
    """Reads its frames slowly (a loaded agent decoding a burst), answers each ping."""
    conn = Connection(reader, writer)
    await accept_handshake(conn, (b"secret",), name="agent-1", expect_role="center")
    conn.send(AgentState(epoch=0, running=[], agent_name="agent-1"))
    read = 0
    try:
        while True:
            msg = await conn.recv()
            if isinstance(msg, Ping):
                conn.send(Pong(sent_ms=msg.sent_ms, resources=Resources()))
            elif isinstance(msg, Ack):
                read += 1
                if read % 100 == 0:
                    await asyncio.sleep(0.1)  # the agent's pace, not a synchronisation
                if read == BURST:
                    all_read.set()
    except ConnectionClosed:
        pass
    finally:
        await conn.close()


async def _hung_agent(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, stop: asyncio.Event
) -> None:
    """Says who it is, then never reads nor answers again (a stopped process)."""
    conn = Connection(reader, writer)
    await accept_handshake(conn, (b"secret",), name="agent-1", expect_role="center")
    conn.send(AgentState(epoch=0, running=[], agent_name="agent-1"))
    await stop.wait()
    await conn.close()


SETTINGS = LinkSettings(
    secrets=(b"secret",),
    center_name="c1",
    ping_interval_s=0.2,
    offline_after_s=1.0,
    reconnect_max_s=1.0,
    max_frame_bytes=1 << 20,
)


def _link(port: int, listener: Listener) -> AgentLink:
    info = AgentInfo(id=1, name="agent-1", ip="127.0.0.1", port=port, status=1)
    return AgentLink(info, SETTINGS, listener)


def _burst() -> bytes:
    """Big frames: the burst outlasts the kernel's buffers on both sides, and offline_after_s.
    Encoded before the link is up: encoding takes a CPU second, which would stall the loop."""
    return encode_many([Ack(seqs=list(range(i, i + 4000))) for i in range(BURST)])


async def test_a_link_behind_its_own_burst_is_not_silent():
    all_read = asyncio.Event()
    server = await asyncio.start_server(lambda r, w: _slow_agent(r, w, all_read), "127.0.0.1", 0)
    listener, burst = Listener(), _burst()
    link = _link(server.sockets[0].getsockname()[1], listener)
    try:
        async with asyncio.timeout(20):
            await listener.connected.wait()
            link.send_bytes(burst)
            await all_read.wait()
        assert listener.disconnects == 0
        assert link.connected
    finally:
        await link.close()
        server.close()
        await server.wait_closed()


async def test_a_hung_agent_is_still_silent_behind_a_burst():
    stop = asyncio.Event()
    server = await asyncio.start_server(lambda r, w: _hung_agent(r, w, stop), "127.0.0.1", 0)
    listener, burst = Listener(), _burst()
    link = _link(server.sockets[0].getsockname()[1], listener)
    try:
        async with asyncio.timeout(20):
            await listener.connected.wait()
            link.send_bytes(burst)
            while not listener.disconnects:
                await listener.disconnected.wait()
    finally:
        stop.set()
        await link.close()
        server.close()
        await server.wait_closed()
