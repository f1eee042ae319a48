"""What exists only while this center holds the lease: its loops, planning, dispatch, daemons,
reports and their acknowledgements, recovery and commands; all of it ends at the step-down."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass

import structlog
from sqlalchemy.ext.asyncio import AsyncEngine

from center import store
from center.admission import at_instant
from center.agent_pool import AgentPool, LinkSettings, PoolListener
from center.alert_loop import AlertLoop
from center.bulk import many_objects
from center.commands import CommandRunner
from center.config import CenterConfig
from center.daemon_sync import DaemonSync
from center.decisions import plan_dependents, plan_retry
from center.dispatch_loop import Dispatch
from center.dispatcher import DispatchQueue
from center.exec_frames import ExecFrames, soon_again
from center.fire_router import FireRouter
from center.fleet import Fleet
from center.fleet_limits import Limits
from center.flows import Flows
from center.intake import Intake
from center.leader_context import LeaderContext
from center.loops import Background, Wake, every, transient_errors
from center.metrics import CenterMetrics
from center.output_budget import OutputBudget
from center.planner import Planner
from center.recovery import Recovery
from center.report_buffer import ReportBatch
from center.report_gate import ReportGate
from center.retention import Retention, RetentionSettings
from center.routing import (
    AGENT_UNREACHABLE,
    AgentInfo,
    reachability_changes,
)
from center.rulebook import RuleBook, RuleChanges
from center.runs import PlannedRun
from center.wakeups import PLAN_BATCH_PARTS, REPORTS_IDLE_S, plan_wait_s, reports_wait_s
from protocol.clock import now_us
from protocol.messages import (
    Ack,
    AgentState,
    DaemonStatus,
    Message,
    Pong,
    Resources,
    RunStarted,
)
from protocol.tls import LinkTls

log = structlog.get_logger("center.leader")
# Fires planned per tick at most: a burst is spread over ticks, and each fenced write is short
# enough that the lease renewal (the same writer on SQLite, the lease row on MySQL) never waits
# long behind it (25k rows held a MariaDB renewal for 0.5 s).
PLAN_CHUNK = 5_000
BIG_BATCH = 1000  # plan batches this large are logged, with how far ahead they went
SWEEP_EVERY_S = 2.0
FLEET_EVERY_S = 0.5  # a lost agent's instances are placed elsewhere within this of the notice
LIMITS_EVERY_S = 1.0  # keys edited, and holders ended without a report, are seen within this


@dataclass(frozen=True, slots=True)
class LeaderHooks:
    """What the leader tells the service that outlives it: heartbeats to record, and agents
    that obey a newer epoch (only the service, which holds the lease, can judge those)."""

    heartbeat: Callable[[int, Resources], None]
    fenced_out: Callable[[int, str], None]
    security_event: Callable[[str, str, str], None]  # (action, client, reason) for the audit log


class Leader(PoolListener):
    """Plans fires ahead, sends them at their time, keeps agents' daemons as the rules say,
    writes and acknowledges what agents report, and recovers what a failure left in flight."""

    def __init__(
        self,
        *,
        config: CenterConfig,
        engine: AsyncEngine,
        lease: store.Lease,
        rulebook: RuleBook,
        agents: Mapping[int, AgentInfo],
        hooks: LeaderHooks,
        metrics: CenterMetrics,
        tls: LinkTls | None = None,
    ) -> None:
        self.metrics = metrics
        self.config, self.engine, self.lease = config, engine, lease
        self.rulebook, self.agents = rulebook, agents
        self._hooks = hooks
        self.planner = Planner()
        self.queue = DispatchQueue(
            config.send_ahead_us, lambda task_id: at_instant(self.rulebook.rules.get(task_id))
        )
        self.limits = Limits(config.center_lost_after_s)
        self.wake = asyncio.Event()
        # The plan and report loops sleep until there is work (a fire entering the window, a
        # rule change, a report), not a tick each: an idle center wakes a few times a second.
        self.plan_wake, self.reports_wake = Wake(), Wake()
        self._reports_at = 0.0  # monotonic start of the last reports step
        self.cursor_us = max(lease.planned_through_us, now_us())
        self._unsaved: list[PlannedRun] = []
        self._frames = ExecFrames(lease.epoch)
        self._background = Background()
        self.intake = Intake(engine, metrics)
        self.pool = AgentPool(_link_settings(config, tls), self)
        self.ctx = LeaderContext(
            engine=engine,
            lease=lease,
            rulebook=rulebook,
            agents=lambda: self.agents,
            pool=self.pool,
            queue=self.queue,
            wake=self.wake,
            grace_us=self.grace_us,
            lost_after_us=config.lost_after_us,
        )
        self._gate = ReportGate(
            self.ctx,
            self.intake,
            metrics,
            hooks.security_event,
            OutputBudget(config.center_live_output_bytes_s),
        )
        self._identity_noted: set[int] = set()
        self.fleet = Fleet(self.ctx, config.center_offline_after_s)
        self.flows = Flows(self.ctx, self.pool.connected)
        self._commands = CommandRunner(self.ctx, rebalance=self.fleet.rebalance, flows=self.flows)
        self._daemons = DaemonSync(self.ctx, self.fleet.wanted)
        self.recovery = Recovery(self.ctx)
        self.router = FireRouter(self.ctx, self._background)
        self.dispatch = Dispatch(
            self.ctx,
            limits=self.limits,
            frames=self._frames,
            metrics=metrics,
            background=self._background,
        )

    @property
    def epoch(self) -> int:
        """The epoch of this term: every frame to an agent carries it."""
        return self.lease.epoch

    def ping_epoch(self) -> int:
        return self.lease.epoch

    async def open(self) -> None:
        """Resume after the old leader's cursor, pick up its unsent runs, dial the agents."""
        with many_objects():
            self.planner.load(self.rulebook.plannable(), self.cursor_us)
        since = now_us() - self.grace_us
        expired = await store.expire_planned(self.engine, since, now_us())
        if expired:
            log.warning("run.missed", count=expired, reason="planned, never sent in time")
        self.queue.add(await store.runs_waiting(self.engine, since))
        self.router.notices_on_file(await store.rule_notices(self.engine))
        await self.limits.load(self.engine, self.rulebook.rules, now_us())
        await self.fleet.load()
        await self.flows.open()
        self.pool.sync(self.agents)
        gap_from = self.lease.planned_through_us
        if gap_from and gap_from < self.cursor_us:
            await self.recovery.catch_up(gap_from, self.cursor_us)
        log.info(
            "center.leading",
            epoch=self.epoch,
            resumed_after_us=self.cursor_us,
            rules=len(self.planner),
            waiting_runs=len(self.queue),
        )

    async def run(self) -> None:
        """The term's loops in one task group: a loop that ends with an error (NotLeader: the
        lease was lost) cancels the others and is raised to the service, which steps down."""
        c, tick_s = self.config, self.config.center_tick_ms / 1000
        alerts = AlertLoop(self.engine, c, lambda: self.ctx, self.metrics)
        retention = Retention(self.engine, RetentionSettings.of(c), lambda: self.ctx)
        async with asyncio.TaskGroup() as tg:
            for name, step, pause in (
                ("plan", self.plan_once, self._plan_pause),
                ("reports", self.reports_once, self._reports_pause),
                ("commands", self._commands.step, self._commands.pause),
            ):
                tg.create_task(every(name, step, tick_s, self.metrics, pause=pause), name=name)
            for name, step, every_s in (
                ("sweep", self._sweep_once, SWEEP_EVERY_S),
                ("fleet", self._fleet_once, FLEET_EVERY_S),
                ("flows", self.flows.run, 0),  # waits for a node's end, or STEP_S, itself
                ("limits", lambda: self.limits.refresh(self.engine), LIMITS_EVERY_S),
                ("alerts", alerts.step, c.center_alerts_poll_s),
                ("retention", retention.step, c.center_retention_every_s),
            ):
                tg.create_task(every(name, step, every_s, self.metrics), name=name)
            tg.create_task(self.dispatch.run(), name="dispatch")

    async def close(self, *, flush: bool) -> None:
        """End the term: with `flush` (a clean shutdown), first write what agents reported and
        the writes in flight, within the grace; then drop every agent link."""
        grace_s = self.config.center_grace_s
        if flush:
            with contextlib.suppress(*transient_errors(), TimeoutError):
                async with asyncio.timeout(grace_s):
                    await self.reports_once()
            self.dispatch.write_marks(self.ctx.marks.take_all())
        self.intake.say_outcomes()  # of runs stored while more reports waited: said now
        await self._background.drain(grace_s if flush else 0)
        await self.pool.close()

    @property
    def grace_us(self) -> int:
        return int(self.config.center_dispatch_grace_s * 1e6)

    def apply_rule_changes(self, changes: RuleChanges) -> None:
        """Replan changed rules from now: fires already planned keep their rows and run ids
        (a new plan of the same fire dedupes); fires the new schedule lacks are skipped when
        they come up, and cancelled at their agent if they were sent ahead."""
        now = now_us()
        for task_id in changes.unplan:
            self.planner.remove(task_id)
        for task_id, schedule in changes.plan:
            self.planner.set_rule(task_id, schedule, now)
        self.dispatch.revise_held({*changes.unplan, *(t for t, _ in changes.plan)}, now)
        self.plan_wake.set()  # a fire of the changed rules may now be due sooner
        if changes.daemons:
            self._daemons.sync()

    def set_agents(self, agents: Mapping[int, AgentInfo]) -> None:
        self.agents = agents
        self.pool.sync(agents)
        self._daemons.sync()

    # ------------------------------------------------------------ planning and dispatch

    async def _plan_pause(self) -> None:
        """Until the next fire is to be planned, a rule changes, or PLAN_IDLE_S at most."""
        wait_s = plan_wait_s(
            self.planner.next_fire_us(),
            now_us(),
            lookahead_us=self.config.lookahead_us,
            tick_s=self.config.center_tick_ms / 1000,
            pending=bool(self._unsaved or self.router.unrouted),
        )
        await self.plan_wake.wait(wait_s)

    async def plan_once(self) -> None:
        """Write the fires due within the lookahead, then queue them for their time."""
        now = now_us()
        lookahead = self.config.lookahead_us
        until = now + lookahead
        if not self._unsaved and not self.router.unrouted:
            # Nothing due before the last tenth of the lookahead: plan nothing this tick. Fires
            # are then written in batches of about that tenth, one transaction a second at
            # the default 10 s instead of twenty; each is still written 9 s ahead.
            nxt = self.planner.next_fire_us()
            if nxt is None or nxt > until - lookahead // PLAN_BATCH_PARTS:
                self.cursor_us = max(self.cursor_us, until if nxt is None else min(until, nxt - 1))
                return
        again = self.router.take_unrouted(now)
        fires = self.planner.due(until, limit=PLAN_CHUNK)
        if len(fires) == PLAN_CHUNK:  # a burst: plan it over several ticks, cursor on the way
            until = fires[-1].sched_us - 1
        runs = self._unsaved + self.router.route(again + fires)
        if not runs:
            self.cursor_us = max(self.cursor_us, until)
            return
        self._unsaved = runs
        with self.metrics.store_write_s.labels(kind="plan").time():
            await store.insert_planned(self.engine, self.lease, runs, until, now)
        if len(runs) >= BIG_BATCH:
            log.info(
                "plan.batch",
                runs=len(runs),
                took_ms=(now_us() - now) // 1000,
                ahead_ms=(min(r.sched_us for r in runs) - now_us()) // 1000,
            )
        self._unsaved, self.cursor_us = [], max(self.cursor_us, until)
        runs = [r for r in runs if r.runid not in self.dispatch.held]
        self.queue.add(runs)
        self.wake.set()
        await self._frames.encode_ahead(runs, self.rulebook.rules, soon_again(fires))

    # ------------------------------------------------------------ results and commands

    async def after_reports(self, batch: ReportBatch) -> None:
        """Plan the retries that the finished runs call for."""
        now = now_us()
        for _, msg in batch.finished_msgs:
            self.limits.ended(msg.ref.runid)
            if msg.ref.flow_runid:
                self.flows.poke()
        retries = [
            retry
            for aid, msg in batch.finished_msgs
            if (
                retry := plan_retry(
                    msg.ref,
                    msg.status,
                    aid,
                    self.rulebook.rules.get(msg.ref.task_id),
                    now,
                    unknown=msg.outcome_unknown,
                )
            )
        ]
        for retry in retries:
            log.info(
                "run.retry_planned",
                runid=retry.runid,
                attempt=retry.attempt,
                first_runid=retry.first_runid,
                due_in_ms=(retry.due_us - now) // 1000,
            )
        deps = plan_dependents(
            batch.finished_msgs, self.rulebook, self.agents, self.pool.connected, now
        )
        await self.ctx.add_runs(retries + deps, now)

    async def _reports_pause(self) -> None:
        """Until a report (or a reconnection) arrives, not at all while a burst is still
        being written; then the rest of a tick since the last write, so that reports gather."""
        tick_s, reports = self.config.center_tick_ms / 1000, self.intake.reports
        if reports.added <= reports.written:
            await self.reports_wake.wait(REPORTS_IDLE_S)
        await asyncio.sleep(reports_wait_s(time.monotonic() - self._reports_at, tick_s=tick_s))

    async def reports_once(self) -> None:
        """Write what agents reported, act on it (retries, dependents), acknowledge it, then
        reconcile the agents that reconnected once all they resent is stored."""
        self._reports_at = time.monotonic()
        await self._gate.check_unsure()
        await self.intake.flush_states()
        batch = await self.intake.flush_reports(self.after_reports)
        if batch is not None:
            # Their statuses are stored: no `dispatched` to write for them.
            self.ctx.marks.forget(row["runid"] for row in (*batch.started, *batch.finished))
            for aid, seqs in batch.acks.items():  # acknowledged only once acted on
                self.send(aid, [Ack(seqs=seqs)])
        ready = self.recovery.take_ready(self.intake.reports.written)
        await self.recovery.reconcile(ready)

    def note_probe(self, workflows: tuple[int, int], pending_command: int) -> None:
        """What the rules poll's probe read for this term: the workflows' stamp, and the
        oldest pending command (0: none)."""
        self.flows.note_stamp(workflows)
        self._commands.note_probe(pending_command)

    async def _fleet_once(self) -> None:
        """Place the fleet services again, tell agents what moved, write it, end drains."""
        if self.fleet.step():
            self._daemons.sync()
        await self.fleet.persist()
        await self.fleet.finish_drains()

    async def _sweep_once(self) -> None:
        reports = self.intake.reports
        await self.recovery.sweep(reports.added, reports.written)

    def send(self, aid: int, messages: list[Message]) -> None:
        self.dispatch.send(aid, messages)

    async def mark_reachability(self, offline_after_s: float) -> None:
        """Agents whose link is back are enabled again; those down too long are unreachable."""
        links = {aid: (ln.connected, ln.down_since_mono) for aid, ln in self.pool.links.items()}
        changes = reachability_changes(
            links, self.agents, now_mono=time.monotonic(), offline_after_s=offline_after_s
        )
        for change in changes:
            if change.to_status == AGENT_UNREACHABLE:
                log.warning("agent.offline", aid=change.aid, down_s=round(change.down_s, 1))
            await store.set_agent_status(
                self.engine, change.aid, change.from_status, change.to_status, now_us()
            )

    def observe(self) -> None:
        """The leader's gauges, once per agents poll."""
        self.metrics.observe_leading(
            epoch=self.epoch,
            agents_connected=sum(link.connected for link in self.pool.links.values()),
            queue_depth=len(self.queue),
            rules_planned=len(self.planner),
        )
        self.metrics.observe_services(self.fleet.figures())

    # ------------------------------------------------------------ PoolListener

    def on_report(self, aid: int, message: Message) -> None:
        if isinstance(message, DaemonStatus):
            self.fleet.note_status(aid, message)
        elif isinstance(message, RunStarted):
            rule = self.rulebook.rules.get(message.ref.task_id)
            self.limits.started(message.ref, aid, rule, now_us())
        self._gate.admit(aid, message)
        self.reports_wake.set()

    def on_pong(self, aid: int, pong: Pong) -> None:
        self._hooks.heartbeat(aid, pong.resources)
        self.fleet.note_refusing(aid, pong.resources.refusing)
        name = self.ctx.agent_name(aid)
        self.metrics.agent_outbox.labels(agent=name).set(pong.resources.outbox)
        self.metrics.agent_processes.labels(agent=name).set(pong.resources.procs)
        if self.recovery.note_pong(aid, self.intake.reports.added, pong.sent_ms):
            self.reports_wake.set()  # its reconciliation may be ready

    def on_connected(self, aid: int, state: AgentState) -> None:
        if state.epoch > self.epoch:
            self._hooks.fenced_out(aid, f"agent obeys epoch {state.epoch}")
            return
        self.recovery.note_connected(aid, state.running)
        self._daemons.sync(restart_aid=aid)
        self.wake.set()
        self.reports_wake.set()

    def on_stale_epoch(self, aid: int, message: str) -> None:
        self._hooks.fenced_out(aid, message)

    def on_identity_refused(self, aid: int, reason: str) -> None:
        log.error("agent.identity_refused", aid=aid, reason=reason)
        if aid not in self._identity_noted:  # once per agent and term: it retries every 5 s
            self._identity_noted.add(aid)
            self._hooks.security_event("agent.identity_refused", self.ctx.agent_name(aid), reason)


def _link_settings(c: CenterConfig, tls: LinkTls | None) -> LinkSettings:
    return LinkSettings(
        secrets=c.secret,
        center_name=c.center_name,
        ping_interval_s=c.center_ping_interval_s,
        offline_after_s=c.center_offline_after_s,
        reconnect_max_s=c.center_reconnect_max_s,
        max_frame_bytes=c.center_max_frame_bytes,
        tls=tls,
    )
