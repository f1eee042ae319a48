"""One accepted run as the agent supervises it: its exec, live output, and the stop asked for."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

from agent.output import LiveTail
from protocol.clock import now_us
from protocol.messages import Exec


class RunHandle:
    """One accepted run: its exec, its live output tail, and the stop asked for, if any.

    `start_us`, when given, is used as the run's start time (a daemon instance's run id is made
    from it before the spawn); otherwise the spawn's time is. `on_started` is called right
    after the spawn, before RunStarted is queued. `ready_mono` is when the run could start
    (received, or given its slot): the spawn latency is measured from it.
    """

    def __init__(
        self, msg: Exec, *, start_us: int = 0, on_started: Callable[[RunHandle], None] | None = None
    ) -> None:
        self.msg = msg
        self.tail = LiveTail()
        self.pid = 0
        self.start_us = start_us
        self.stop_status = ""
        self.stop_reason = ""
        self.ready_mono = time.monotonic()
        self._stop = asyncio.Event()
        self._on_started = on_started

    def mark_started(self, pid: int) -> int:
        """Note the spawned pid (and the start time, unless preset); return the start time."""
        self.pid = pid
        self.start_us = self.start_us or now_us()
        if self._on_started is not None:
            self._on_started(self)
        return self.start_us

    @property
    def runid(self) -> str:
        """The run id this handle supervises."""
        return self.msg.ref.runid

    @property
    def task_id(self) -> int:
        """The rule this run belongs to."""
        return self.msg.spec.task_id

    def request_stop(self, status: str, reason: str) -> None:
        """Ask the run to end as `status` (killed, timeout); the first request wins."""
        if not self.stop_status:
            self.stop_status, self.stop_reason = status, reason
            self._stop.set()

    def withdraw_stop(self) -> None:
        """The process had exited before the stop was asked for: its own exit is the outcome."""
        self.stop_status = self.stop_reason = ""

    async def stop_requested(self) -> None:
        """Return once a stop was requested."""
        await self._stop.wait()
