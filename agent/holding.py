"""Runs sent ahead of their time by the center, held until their scheduled start."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import structlog

from agent.outcomes import not_started
from agent.prepared import Preparer
from protocol import statuses
from protocol.messages import Exec, RunFinished
from protocol.vocabulary import Trigger

log = structlog.get_logger("agent.holding")
# Closer than this to its time, a run starts at once: a timer would only add its own jitter.
HOLD_MIN_US = 2_000


class Holding:
    """Timers for early runs; a held run is known (listed, killable) but not yet accepted.

    Its run id is remembered durably only when it is released: an agent restarted while
    holding has forgotten it, and the center's resend after the reconnect must not be
    mistaken for a repeat.
    """

    def __init__(
        self,
        release: Callable[[Exec], None],
        finish: Callable[[RunFinished], None],
        preparer: Preparer | None = None,
    ) -> None:
        self._release = release
        self._finish = finish
        self._preparer = preparer
        self._held: dict[str, tuple[asyncio.TimerHandle, Exec]] = {}

    def __contains__(self, runid: object) -> bool:
        return runid in self._held

    def runids(self) -> list[str]:
        return list(self._held)

    def hold_if_early(self, msg: Exec, now_us: int) -> bool:
        """Hold a scheduled run that arrived before its time; False: start it now."""
        delay_us = msg.ref.sched_us - now_us
        if msg.ref.trigger != Trigger.SCHEDULE or delay_us < HOLD_MIN_US:
            return False
        timer = asyncio.get_running_loop().call_later(delay_us / 1e6, self._due, msg.ref.runid)
        self._held[msg.ref.runid] = (timer, msg)
        if self._preparer is not None:
            self._preparer.offer(msg)
        return True

    def replace(self, msg: Exec) -> bool:
        """A held run sent again with a newer spec (its rule changed): keep the newer one."""
        entry = self._held.get(msg.ref.runid)
        if entry is None:
            return False
        if msg.spec.updated_us > entry[1].spec.updated_us:
            self._held[msg.ref.runid] = (entry[0], msg)
            log.info("agent.held_run_updated", runid=msg.ref.runid)
            if self._preparer is not None:  # the process made for the old spec never runs
                self._preparer.discard(msg.ref.runid)
                self._preparer.offer(msg)
        return True

    def _due(self, runid: str) -> None:
        entry = self._held.pop(runid, None)
        if entry is not None:
            self._release(entry[1])

    def drop(self, runid: str, task_id: int, reason: str, end_us: int) -> int:
        """Kill held runs (one by id, or all of a rule): they end `killed`, never started."""
        gone = [
            r
            for r, (_, m) in self._held.items()
            if r == runid or (not runid and m.spec.task_id == task_id)
        ]
        for r in gone:
            timer, msg = self._held.pop(r)
            timer.cancel()
            if self._preparer is not None:
                self._preparer.discard(r)
            self._finish(not_started(msg, statuses.KILLED, reason, end_us))
        return len(gone)

    def forget_all(self) -> None:
        """At shutdown: not reported, so that the center sends them again after a restart."""
        for timer, _ in self._held.values():
            timer.cancel()
        if self._preparer is not None:
            self._preparer.discard_all()
        if self._held:
            log.info("agent.held_runs_forgotten", count=len(self._held))
        self._held.clear()
