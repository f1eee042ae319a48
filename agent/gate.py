"""The gate a prepared run's process waits at before exec, and how the agent opens it.

A prepared process has done everything but the exec of its command: it runs as the run's
user, with its limits, environment, directory and output pipe, as `/bin/sh -c GATE_SCRIPT`.
It waits on two things:

* its instant's `Go` pipe (its stdin), shared by every run due at that instant: the agent
  closes the write end once, which wakes them all in one syscall (a write per process
  would let each woken process preempt the agent in turn);
* its own verdict on a SOCK_SEQPACKET socket (its stderr): one byte, sent only to the runs
  that may start. The agent gone (a crash closes both) means no verdict: the shell exits
  without running anything; a run cancelled while held is killed before it gets one.

Right before `exec` the shell sends one byte back on that socket; the kernel stamps it
(SO_TIMESTAMPNS), and that stamp is the run's start, however late the agent reads it.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import struct
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from agent.output import OutputBuffer
    from agent.process import RunProtocol
    from agent.runspec import Launch
    from protocol.messages import Exec

GATE_SHELL = "/bin/sh"
# $1 says whether the run's own environment has PWD (else the shell's PWD is dropped); the
# exec gives the command /dev/null as stdin and its output pipe as stderr, as a spawn would.
GATE_SCRIPT = (
    'read -r _; read -r _ <&2 || exit 125; [ "$1" = 1 ] || unset PWD; shift; '
    'printf . >&2; exec "$@" </dev/null 2>&1'
)
SO_TIMESTAMPNS = 35  # Linux (x86, arm, most others); Python has no name for it
_STAMP = struct.Struct("qq")


def gate_argv(keep_pwd: bool) -> list[str]:
    """What goes before the command's argv to hold it at the gate."""
    return [GATE_SHELL, "-c", GATE_SCRIPT, "sh", "1" if keep_pwd else "0"]


class Go:
    """One due instant's shared gate: its prepared processes read the read end (their stdin)
    and all wake when the write end is closed."""

    def __init__(self, due_us: int) -> None:
        self.due_us = due_us
        self.read_fd, self._write_fd = os.pipe()
        self.members = 0
        self._scheduled = False

    @property
    def opened(self) -> bool:
        return self._write_fd < 0

    def open_soon(self) -> None:
        """Open after the current batch of ready callbacks: the verdicts of every run that
        became due together are sent first, then one close wakes them all."""
        if not self._scheduled and not self.opened:
            self._scheduled = True
            asyncio.get_running_loop().call_soon(self.open)

    def open(self) -> None:
        """Wake every process waiting on this gate (each then reads its own verdict)."""
        for fd in (self._write_fd, self.read_fd):
            if fd >= 0:
                os.close(fd)
        self._write_fd = self.read_fd = -1

    def leave(self) -> None:
        """One member was taken or discarded; the last one out closes an unopened gate."""
        self.members -= 1
        if self.members <= 0:
            self.open()


class Prepared:
    """A process held at its gate for one run: its spawn, output and verdict socket."""

    def __init__(
        self,
        msg: Exec,
        launch: Launch,
        *,
        transport: asyncio.SubprocessTransport,
        protocol: RunProtocol,
        output: OutputBuffer,
        sock: socket.socket,
        go: Go,
    ) -> None:
        self.msg, self.launch = msg, launch
        self.transport, self.protocol, self.output = transport, protocol, output
        self.pid = transport.get_pid()
        self._sock, self._go = sock, go
        self._gone = False  # released or discarded: no longer a member of its gate
        go.members += 1

    def release(self) -> None:
        """Let it exec: its verdict now, the shared gate after this batch. A process that
        died at its gate cannot take it: `exec_instant` then says it never ran."""
        with contextlib.suppress(OSError):
            self._sock.send(b"\n")
        self._go.open_soon()
        self._leave()

    async def exec_instant(self) -> int | None:
        """The kernel's time (µs) of the byte sent right before exec; None if the process
        ended without sending it (it never ran its command)."""
        loop = asyncio.get_running_loop()
        ready: asyncio.Future[None] = loop.create_future()
        fd = self._sock.fileno()

        def readable() -> None:
            if not ready.done():
                ready.set_result(None)

        loop.add_reader(fd, readable)
        try:
            await ready
        finally:
            loop.remove_reader(fd)
        data, ancillary, _, _ = self._sock.recvmsg(1, socket.CMSG_SPACE(_STAMP.size))
        self._sock.close()
        stamps = [d for level, kind, d in ancillary if kind == SO_TIMESTAMPNS]
        if not data or not stamps:
            return None
        sec, nsec = _STAMP.unpack(stamps[0][: _STAMP.size])
        return int(sec) * 1_000_000 + int(nsec) // 1000

    def discard(self) -> None:
        """Kill it before it could exec (it is alone in its session) and let go of it."""
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.pid, signal.SIGKILL)
        self._sock.close()
        self.transport.close()  # the child watcher reaps it
        self._leave()

    def _leave(self) -> None:
        if not self._gone:
            self._gone = True
            self._go.leave()


def verdict_socket() -> tuple[socket.socket, socket.socket]:
    """(agent's end, child's end) of a run's verdict socket; the agent's end stamps arrivals."""
    ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    ours.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS, 1)
    ours.setblocking(False)
    return ours, theirs
