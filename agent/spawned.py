"""Prepared processes forked on worker threads, then watched from the loop like any spawn."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Protocol

from agent.process import RunProtocol

# Forking on the loop (`loop.subprocess_exec`) cost the agent's loop 2-4 ms per prepared run
# under load; on a worker thread the loop pays ~0.15 ms of CPU. Two threads keep both cores busy
# preparing while the loop stays free for the gates it has to open.
PREPARE_THREADS = 2


class ProcessTransport(Protocol):
    """What Runner needs of a started process: an `asyncio.SubprocessTransport` or Spawned."""

    def get_pid(self) -> int: ...

    def get_returncode(self) -> int | None: ...

    def close(self) -> None: ...


class _PipeReader(asyncio.Protocol):
    """Feeds the output pipe to the run's protocol, as a subprocess transport would."""

    def __init__(self, protocol: RunProtocol) -> None:
        self._protocol = protocol

    def data_received(self, data: bytes) -> None:
        self._protocol.pipe_data_received(1, data)

    def connection_lost(self, exc: Exception | None) -> None:
        self._protocol.pipe_connection_lost(1, exc)


class Spawned:
    """What Runner uses of an `asyncio.SubprocessTransport`, for a process forked off the loop:
    its exit is seen through a pidfd (reaped by us, never by asyncio's child watcher, which
    only watches the pids it spawned) and its output pipe is read by the loop."""

    def __init__(self, popen: subprocess.Popen[bytes], protocol: RunProtocol) -> None:
        self._popen = popen
        self._protocol = protocol
        self._pidfd = -1
        self._pipe: asyncio.ReadTransport | None = None

    async def watch(self) -> None:
        """Start watching its exit and reading its output (on the loop)."""
        loop = asyncio.get_running_loop()
        self._pidfd = os.pidfd_open(self._popen.pid)
        loop.add_reader(self._pidfd, self._reap)
        assert self._popen.stdout is not None
        self._pipe, _ = await loop.connect_read_pipe(
            lambda: _PipeReader(self._protocol), self._popen.stdout
        )

    def get_pid(self) -> int:
        return self._popen.pid

    def get_returncode(self) -> int | None:
        return self._popen.returncode

    def close(self) -> None:
        """Stop reading its output; kill it if it still runs (it is reaped when it exits)."""
        if self._pipe is not None:
            self._pipe.close()
        elif self._popen.stdout is not None:
            self._popen.stdout.close()
        if self._popen.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self._popen.pid, signal.SIGKILL)

    def _reap(self) -> None:
        """The pidfd became readable: the process exited."""
        if self._popen.poll() is None:
            return
        asyncio.get_running_loop().remove_reader(self._pidfd)
        os.close(self._pidfd)
        self._pidfd = -1
        self._protocol.process_exited()


class ThreadSpawner:
    """Forks prepared processes on a small pool of threads."""

    def __init__(self, threads: int = PREPARE_THREADS) -> None:
        self._pool = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="prepare")

    async def spawn(
        self,
        argv: Sequence[str],
        env: dict[str, str],
        creds: dict[str, Any],
        protocol: RunProtocol,
        *,
        stdin: int,
        stderr: int,
    ) -> Spawned:
        """Spawn like `Runner._spawn` (own session, in `/`, only 0-2 inherited), off the loop.

        `stdin` and `stderr` are duplicated first: the loop may close its own descriptors
        (a gate opened meanwhile) while the thread forks, and a reused number must never
        become a child's stdin."""
        fds = (os.dup(stdin), os.dup(stderr))  # closed by the thread, once forked
        forked = asyncio.get_running_loop().run_in_executor(
            self._pool, _popen, list(argv), env, creds, fds
        )
        try:
            popen = await asyncio.shield(forked)
        except asyncio.CancelledError:  # the thread may still fork it: kill it when it has
            forked.add_done_callback(_kill_forked)
            raise
        spawned = Spawned(popen, protocol)
        try:
            await spawned.watch()
        except BaseException:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(popen.pid, signal.SIGKILL)
            spawned.close()
            raise
        return spawned


def _popen(
    argv: list[str], env: dict[str, str], creds: dict[str, Any], fds: tuple[int, int]
) -> subprocess.Popen[bytes]:
    """On a worker thread."""
    try:
        return subprocess.Popen(
            argv,
            bufsize=0,
            stdin=fds[0],
            stdout=subprocess.PIPE,
            stderr=fds[1],
            cwd="/",
            env=env,
            start_new_session=True,
            close_fds=True,
            **creds,
        )
    finally:
        for fd in fds:
            os.close(fd)


def _kill_forked(forked: asyncio.Future[subprocess.Popen[bytes]]) -> None:
    """A fork nobody waits for any more (shutdown): its process never gets past its gate."""
    if not forked.cancelled() and forked.exception() is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(forked.result().pid, signal.SIGKILL)
