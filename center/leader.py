"""What exists only while this center holds the lease: planning, dispatch, daemons, commands."""

from __future__ import annotations

import asyncio
from collections import defaultdict
from collections.abc import Awaitable, Callable

import structlog
from sqlalchemy.ext.asyncio import AsyncEngine

from center import store
from center.agent_pool import AgentPool, LinkSettings, PoolListener
from center.commands import CommandRunner
from center.config import CenterConfig
from center.daemons import Wanted, diff_daemons, wanted_daemons
from center.decisions import plan_dependents, plan_retry
from center.dispatcher import WAIT_RETRY_US, DispatchQueue, decide_dispatch, exec_for
from center.metrics import CenterMetrics
from center.planner import Fire, Planner
from center.recovery import Recovery
from center.reports import ReportBatch, now_us
from center.routing import AgentInfo, choose, failover_target, planning_notice
from center.rulebook import RuleBook, RuleChanges
from center.rules import Rule, run_spec
from center.runs import PlannedRun, plan_run
from protocol import statuses
from protocol.codec import encode
from protocol.messages import DaemonsWanted, Kill, Message, RunSpec
from protocol.tls import client_context

log = structlog.get_logger("center.leader")
MAX_UNROUTED = 100_000
PLAN_CHUNK = 25_000  # fires planned per tick at most: a burst is spread over ticks
ENCODE_SLICE = 2_000  # frames encoded between two yields to the event loop
BIG_BATCH = 1000  # dispatch batches this large are logged, with how far ahead they went
Background = Callable[[Awaitable[None]], None]


class Leader:
    """Plans fires ahead, sends them at their time, keeps agents' daemons as the rules say."""

    def __init__(
        self,
        *,
        config: CenterConfig,
        engine: AsyncEngine,
        lease: store.Lease,
        rulebook: RuleBook,
        agents: dict[int, AgentInfo],
        listener: PoolListener,
        background: Background,
        metrics: CenterMetrics,
    ) -> None:
        self.metrics = metrics
        self.config, self.engine, self.lease = config, engine, lease
        self.rulebook, self.agents = rulebook, agents
        self.planner = Planner()
        self.queue = DispatchQueue(config.send_ahead_us)
        # Scheduled runs sent ahead, waiting at their agent: runid -> (aid, task_id, sched_us).
        self._held: dict[str, PlannedRun] = {}
        self.wake = asyncio.Event()
        self.cursor_us = max(lease.planned_through_us, now_us())
        self._unsaved: list[PlannedRun] = []
        self._told: Wanted = {}
        self._turns: dict[int, int] = {}  # round robin position per rule
        self._notices: dict[int, str] = {}
        self._unrouted: list[Fire] = []
        # Exec frames encoded while planning, ahead of time: runid -> (frame, rule version).
        self._frames: dict[str, tuple[bytes, int]] = {}
        self._specs: dict[int, tuple[int, RunSpec]] = {}  # task_id -> (version, spec)
        self._background = background
        self._commands = CommandRunner(engine, lambda: self.lease.epoch)
        self.recovery = Recovery(self)
        c = config
        self.pool = AgentPool(
            LinkSettings(
                secrets=c.secret,
                center_name=c.center_name,
                ping_interval_s=c.center_ping_interval_s,
                offline_after_s=c.center_offline_after_s,
                reconnect_max_s=c.center_reconnect_max_s,
                max_frame_bytes=c.center_max_frame_bytes,
                tls=client_context(c.tls) if c.tls else None,
            ),
            listener,
        )

    @property
    def epoch(self) -> int:
        return self.lease.epoch

    async def open(self) -> None:
        """Resume after the old leader's cursor, pick up its unsent runs, dial the agents."""
        for task_id, schedule in self.rulebook.plannable():
            self.planner.set_rule(task_id, schedule, self.cursor_us)
        since = now_us() - self.grace_us
        expired = await store.expire_planned(self.engine, since, now_us())
        if expired:
            log.warning("run.missed", count=expired, reason="planned, never sent in time")
        self.queue.add(await store.runs_waiting(self.engine, since))
        self.pool.sync(self.agents)
        gap_from = self.lease.planned_through_us
        if gap_from and gap_from < self.cursor_us:
            await self.recovery.catch_up(gap_from)
        log.info(
            "center.leading",
            epoch=self.epoch,
            resumed_after_us=self.cursor_us,
            rules=len(self.planner),
            waiting_runs=len(self.queue),
        )

    async def close(self) -> None:
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
        self._revise_held({*changes.unplan, *(t for t, _ in changes.plan)}, now)
        if changes.daemons:
            self.sync_daemons()

    def _still_fires(self, run: PlannedRun) -> bool:
        schedule = self.rulebook.schedules.get(run.task_id)
        return schedule is not None and schedule.next_fire_us(run.sched_us - 1) == run.sched_us

    def _revise_held(self, task_ids: set[int], now: int) -> None:
        """Runs sent ahead of a changed rule: cancelled if it no longer wants them, else sent
        again with the new spec (the agent swaps a held run for a newer one of the same id)."""
        for runid, run in list(self._held.items()):
            if run.sched_us <= now:
                del self._held[runid]
                continue
            if run.task_id not in task_ids:
                continue
            rule = self.rulebook.rules.get(run.task_id)
            if rule is None or not rule.enabled or rule.error or not self._still_fires(run):
                del self._held[runid]
                kill = Kill(
                    epoch=self.epoch,
                    task_id=run.task_id,
                    runid=runid,
                    reason="rule changed before its start",
                )
                self.send(run.aid, [kill])
            else:
                self.send(run.aid, [exec_for(run, self._spec(rule), self.epoch)])

    def set_agents(self, agents: dict[int, AgentInfo]) -> None:
        self.agents = agents
        self.pool.sync(agents)
        self.sync_daemons()

    def sync_daemons(self, *, restart_aid: int | None = None) -> None:
        """Tell each connected agent what changed in its daemons (all of them after a connect)."""
        wanted = wanted_daemons(self.rulebook.rules, self.agents)
        if restart_aid is not None:
            self._told.pop(restart_aid, None)
        for aid, link in self.pool.links.items():
            if not link.connected:
                self._told.pop(aid, None)
                continue
            want = wanted.get(aid, {})
            if aid not in self._told:
                msg = DaemonsWanted(
                    epoch=self.epoch, specs=list(want.values()), complete=True, aid=aid
                )
            elif change := diff_daemons(self._told[aid], want):
                msg = DaemonsWanted(
                    epoch=self.epoch, specs=change.specs, stopped=change.stopped, aid=aid
                )
            else:
                continue
            if link.send([msg]):
                self._told[aid] = want

    # ------------------------------------------------------------ planning and dispatch

    async def plan_once(self) -> None:
        """Write the fires due within the lookahead, then queue them for their time."""
        now = now_us()
        until = now + self.config.lookahead_us
        # Fires that found no agent are tried again until their time: an agent approved
        # (or reconnected) moments before a fire still gets it.
        again, self._unrouted = [f for f in self._unrouted if f.sched_us >= now], []
        fires = self.planner.due(until, limit=PLAN_CHUNK)
        if len(fires) == PLAN_CHUNK:  # a burst: plan it over several ticks, cursor on the way
            until = fires[-1].sched_us - 1
        runs = self._unsaved + self._route(again + fires)
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
        runs = [r for r in runs if r.runid not in self._held]
        self.queue.add(runs)
        self.wake.set()
        await self._encode_ahead(runs)

    async def _encode_ahead(self, runs: list[PlannedRun]) -> None:
        """Encode the exec frames now, while there is time: at the fire only a write is left.
        In slices, yielding between them, so that a burst never stalls the dispatch loop."""
        rules = self.rulebook.rules
        for i, run in enumerate(runs):
            rule = rules.get(run.task_id)
            if rule is not None and run.trigger == "schedule":
                exec_msg = exec_for(run, self._spec(rule), self.epoch)
                self._frames[run.runid] = (encode(exec_msg), rule.update_time)
            if i % ENCODE_SLICE == ENCODE_SLICE - 1:
                await asyncio.sleep(0)

    def _spec(self, rule: Rule) -> RunSpec:
        cached = self._specs.get(rule.id)
        if cached is None or cached[0] != rule.update_time:
            cached = self._specs[rule.id] = (rule.update_time, run_spec(rule))
        return cached[1]

    def _frame_of(self, run: PlannedRun, rule: Rule) -> bytes:
        """The frame encoded ahead if its rule has not changed since; else encoded now."""
        ahead = self._frames.pop(run.runid, None)
        if ahead is not None and ahead[1] == rule.update_time:
            return ahead[0]
        return encode(exec_for(run, self._spec(rule), self.epoch))

    async def add_runs(self, runs: list[PlannedRun]) -> None:
        """Runs decided outside the schedule (manual, retries): written fenced, then queued."""
        if runs:
            await store.insert_planned(self.engine, self.lease, runs, 0, now_us())
            self.queue.add(runs)
            self.wake.set()

    def _route(self, fires: list[Fire]) -> list[PlannedRun]:
        runs: list[PlannedRun] = []
        for fire in fires:
            rule = self.rulebook.rules.get(fire.task_id)
            if rule is None:
                continue
            turn = self._turns.get(rule.id, 0)
            self._turns[rule.id] = turn + 1
            picks = choose(rule, self.agents, self.pool.connected, turn)
            self._note(rule, len(picks))
            if not picks and len(self._unrouted) < MAX_UNROUTED:
                self._unrouted.append(fire)
            runs.extend(
                plan_run(
                    fire.task_id,
                    fire.sched_us,
                    aid,
                    instance=shard,
                    shard_total=rule.shard_total,
                    rule_version=rule.update_time,
                )
                for shard, aid in picks
            )
        return runs

    def _note(self, rule: Rule, chosen: int) -> None:
        """Record (once per change) why a valid rule runs on fewer agents than it asks for."""
        notice = planning_notice(rule, self.agents, chosen)
        if self._notices.get(rule.id, "") != notice:
            self._notices[rule.id] = notice
            if notice:
                log.warning("rule.notice", task_id=rule.id, notice=notice)
            self._background(store.set_rule_notice(self.engine, rule.id, notice))

    def dispatch_due(self) -> None:
        now = now_us()
        due = self.queue.pop_due(now)
        if not due:
            return
        out = decide_dispatch(
            due,
            now_us=now,
            rules=self.rulebook.rules,
            connected=self.pool.connected,
            grace_us=self.grace_us,
            frame_of=self._frame_of,
            reroute=self._reroute,
            still_fires=self._still_fires,
        )
        for aid, frames in out.frames.items():
            link = self.pool.link(aid)
            if link is not None and link.send_bytes(b"".join(frames)):
                self._background(link.drain())
        for runid in out.skipped:
            self._frames.pop(runid, None)
        sent = frozenset(out.sent)
        self._observe_sent(due, sent)
        self._held.update(
            (r.runid, r)
            for r in due
            if r.runid in sent and r.trigger == "schedule" and r.sched_us > now
        )
        self.queue.add(out.waiting, at_us=now + WAIT_RETRY_US)
        self._background(self._record_dispatch(out.sent, out.skipped, out.missed, now))
        for run in out.rerouted:
            self._background(self._rerouted(run, now))

    def _observe_sent(self, due: list[PlannedRun], sent: frozenset[str]) -> None:
        written_us = now_us()  # after the frames were handed to the transports
        if len(sent) >= BIG_BATCH:
            first = min(r.sched_us for r in due)
            log.info("dispatch.batch", runs=len(sent), ahead_ms=(first - written_us) // 1000)
        lateness = self.metrics.dispatch_lateness_s
        for run in due:
            if run.runid in sent:
                lateness.observe(max(written_us - run.send_at_us, 0) / 1e6)
        self.metrics.dispatched.inc(len(sent))

    def _reroute(self, run: PlannedRun) -> int | None:
        rule = self.rulebook.rules.get(run.task_id)
        if rule is None:
            return None
        return failover_target(rule, run.instance, run.aid, self.agents, self.pool.connected)

    async def _rerouted(self, run: PlannedRun, now: int) -> None:
        """Failover of a run whose agent is down: move its row, then send it at once."""
        if await store.reroute_run(self.engine, run.runid, run.aid, now):
            log.info("run.rerouted", runid=run.runid, aid=run.aid)
            self.queue.add([run], at_us=now)
            self.wake.set()

    async def _record_dispatch(
        self, sent: list[str], skipped: dict[str, str], missed: dict[str, str], now: int
    ) -> None:
        planned = frozenset({statuses.PLANNED})
        await store.set_run_status(self.engine, sent, statuses.DISPATCHED, now, only_from=planned)
        for runid, reason in missed.items():
            log.warning("run.missed", runid=runid, reason=reason)
        # One write per reason, not per run: a burst for a dead agent shares one reason.
        for status, reasons in ((statuses.SKIPPED, skipped), (statuses.MISSED, missed)):
            by_reason: dict[str, list[str]] = defaultdict(list)
            for runid, reason in reasons.items():
                by_reason[reason].append(runid)
            for reason, runids in by_reason.items():
                await store.set_run_status(self.engine, runids, status, now, reason=reason)

    # ------------------------------------------------------------ results and commands

    async def after_reports(self, batch: ReportBatch) -> None:
        """Plan the retries that the finished runs call for."""
        now = now_us()
        retries = [
            retry
            for aid, msg in batch.finished_msgs
            if (
                retry := plan_retry(
                    msg.ref, msg.status, aid, self.rulebook.rules.get(msg.ref.task_id), now
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
        await self.add_runs(retries + deps)

    async def commands_once(self) -> None:
        await self._commands.run_pending(self)

    def send(self, aid: int, messages: list[Message]) -> None:
        link = self.pool.link(aid)
        if link is not None:
            link.send(messages)
