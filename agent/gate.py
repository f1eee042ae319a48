"""The gate a prepared run's process waits at before exec, and how the agent opens it.

A prepared process has done everything but the exec of its command: it runs as the run's
user, with its limits, environment, directory and output pipe, as `/bin/sh -c GATE_SCRIPT`.
It waits on two things, and needs both:

* its instant's `Go` pipe (its stdin), shared by every run due at that instant: the agent
  fills it with newlines once, which wakes them all in one syscall (a write per process
  would let each woken process preempt the agent in turn), and only once the run ids of
  every verdict sent so far are durable;
* its own verdict on a SOCK_SEQPACKET socket (its stderr): one byte, sent only to the runs
  that may start, as soon as the run is accepted (before its run id is durable: the go
  byte comes after).

The agent gone (a crash closes both) leaves end-of-file where a byte should be, and the
shell exits without running anything, whatever it got already; a run cancelled while held is
killed before it gets a verdict.

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
from collections.abc import Callable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from agent.output import OutputBuffer
    from agent.process import RunProtocol
    from agent.runspec import Launch
    from agent.spawned import ProcessTransport
    from protocol.messages import Exec

GATE_SHELL = "/bin/sh"
# $1 says whether the run's own environment has PWD (else the shell's PWD is dropped); the
# exec gives the command /dev/null as stdin and its output pipe as stderr, as a spawn would.
GATE_SCRIPT = (
    'read -r _ || exit 125; read -r _ <&2 || exit 125; [ "$1" = 1 ] || unset PWD; shift; '
    'printf . >&2; exec "$@" </dev/null 2>&1'
)
# What opens a gate: a newline for each member to read, however many (a pipe holds 64 KiB,
# far more than the most processes held). Closing alone would look like the agent dying.
GO_BYTES = b"\n" * 65536
SO_TIMESTAMPNS = 35  # Linux (x86, arm, most others); Python has no name for it
_STAMP = struct.Struct("qq")


def gate_argv(keep_pwd: bool) -> list[str]:
    """What goes before the command's argv to hold it at the gate."""
    return [GATE_SHELL, "-c", GATE_SCRIPT, "sh", "1" if keep_pwd else "0"]


class Go:
    """One due instant's shared gate: its prepared processes read the read end (their stdin)
    and all wake when the agent fills the pipe (`open`).

    It opens once every verdict sent while it was closed is covered by a landed commit of the
    run ids concerned (`landed`), so that no process execs before its run id is on disk, and
    never before its instant; the last member gone also opens it if nobody was let through
    (nobody left to hold)."""

    def __init__(self, due_us: int) -> None:
        self.due_us = due_us
        self.read_fd, self._write_fd = os.pipe()
        os.set_blocking(self._write_fd, False)  # opening writes what fits, never waits
        self.members = 0
        self.awaiting = 0  # verdicts sent whose run id is not yet durable

    @property
    def opened(self) -> bool:
        return self._write_fd < 0

    def open(self) -> None:
        """Wake every process waiting on this gate (each then reads its own verdict)."""
        if self._write_fd >= 0:
            with contextlib.suppress(OSError):
                os.write(self._write_fd, GO_BYTES)
        for fd in (self._write_fd, self.read_fd):
            if fd >= 0:
                os.close(fd)
        self._write_fd = self.read_fd = -1

    def landed(self) -> None:
        """One verdict's run id is durable (or its process is dead): open once none is owed."""
        self.awaiting -= 1
        if self.awaiting <= 0:
            self.open()

    def leave(self) -> None:
        """One member was taken or discarded; the last one out closes an unopened gate."""
        self.members -= 1
        if self.members <= 0 and self.awaiting <= 0:
            self.open()


# Called with a callback: calls it once everything noted so far is committed, never if that
# commit fails (agent.journal.Journal.when_committed).
WhenCommitted = Callable[[Callable[[], None]], None]


class Prepared:
    """A process held at its gate for one run: its spawn, output and verdict socket."""

    def __init__(
        self,
        msg: Exec,
        launch: Launch,
        *,
        transport: ProcessTransport,
        protocol: RunProtocol,
        output: OutputBuffer,
        sock: socket.socket,
        go: Go,
    ) -> None:
        self.msg, self.launch = msg, launch
        self.transport, self.protocol, self.output = transport, protocol, output
        self.pid = transport.get_pid()
        self._sock, self._go = sock, go
        self.admitted = False  # given its verdict, now or at its commit
        self._cancelled: Callable[[], bool] = lambda: False  # the run was stopped meanwhile
        self._owed = False  # its verdict sent before its run id was durable
        self._gone = False  # landed or discarded: no longer a member of its gate
        go.members += 1

    def admit(self, when_committed: WhenCommitted, cancelled: Callable[[], bool]) -> None:
        """Let it exec once its run id (noted by now) is durable. While its gate is closed the
        verdict goes now and the gate opens after the commit; through an open gate the
        verdict itself waits for the commit. A failed commit never lets it through: the run
        then discards it. A run `cancelled` (stopped) before its commit landed is killed
        then, before the gate opens: it never execs. A process that died at its gate cannot
        exec: `exec_instant` then says it never ran."""
        self.admitted = True
        self._cancelled = cancelled
        if self._go.opened:
            when_committed(self._verdict_landed)
            return
        self._verdict()
        self._owed = True
        self._go.awaiting += 1
        when_committed(self._landed)

    def _verdict(self) -> None:
        with contextlib.suppress(OSError):
            self._sock.send(b"\n")

    def _verdict_landed(self) -> None:
        if not self._gone:
            if self._cancelled():
                self._kill()
            else:
                self._verdict()
            self._leave()

    def _landed(self) -> None:
        """Its run id is durable: it no longer holds its gate shut. Stopped meanwhile, it has
        its verdict but must not exec: it dies before the gate opens."""
        if self._owed:
            self._owed = False
            if self._cancelled():
                self._kill()
            self._leave()
            self._go.landed()

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
        stamp_us = exec_stamp(self._sock)
        self._sock.close()
        return stamp_us

    def discard(self) -> None:
        """Kill it before it could exec (it is alone in its session) and let go of it."""
        self._kill()
        self._sock.close()
        self.transport.close()  # its watcher reaps it
        self._leave()
        self._landed()  # dead: a verdict it was sent no longer keeps the gate shut

    def _kill(self) -> None:
        """SIGKILL: it runs no instruction of its own after this returns."""
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.pid, signal.SIGKILL)

    def _leave(self) -> None:
        if not self._gone:
            self._gone = True
            self._go.leave()


def exec_stamp(sock: socket.socket) -> int | None:
    """Read the byte a gate shell sends right before exec: the kernel's stamp of it (µs),
    or None if the shell ended without sending it."""
    try:
        data, ancillary, _, _ = sock.recvmsg(1, socket.CMSG_SPACE(_STAMP.size))
    except ConnectionResetError:  # it died with its verdict unread
        return None
    stamps = [d for level, kind, d in ancillary if kind == SO_TIMESTAMPNS]
    if not data or not stamps:
        return None
    sec, nsec = _STAMP.unpack(stamps[0][: _STAMP.size])
    return int(sec) * 1_000_000 + int(nsec) // 1000


def verdict_socket() -> tuple[socket.socket, socket.socket]:
    """(agent's end, child's end) of a run's verdict socket; the agent's end stamps arrivals."""
    ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    ours.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS, 1)
    ours.setblocking(False)
    return ours, theirs
