"""The leader's dispatch: each run sent to its agent at its send time (or skipped, missed or
moved as decided), the sent ones marked (unless a report settles them first, see
DispatchMarks), and runs held at agents revised when a rule changes."""

from __future__ import annotations

import asyncio
import contextlib
from collections import defaultdict

import structlog

from center import store
from center.admission import at_instant
from center.dispatcher import WAIT_RETRY_US, decide_dispatch
from center.exec_frames import ExecFrames
from center.fleet_limits import Limits
from center.leader_context import LeaderContext
from center.loops import Background
from center.metrics import CenterMetrics, observe_many
from center.routing import failover_target
from center.rules import Rule
from center.runs import PlannedRun
from protocol import statuses
from protocol.clock import now_us
from protocol.messages import Kill, Message
from protocol.vocabulary import Trigger

log = structlog.get_logger("center.leader")
BIG_BATCH = 1000  # dispatch batches this large are logged, with how far ahead they went
DISPATCH_STEP_S = 0.05  # one long asyncio.sleep wakes 5-10 ms late, 50 ms steps under 1 ms
# Longest wait with nothing due: every enqueue wakes the loop, this only bounds a missed wake.
DISPATCH_IDLE_S = 1.0


class Dispatch:
    """Sends the queue's runs at their time; remembers scheduled runs sent ahead (`held`)
    until their time, so that a rule changed meanwhile cancels or replaces them."""

    def __init__(
        self,
        ctx: LeaderContext,
        *,
        limits: Limits,
        frames: ExecFrames,
        metrics: CenterMetrics,
        background: Background,
    ) -> None:
        self._ctx, self._limits, self._frames = ctx, limits, frames
        self._metrics, self._background = metrics, background
        # Scheduled runs sent ahead, waiting at their agent, by run id.
        self.held: dict[str, PlannedRun] = {}

    async def run(self) -> None:
        """Wake at the next send time, or when woken (a run queued)."""
        queue, marks, wake = self._ctx.queue, self._ctx.marks, self._ctx.wake
        while True:
            wait_s = wait_for(_earliest(queue.next_due_us(), marks.next_us()), now_us())
            if wait_s > 0:
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(wait_s):
                        await wake.wait()
            wake.clear()
            self.dispatch_due()
            self.write_marks(marks.take_due(now_us()))

    def send(self, aid: int, messages: list[Message]) -> None:
        link = self._ctx.pool.link(aid)
        if link is not None:
            link.send(messages)

    def still_fires(self, run: PlannedRun) -> bool:
        schedule = self._ctx.rulebook.schedules.get(run.task_id)
        return schedule is not None and schedule.next_fire_us(run.sched_us - 1) == run.sched_us

    def revise_held(self, task_ids: set[int], now: int) -> None:
        """Runs sent ahead of a changed rule: cancelled if it no longer wants them, else sent
        again with the new spec (the agent swaps a held run for a newer one of the same id)."""
        for runid, run in list(self.held.items()):
            if run.sched_us <= now:
                del self.held[runid]
                continue
            if run.task_id not in task_ids:
                continue
            rule = self._ctx.rulebook.rules.get(run.task_id)
            if rule is None or not rule.enabled or rule.error or not self.still_fires(run):
                del self.held[runid]
                kill = Kill(
                    epoch=self._ctx.epoch,
                    task_id=run.task_id,
                    runid=runid,
                    reason="rule changed before its start",
                )
                self.send(run.aid, [kill])
            else:
                self.send(run.aid, [self._frames.exec_msg(run, rule)])

    def dispatch_due(self) -> None:
        ctx, now = self._ctx, now_us()
        due = ctx.queue.pop_due(now)
        if not due:
            return
        out = decide_dispatch(
            due,
            now_us=now,
            rules=ctx.rulebook.rules,
            connected=ctx.pool.connected,
            grace_us=ctx.grace_us,
            frame_of=self._frames.frame_of,
            reroute=self._reroute,
            still_fires=self.still_fires,
            admit=self._admit,
            flush=self._write,
        )
        for aid, frames in out.frames.items():
            self._write(aid, frames)
        for runid in out.skipped:
            self._frames.forget(runid)
        sent = frozenset(out.sent)
        self._observe_sent(due, sent)
        sent_runs = [r for r in due if r.runid in sent]
        self.held.update(
            (r.runid, r) for r in sent_runs if r.trigger == Trigger.SCHEDULE and r.sched_us > now
        )
        ctx.queue.add(out.waiting, at_us=now + WAIT_RETRY_US)
        self._mark_sent(sent_runs, now)
        if out.skipped or out.missed:
            self._background(self._record_dispatch(out.skipped, out.missed, now))
        for old_runid, run in out.rerouted:
            self._frames.forget(old_runid)  # the moved run has its own id and frame
            self._background(self._rerouted(old_runid, run, now))

    def _write(self, aid: int, frames: list[bytes]) -> None:
        link = self._ctx.pool.link(aid)
        if frames and link is not None and link.send_bytes(b"".join(frames)):
            self._background(link.drain())

    def _admit(self, run: PlannedRun, rule: Rule) -> str:
        """A limited rule's run at its instant (a fleet-wide cap, concurrency keys): go
        (counted), wait, replace the oldest run in flight, or be skipped, as its overlap
        policy says."""
        decision = self._limits.admit(run, rule, now_us())
        if decision.replace:
            kill = Kill(
                epoch=self._ctx.epoch,
                task_id=rule.id,
                runid=decision.replace,
                reason=f"replaced by {run.runid} (overlap replace, process_num across the fleet)",
            )
            self.send(decision.replace_aid, [kill])
        return decision.verdict

    def _observe_sent(self, due: list[PlannedRun], sent: frozenset[str]) -> None:
        written_us = now_us()  # after the frames were handed to the transports
        if len(sent) >= BIG_BATCH:
            first = min(r.sched_us for r in due)
            log.info("dispatch.batch", runs=len(sent), ahead_ms=(first - written_us) // 1000)
        observe_many(
            self._metrics.dispatch_lateness_s,
            [max(written_us - r.send_at_us, 0) / 1e6 for r in due if r.runid in sent],
        )
        self._metrics.dispatched.inc(len(sent))

    def _reroute(self, run: PlannedRun) -> int | None:
        ctx = self._ctx
        rule = ctx.rulebook.rules.get(run.task_id)
        if rule is None:
            return None
        return failover_target(rule, run.instance, run.aid, ctx.agents(), ctx.pool.connected)

    async def _rerouted(self, old_runid: str, run: PlannedRun, now: int) -> None:
        """Failover of a run whose agent is down: move its row, then send it at once."""
        if await store.reroute_run(self._ctx.engine, old_runid, run, now):
            log.info("run.rerouted", from_runid=old_runid, runid=run.runid, aid=run.aid)
            self._ctx.enqueue([run], at_us=now)

    def _mark_sent(self, runs: list[PlannedRun], now: int) -> None:
        """Hold the sent runs' `dispatched` (see DispatchMarks), except a limited rule's,
        written at once: a new leader counts the runs the store has in flight before it
        admits any, and must not miss one that its agent has not reported yet."""
        self._ctx.marks.add(((r.runid, r.sched_us) for r in runs), now)
        rules = self._ctx.rulebook.rules
        limited = [r.runid for r in runs if at_instant(rules.get(r.task_id))]
        if limited:
            self.write_marks({now: limited})

    def write_marks(self, sent: dict[int, list[str]]) -> None:
        """Write `dispatched` for sent runs no report has settled (see DispatchMarks), each
        touched (`updated_us`) when it was sent, as the sweep and reconciliation expect."""
        for sent_us, runids in sent.items():
            self._background(self._write_marks(runids, sent_us))

    async def _write_marks(self, runids: list[str], sent_us: int) -> None:
        planned = frozenset({statuses.PLANNED})  # a stored report's status stays
        try:
            await store.set_run_status(
                self._ctx.engine, runids, statuses.DISPATCHED, sent_us, only_from=planned
            )
        finally:
            self._ctx.marks.forget(runids)

    async def _record_dispatch(
        self, skipped: dict[str, str], missed: dict[str, str], now: int
    ) -> None:
        engine = self._ctx.engine
        for runid, reason in missed.items():
            log.warning("run.missed", runid=runid, reason=reason)
        # One write per reason, not per run: a burst for a dead agent shares one reason.
        for status, reasons in ((statuses.SKIPPED, skipped), (statuses.MISSED, missed)):
            by_reason: dict[str, list[str]] = defaultdict(list)
            for runid, reason in reasons.items():
                by_reason[reason].append(runid)
            for reason, runids in by_reason.items():
                await store.set_run_status(engine, runids, status, now, reason=reason)


def _earliest(a_us: int | None, b_us: int | None) -> int | None:
    return b_us if a_us is None else a_us if b_us is None else min(a_us, b_us)


def wait_for(next_due_us: int | None, now: int) -> float:
    """How long the loop may wait for its next send: one long wait to DISPATCH_STEP_S before
    it (which may wake 5-10 ms late), then one short, precise step; not 20 wake-ups a second
    while the next send is seconds away."""
    if next_due_us is None:
        return DISPATCH_IDLE_S
    delay_s = max(next_due_us - now, 0) / 1e6
    if delay_s > 2 * DISPATCH_STEP_S:
        return min(delay_s - DISPATCH_STEP_S, DISPATCH_IDLE_S)
    return min(delay_s, DISPATCH_STEP_S)
