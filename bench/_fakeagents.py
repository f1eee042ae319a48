"""Fake agents for benchmarks: real protocol, no processes; they note when each exec arrives.

Run as a script: `python bench/_fakeagents.py COUNT SECRET OUT.json`. It prints one JSON line
with the ports, answers pings and every exec (a run_finished alone: the run ends before its
start is due to be sent, agent.start_reports), and on SIGTERM writes each agent's receipts,
[task_id, sched_us, received_us] per exec, to OUT.json.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import signal
import sys
import time
from pathlib import Path

from agent.server import ALIVE_AFTER_FRAMES, ALIVE_EVERY_S
from protocol.errors import ProtocolError
from protocol.messages import (
    Ack,
    AgentState,
    Exec,
    Message,
    Ping,
    Pong,
    Resources,
    RunFinished,
)
from protocol.stream import Connection, accept_handshake


class FakeAgent:
    def __init__(self, name: str, secrets: tuple[bytes, ...]) -> None:
        self.name = name
        self.secrets = secrets
        self.receipts: list[tuple[int, int, int]] = []  # (task_id, sched_us, received_us)
        self.seq = 0

    async def start(self) -> int:
        server = await asyncio.start_server(self.handle, "127.0.0.1", 0, limit=1 << 20)
        return int(server.sockets[0].getsockname()[1])

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        conn = Connection(reader, writer)
        try:
            await accept_handshake(conn, self.secrets, name=self.name, expect_role="center")
            conn.send(AgentState(epoch=0, running=[], agent_name=self.name))
            loop = asyncio.get_running_loop()
            ping_ms, unanswered, sent_mono = 0, 0, time.monotonic()
            while True:
                msg = await conn.recv()
                if isinstance(msg, Exec):  # a real agent answers when the process starts
                    self.received(msg)
                    delay_s = max(msg.ref.sched_us / 1e6 - time.time(), 0)
                    loop.call_later(delay_s, self._reply, conn, msg)
                    unanswered += 1
                    if (
                        unanswered >= ALIVE_AFTER_FRAMES
                        and time.monotonic() - sent_mono >= ALIVE_EVERY_S
                    ):  # reading a burst: a pong of our own, as agent/server.py sends
                        conn.send(Pong(sent_ms=ping_ms, resources=Resources()))
                        unanswered, sent_mono = 0, time.monotonic()
                    continue
                if isinstance(msg, Ping):
                    ping_ms = msg.sent_ms
                conn.send_many(self.answer(msg))
                unanswered, sent_mono = 0, time.monotonic()
        except asyncio.CancelledError:  # shutdown: return quietly, no traceback
            return
        except (ProtocolError, OSError, ConnectionError, Exception):
            with contextlib.suppress(asyncio.CancelledError):  # cancelled while closing
                await conn.close()

    def _reply(self, conn: Connection, msg: Exec) -> None:
        with contextlib.suppress(RuntimeError):  # the center hung up (the run is ending)
            conn.send_many(self.answer(msg))

    def received(self, msg: Exec) -> None:
        """An exec arrived: note which fire it is for, and when it came."""
        self.receipts.append((msg.ref.task_id, msg.ref.sched_us, time.time_ns() // 1000))

    def answer(self, msg: Message) -> list[Message]:
        """The reply, built when it is sent: an exec's at its scheduled time, as it starts."""
        now = time.time_ns() // 1000
        if isinstance(msg, Ping):
            return [Pong(sent_ms=msg.sent_ms, resources=Resources())]
        if not isinstance(msg, Exec):
            return []
        # The run ends at once, before its start is due to be sent: a real agent sends its
        # finish alone (agent.start_reports).
        self.seq += 1
        return [
            RunFinished(
                seq=self.seq,
                ref=msg.ref,
                status="success",
                end_us=now,
                start_us=now,
                pid=1,
                code=0,
                output=b"ok\n",
                output_bytes=3,
                start_unsent=True,
            ),
        ]


async def main(count: int, secret: str, out: Path) -> None:
    # Named as the benchmarks seed them (agent-1, agent-2, …): the center checks who answers.
    agents = [FakeAgent(f"agent-{i + 1}", (secret.encode(),)) for i in range(count)]
    ports = [await a.start() for a in agents]
    print(json.dumps({"ports": ports}), flush=True)
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        asyncio.get_running_loop().add_signal_handler(sig, stop.set)
    await stop.wait()
    out.write_text(json.dumps([a.receipts for a in agents]))


if __name__ == "__main__":
    import uvloop

    _ = Ack  # acks from the center are read and ignored
    uvloop.run(main(int(sys.argv[1]), sys.argv[2], Path(sys.argv[3])))
