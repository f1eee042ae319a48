"""Recovering what a failure left in flight: runs an agent no longer knows, fires no leader saw."""

from __future__ import annotations

import asyncio
from collections import defaultdict
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

import structlog

from center import store
from center.decisions import misfire_plan, plan_retry
from center.leader_context import LeaderContext
from center.routing import AgentInfo, choose
from center.rulebook import RuleBook
from center.runs import PlannedRun, plan_run
from center.silence import lose_silent
from protocol import statuses
from protocol.clock import now_us
from protocol.vocabulary import Trigger

log = structlog.get_logger("center.recovery")


@dataclass(slots=True)
class Recovered:
    """Runs to send again, and runs to record as lost (with why)."""

    resend: list[PlannedRun] = field(default_factory=list)
    lost: dict[str, str] = field(default_factory=dict)
    unknown: set[str] = field(default_factory=set)  # of the lost: runs that may have run


def recover_in_flight(
    rows: list[tuple[PlannedRun, str]],
    known: frozenset[str] | None,
    *,
    now_us: int,
    grace_us: int,
    agent: str,
) -> Recovered:
    """Pure. `known` is what the agent said it runs (None: it was not asked, only a sweep).

    A `dispatched` run the agent does not know never reached it: send it again while it is
    within the dispatch grace (the agent ignores an exec it already has), else it is lost.
    A `running` run the agent does not know died with the agent's process: lost.
    """
    out = Recovered()
    for run, status in rows:
        if known is not None and run.runid in known:
            continue
        if status == statuses.DISPATCHED and now_us - run.send_at_us < grace_us:
            out.resend.append(run)
        elif status == statuses.DISPATCHED:
            out.lost[run.runid] = f"sent to agent {agent} but never started"
        elif known is not None:
            out.lost[run.runid] = (
                f"outcome unknown: agent {agent} reconnected, no longer runs it and sent no result"
            )
            out.unknown.add(run.runid)
    return out


@dataclass(slots=True)
class CatchUp:
    runs: list[PlannedRun] = field(default_factory=list)
    missed: list[tuple[PlannedRun, str]] = field(default_factory=list)
    more: list[int] = field(default_factory=list)  # rules with fires beyond the record cap


async def catch_up(
    rulebook: RuleBook,
    agents: Mapping[int, AgentInfo],
    online: Callable[[int], bool],
    *,
    gap_from_us: int,
    now_us: int,
) -> CatchUp:
    """Each rule's misfire policy over (gap_from, now], the time no leader planned."""
    out = CatchUp()
    reason = "no center was leading at its time (misfire policy {})"
    for i, (task_id, schedule) in enumerate(rulebook.plannable()):
        if i % 1000 == 999:
            await asyncio.sleep(0)  # a big rule set must not stall dispatch
        rule = rulebook.rules[task_id]
        plan = misfire_plan(
            schedule, rule.misfire, rule.misfire_window_s, gap_from_us=gap_from_us, now_us=now_us
        )
        if plan.more:
            out.more.append(task_id)
        for sched_us in plan.run:
            out.runs += [
                plan_run(
                    task_id,
                    sched_us,
                    aid,
                    instance=shard,
                    trigger=Trigger.MISFIRE,
                    shard_total=rule.shard_total,
                    due_us=now_us,
                )
                for shard, aid in choose(rule, agents, online)
            ]
        for sched_us in plan.missed:
            out.missed += [
                (
                    plan_run(task_id, sched_us, aid, instance=shard, shard_total=rule.shard_total),
                    reason.format(rule.misfire),
                )
                for shard, aid in choose(rule, agents, online)
            ]
    return out


def sweep_ready(
    needed: int, heard: Mapping[int, int], connected: list[int], reports_written: int
) -> bool:
    """Pure. Whether the sweep may judge runs sent long ago with no start: once every agent
    still connected has answered a ping sent since the sweep began (`heard`: the reports the
    center had received by that pong; the agent sent every earlier report before it) and all
    those reports, and the `needed` received when it began, are stored. A start still unread
    in a socket, or waiting in the report buffer, is not a run that never started."""
    if any(aid not in heard for aid in connected):
        return False
    return max([needed, *(heard[aid] for aid in connected)]) <= reports_written


NOT_YET = -1  # no pong since the agent reconnected
SWEEP_SILENT_US = 5_000_000  # a run sent (and due) this long ago with no start is resent


class Recovery:
    """The leader's recovery: fires no leader saw, and runs an agent lost or never got."""

    def __init__(self, ctx: LeaderContext) -> None:
        self._ctx = ctx
        # aid -> (runs it says it has, when it connected, reports to store first, or NOT_YET)
        self._pending: dict[int, tuple[frozenset[str], int, int]] = {}
        # The sweep waiting for its reports to be stored: (reports received, when), or None.
        self._sweep_mark: tuple[int, int] | None = None
        # aid -> reports received by its first pong to a ping sent since the sweep's mark.
        self._sweep_heard: dict[int, int] = {}

    async def catch_up(self, gap_from: int, until_us: int) -> None:
        """Fires between the old leader's cursor and `until_us` (ours): each rule's misfire
        policy."""
        ctx, now = self._ctx, until_us
        got = await catch_up(
            ctx.rulebook, ctx.agents(), lambda aid: True, gap_from_us=gap_from, now_us=now
        )
        await store.insert_planned(ctx.engine, ctx.lease, got.runs, 0, now_us(), missed=got.missed)
        ctx.enqueue(got.runs)
        log.warning(
            "center.misfire",
            gap_ms=(now - gap_from) // 1000,
            run=len(got.runs),
            missed=len(got.missed),
            rules_beyond_cap=got.more[:20],
        )

    # ------------------------------------------------------------ rules, agents, daemons

    def note_connected(self, aid: int, running: list[str]) -> None:
        """An agent (re)connected: reconcile once its resent reports are stored."""
        self._pending[aid] = (frozenset(running), now_us(), NOT_YET)

    def note_pong(self, aid: int, reports_added: int, sent_ms: int) -> bool:
        """Its first pong comes after every event it resent: those are among the first
        `reports_added` reports the center received. Likewise for the sweep: a pong to a
        ping sent (`sent_ms`) since it began comes after every report sent before. True if
        it was an agent's first pong since it reconnected."""
        mark = self._sweep_mark
        if mark is not None and sent_ms * 1000 > mark[1]:
            self._sweep_heard.setdefault(aid, reports_added)
        entry = self._pending.get(aid)
        if entry is not None and entry[2] == NOT_YET:
            self._pending[aid] = (entry[0], entry[1], reports_added)
            return True
        return False

    def take_ready(self, reports_written: int) -> list[tuple[int, frozenset[str], int]]:
        """Agents whose resent reports are all stored: (aid, runs it knows, connected at)."""
        ready = [
            (aid, known, at)
            for aid, (known, at, needed) in self._pending.items()
            if needed != NOT_YET and needed <= reports_written
        ]
        for aid, _, _ in ready:
            del self._pending[aid]
        return ready

    async def reconcile(self, ready: list[tuple[int, frozenset[str], int]]) -> None:
        for i, (aid, known, connected_us) in enumerate(ready):
            try:
                await self._recover(aid, known, connected_us)
            except BaseException:
                for again, k, at in ready[i:]:  # try those again next tick
                    self._pending.setdefault(again, (k, at, 0))
                raise

    async def sweep(self, reports_added: int, reports_written: int) -> None:
        """Runs sent a while ago that never started (a refused exec, a dead socket), then runs
        of agents silent past `lost_after_us` (`lose_silent`).

        Only once every report its agents sent before the sweep began is received and stored
        (`sweep_ready`): a start still unread in a socket or waiting in the report buffer (a
        burst's reports take seconds to read and write) is not a run that never started, and
        resending it would only feed the backlog. A run sent ahead is held by its agent until
        its time: its silence counts from then."""
        if self._sweep_mark is None:
            self._sweep_mark, self._sweep_heard = (reports_added, now_us()), {}
        needed, began_us = self._sweep_mark
        connected = [aid for aid, link in self._ctx.pool.links.items() if link.connected]
        if not sweep_ready(needed, self._sweep_heard, connected, reports_written):
            return  # try again next time, with the same mark
        self._sweep_mark = None
        before = began_us - SWEEP_SILENT_US
        # One read for every agent, not one each: a sweep at rest finds nothing.
        rows = await store.runs_in_flight(
            self._ctx.engine,
            connected,
            updated_before_us=before,
            status=frozenset({statuses.DISPATCHED}),
            due_before_us=before,
        )
        by_aid: dict[int, list[tuple[PlannedRun, str]]] = defaultdict(list)
        for row in rows:
            by_aid[row[0].aid].append(row)
        for aid, found in by_aid.items():
            await self._settle(aid, None, found)
        await self.lose_silent()

    async def lose_silent(self) -> None:
        """Runs in flight on agents silent for `lost_after_us`: lost, and retried if their
        rules ask for it. Idempotent: only runs still in flight change, once, fenced."""
        ctx = self._ctx
        now = now_us()
        online = ctx.pool.connected
        connected = [aid for aid, link in ctx.pool.links.items() if link.connected]
        rows = await store.in_flight_off_line(
            ctx.engine, connected, updated_before_us=now - ctx.lost_after_us
        )
        lost = lose_silent(
            rows,
            connected=online,
            names=ctx.agent_name,
            rules=ctx.rulebook.rules,
            now_us=now,
            bound_us=ctx.lost_after_us,
        )
        if not lost:
            return
        made = frozenset(
            await store.record_lost(
                ctx.engine, ctx.lease, [(x.run.runid, x.reason, x.retry) for x in lost], now
            )
        )
        for x in lost:
            if x.run.runid in made:
                log.warning(
                    "run.lost",
                    runid=x.run.runid,
                    task_id=x.run.task_id,
                    aid=x.run.aid,
                    agent=x.agent,
                    reason=x.reason,
                    retry_runid=x.retry.runid if x.retry else None,
                )
        ctx.enqueue([x.retry for x in lost if x.retry and x.run.runid in made])

    async def _recover(self, aid: int, known: frozenset[str], before_us: int) -> None:
        """A reconnected agent's runs in flight, as stored before it connected, against the
        runs it says it has."""
        rows = await store.runs_in_flight(
            self._ctx.engine, aid, updated_before_us=before_us, status=statuses.ACTIVE
        )
        marks = self._ctx.marks
        # In flight: a `planned` row too if its run was sent before the agent connected (its
        # `dispatched` not written yet); one sent since is the agent's already.
        rows = [
            (run, statuses.DISPATCHED if status == statuses.PLANNED else status)
            for run, status in rows
            if status != statuses.PLANNED or marks.sent_before(run.runid, before_us)
        ]
        await self._settle(aid, known, rows)

    async def _settle(
        self, aid: int, known: frozenset[str] | None, rows: list[tuple[PlannedRun, str]]
    ) -> None:
        """One agent's runs in flight found in the store: lost ones marked (and retried),
        the rest sent again where they need it."""
        ctx = self._ctx
        now = now_us()
        got = recover_in_flight(
            rows, known, now_us=now, grace_us=ctx.grace_us, agent=ctx.agent_name(aid)
        )
        rules = ctx.rulebook.rules
        retries = [
            r
            for run, _ in rows
            if run.runid in got.lost
            if (
                r := plan_retry(
                    run.ref,
                    statuses.LOST,
                    aid,
                    rules.get(run.task_id),
                    now,
                    unknown=run.runid in got.unknown,
                )
            )
        ]
        # The lost marks and their retries in one fenced write: no retry can be forgotten.
        # Nothing lost (a sweep at rest): no write at all, not an empty fenced transaction.
        if retries or got.lost:
            await store.insert_planned(ctx.engine, ctx.lease, retries, 0, now, lost=got.lost)
        for runid, reason in got.lost.items():
            log.warning("run.lost", runid=runid, aid=aid, reason=reason)
        ctx.enqueue(retries)
        if got.resend:
            log.info("run.resent", aid=aid, runids=[r.runid for r in got.resend][:20])
            ctx.enqueue(got.resend, at_us=now)
