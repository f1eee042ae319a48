"""An agent reading a long burst of a center's frames (its ping queued behind them) sends
pongs of its own meanwhile, so that the center does not take it for silent; a quiet link
carries none."""

from __future__ import annotations

import asyncio
import time

from agent.server import ALIVE_AFTER_FRAMES, ALIVE_EVERY_S
from protocol.messages import Ack, Message, Ping, Pong
from tests.agent.peer import CenterPeer

# Frames: long enough to outlast two pong intervals with margin on a fast machine (100k took
# 0.47 s on one in CI, too short to need a pong of its own).
BURST = 300_000


async def _until_pong(center: CenterPeer, sent_ms: int) -> list[Message]:
    """Every message until the pong to the ping `sent_ms` (included)."""
    got: list[Message] = []
    async with asyncio.timeout(60):
        while not (got and isinstance(got[-1], Pong) and got[-1].sent_ms == sent_ms):
            got.append(await center.recv(timeout_s=60))
    return got


async def test_an_agent_reading_a_burst_sends_pongs_of_its_own(center: CenterPeer) -> None:
    center.conn.send_many([Ping(epoch=0, sent_ms=1), *[Ack(seqs=[]) for _ in range(BURST)]])
    # From here on: the agent shares this loop, so it read nothing while the burst was encoded.
    began = time.monotonic()
    await center.send(Ping(epoch=0, sent_ms=2))
    got = await _until_pong(center, 2)
    took_s = time.monotonic() - began
    unasked = [m for m in got if isinstance(m, Pong) and m.sent_ms == 1][1:]
    # Each echoes the newest ping read: it proves nothing about pings sent since.
    assert len(unasked) >= int(took_s / ALIVE_EVERY_S) // 2 >= 1, (took_s, len(unasked))


async def test_a_quiet_link_carries_no_unasked_pong(center: CenterPeer) -> None:
    await center.sync()
    for _ in range(8):  # frames now and then, a second and more with nothing sent back
        await center.send(Ack(seqs=[]))
        await asyncio.sleep(ALIVE_EVERY_S / 2)  # the pace of a quiet center, not a wait
    await center.send(*[Ack(seqs=[]) for _ in range(ALIVE_AFTER_FRAMES - 10)])
    assert await center.sync() == []
