"""The asyncio side of one run's process: its merged output, its exit, the end of its pipe."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal

import structlog

from agent.output import LiveTail, OutputBuffer

GROUP_POLL_S = 0.02
log = structlog.get_logger("agent.runner")


class RunProtocol(asyncio.SubprocessProtocol):
    """Feeds merged stdout+stderr to the buffers; signals exit and end of output."""

    def __init__(self, output: OutputBuffer, tail: LiveTail) -> None:
        loop = asyncio.get_running_loop()
        self.output = output
        self.tail = tail
        self.exited: asyncio.Future[None] = loop.create_future()
        self.eof: asyncio.Future[None] = loop.create_future()

    def pipe_data_received(self, fd: int, data: bytes | str) -> None:
        """One read of merged stdout+stderr."""
        chunk = data.encode() if isinstance(data, str) else data
        self.output.feed(chunk)
        self.tail.feed(chunk)

    def pipe_connection_lost(self, fd: int, exc: Exception | None) -> None:
        """The pipe closed: every holder of it has exited or closed it."""
        if not self.eof.done():
            self.eof.set_result(None)

    def process_exited(self) -> None:
        """The main process exited (its group may live on)."""
        if not self.exited.done():
            self.exited.set_result(None)


def exited_already(pid: int) -> bool:
    """Whether our child `pid` has exited, without reaping it (its watcher still will)."""
    try:
        return os.waitid(os.P_PID, pid, os.WEXITED | os.WNOHANG | os.WNOWAIT) is not None
    except ChildProcessError:  # reaped already
        return True


def signal_group(pgid: int, signum: int) -> bool:
    """Signal a process group; False if it no longer exists."""
    try:
        os.killpg(pgid, signum)
    except ProcessLookupError:
        return False
    return True


async def terminate_group(pgid: int, exited: asyncio.Future[None], grace_s: float) -> None:
    """TERM the group, give it `grace_s` to go (main process and the rest), then KILL it."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + grace_s
    signal_group(pgid, signal.SIGTERM)
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(grace_s):
            await asyncio.shield(exited)
    # No event tells us when the last member of a group is gone: poll in short steps.
    while loop.time() < deadline and signal_group(pgid, 0):  # noqa: ASYNC110 - no event exists
        await asyncio.sleep(GROUP_POLL_S)
    if signal_group(pgid, signal.SIGKILL):
        log.debug("agent.group_killed", pgid=pgid, grace_s=grace_s)
