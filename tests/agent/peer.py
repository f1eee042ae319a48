"""A test-side center: one real authenticated connection that drives an agent over the protocol."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import os
import ssl
from collections.abc import AsyncIterator, Callable
from typing import Any

import psutil

from agent.config import AgentConfig
from agent.service import AgentService
from protocol.messages import (
    Ack,
    DaemonsWanted,
    Exec,
    Message,
    Ping,
    Pong,
    RunFinished,
    RunRef,
    RunSpec,
    RunStarted,
)
from protocol.stream import Connection, open_handshake

SECRET = "test-secret-0123456789abcdef"
SECRETS = (SECRET.encode(),)
WAIT_S = 10.0
_runids = itertools.count(1)
_pings = itertools.count(1)


async def wait_for(condition: Callable[[], bool], timeout_s: float = WAIT_S) -> None:
    """Poll a condition that no event announces (a log line, a process gone), bounded."""
    async with asyncio.timeout(timeout_s):
        while not condition():  # noqa: ASYNC110 - nothing announces these conditions
            await asyncio.sleep(0.01)


@contextlib.asynccontextmanager
async def running(config: AgentConfig) -> AsyncIterator[AgentService]:
    """A real agent, started and stopped within bounded time."""
    service = AgentService(config)
    async with asyncio.timeout(WAIT_S):
        await service.start()
    try:
        yield service
    finally:
        await stopped(service)


async def stopped(service: AgentService) -> None:
    """Stop an agent (idempotent), bounded by its grace plus a margin."""
    async with asyncio.timeout(service.config.agent_kill_grace_s + WAIT_S):
        await service.stop()


def new_runid() -> str:
    return f"run-{next(_runids)}"


def exec_msg(
    command: str,
    *,
    run_user: str = "nobody",
    runid: str | None = None,
    epoch: int = 1,
    task_id: int = 7,
    shard: tuple[int, int] = (0, 0),
    **spec: Any,
) -> Exec:
    """An Exec as the center would send it, with test defaults."""
    ref = RunRef(runid=runid or new_runid(), task_id=task_id, sched_us=1_700_000_000_000_000)
    return Exec(
        epoch=epoch,
        ref=ref,
        spec=RunSpec(task_id=task_id, command=command, run_user=run_user, **spec),
        shard_index=shard[0],
        shard_total=shard[1],
    )


def daemon_spec(command: str, *, task_id: int = 21, process_num: int = 1, **spec: Any) -> RunSpec:
    """A daemon rule's spec as the center would send it, run as nobody by default."""
    spec.setdefault("run_user", "nobody")
    return RunSpec(task_id=task_id, command=command, process_num=process_num, **spec)


def wanted(
    *specs: RunSpec,
    complete: bool = True,
    stopped: tuple[int, ...] = (),
    epoch: int = 1,
    aid: int = 5,
) -> DaemonsWanted:
    """A DaemonsWanted as the center would send it (agent id 5 unless told)."""
    return DaemonsWanted(
        epoch=epoch, specs=list(specs), complete=complete, stopped=list(stopped), aid=aid
    )


def session_members(sid: int) -> list[psutil.Process]:
    """Live (non-zombie) processes of session `sid` (a run's pid is its session id)."""
    out = []
    for proc in psutil.process_iter():
        try:
            if os.getsid(proc.pid) == sid and proc.status() != psutil.STATUS_ZOMBIE:
                out.append(proc)
        except (ProcessLookupError, psutil.NoSuchProcess):
            continue
    return out


def command_of(cmdline: list[str]) -> list[str]:
    """The command a process runs: a setpriv about to exec it counts as running it already."""
    if cmdline and cmdline[0].endswith("/setpriv") and "--" in cmdline:
        return cmdline[cmdline.index("--") + 1 :]
    return cmdline


def processes_running(*argv: str) -> list[psutil.Process]:
    """Live (non-zombie) processes whose command line is exactly `argv` (see command_of)."""
    out = []
    for proc in psutil.process_iter(["cmdline", "status"]):
        cmdline = proc.info["cmdline"] or []
        if command_of(cmdline) == list(argv) and proc.info["status"] != psutil.STATUS_ZOMBIE:
            out.append(proc)
    return out


class CenterPeer:
    """Sends messages to an agent and waits (bounded) for the ones it expects."""

    def __init__(self, conn: Connection) -> None:
        self.conn = conn
        self.seen: list[Message] = []
        self._unread: list[Message] = []  # received, not yet returned by expect()

    @classmethod
    async def connect(
        cls,
        port: int,
        secrets: tuple[bytes, ...] = SECRETS,
        name: str = "test-center",
        tls: ssl.SSLContext | None = None,
    ) -> CenterPeer:
        async with asyncio.timeout(WAIT_S):
            reader, writer = await asyncio.open_connection("127.0.0.1", port, ssl=tls)
            conn = Connection(reader, writer)
            try:
                await open_handshake(conn, secrets, role="center", name=name)
            except BaseException:
                await conn.close()
                raise
        return cls(conn)

    async def send(self, *messages: Message) -> None:
        self.conn.send_many(list(messages))
        async with asyncio.timeout(WAIT_S):
            await self.conn.drain()

    async def recv(self, timeout_s: float = WAIT_S) -> Message:
        """The next message off the wire (expect() still sees it later)."""
        async with asyncio.timeout(timeout_s):
            message = await self.conn.recv()
        self.seen.append(message)
        self._unread.append(message)
        return message

    async def expect(self, kind: Any, runid: str | None = None, timeout_s: float = WAIT_S) -> Any:
        """The first not-yet-expected message of `kind` (for `runid`, if given)."""
        async with asyncio.timeout(timeout_s):
            while True:
                for i, message in enumerate(self._unread):
                    if isinstance(message, kind) and (runid is None or _runid(message) == runid):
                        return self._unread.pop(i)
                await self.recv()

    async def sync(self, epoch: int = 0) -> list[Message]:
        """Ping and wait for the pong; return every message received before it."""
        sent_ms = next(_pings)
        start = len(self.seen)
        await self.send(Ping(epoch=epoch, sent_ms=sent_ms))
        async with asyncio.timeout(WAIT_S):
            while True:
                message = await self.recv()
                if isinstance(message, Pong) and message.sent_ms == sent_ms:
                    self._unread.remove(message)
                    return self.seen[start:-1]

    async def run(self, msg: Exec, timeout_s: float = WAIT_S) -> RunFinished:
        """Send an exec and return its RunFinished."""
        await self.send(msg)
        finished: RunFinished = await self.expect(RunFinished, msg.ref.runid, timeout_s)
        return finished

    async def ack_all(self) -> None:
        seqs = [m.seq for m in self.seen if isinstance(m, RunStarted | RunFinished)]
        await self.send(Ack(seqs=seqs))

    async def close(self) -> None:
        await self.conn.close()


def _runid(message: Message) -> str | None:
    ref = getattr(message, "ref", None)
    if ref is not None:
        return str(ref.runid)
    runid = getattr(message, "runid", None)
    return None if runid is None else str(runid)
