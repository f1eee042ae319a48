"""Run starts reported a moment late: a run that ends meanwhile is reported by its end alone."""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Callable

from agent.outbox import Event
from protocol.messages import RunStarted


class StartReports:
    """Most cron runs end within a second. Each `RunStarted` waits here `delay_s` before it is
    passed on; if the run's `RunFinished` comes first, the start is dropped and the finish goes
    on marked `start_unsent` (it already carries `start_us` and `pid`): the outbox, the link
    and the center handle one event per run instead of two.

    Nothing durable is lost by the wait: the run id and the process (`Journal.track`) are
    written at once, so an agent killed while a start waits here still reports the run from its
    state directory when it comes back, as it does for a start not yet committed.
    """

    def __init__(self, passed_on: Callable[[Event], None], delay_s: float) -> None:
        self._passed_on = passed_on
        self._delay_s = delay_s
        self._waiting: dict[str, tuple[RunStarted, asyncio.TimerHandle]] = {}

    def add(self, event: Event) -> None:
        """Keep a start back; pass on a finish, with its waiting start dropped if it has one."""
        runid = event.ref.runid
        if isinstance(event, RunStarted):
            if self._delay_s <= 0:
                self._passed_on(event)
                return
            timer = asyncio.get_running_loop().call_later(self._delay_s, self._release, runid)
            self._waiting[runid] = (event, timer)
            return
        waiting = self._waiting.pop(runid, None)
        if waiting is not None:
            waiting[1].cancel()
            event = dataclasses.replace(event, start_unsent=True)
        self._passed_on(event)

    def release_all(self) -> None:
        """Pass on every waiting start now (the agent is stopping: runs left running must be
        known as started)."""
        for runid in list(self._waiting):
            self._release(runid)

    def _release(self, runid: str) -> None:
        waiting = self._waiting.pop(runid, None)
        if waiting is not None:
            waiting[1].cancel()
            self._passed_on(waiting[0])
