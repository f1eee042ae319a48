"""Workflow runs while this center leads: each workflow's schedule, starting its flow runs, moving
each on as its nodes end, and re-runs from a node. Every step is recomputed from the store with
deterministic ids, so a new leader carries on where the old one stopped: no node starts twice
and none is forgotten."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
from collections.abc import Callable

import structlog

from center.calendars import find_calendar
from center.dag import (
    MAX_RERUNS,
    RUNNING,
    find_cycle,
    flow_runid,
    next_step,
    node_outcomes,
)
from center.decisions import misfire_plan
from center.errors import RuleError
from center.flow_nodes import FlowRef, RunRow, as_node_runs, node_runs, skipped_run
from center.leader_context import LeaderContext
from center.planner import Planner
from center.runs import PlannedRun
from center.store import workflows as wstore
from center.store.workflows import FlowRun, Workflow
from center.timing import FireTimes, build_timing
from protocol.clock import now_us
from protocol.vocabulary import CommandStatus, FlowStatus, Overlap, Trigger

log = structlog.get_logger("center.flows")
STEP_S = 0.5  # a flow run moves on within this of a node's end even without a nudge
DONE, FAILED = CommandStatus.DONE, CommandStatus.FAILED
OPEN = (FlowStatus.RUNNING, FlowStatus.QUEUED)


@dataclasses.dataclass(slots=True)
class _Moves:
    """What one step decides for every open flow run, written together."""

    now_us: int
    starts: list[PlannedRun] = dataclasses.field(default_factory=list)
    skips: list[tuple[PlannedRun, str]] = dataclasses.field(default_factory=list)

    def skip(self, run: PlannedRun, reason: str) -> None:
        self.skips.append((run, reason))
        log.info("flow.node_skipped", flow_runid=run.flow_runid, task_id=run.task_id, reason=reason)


class Flows:
    """The leader's workflow engine: `open` once, then `run` until the term ends."""

    def __init__(self, ctx: LeaderContext, online: Callable[[int], bool]) -> None:
        self._ctx = ctx
        self._online = online
        self._planner = Planner()
        self._defs: dict[int, Workflow] = {}
        self._schedules: dict[int, FireTimes] = {}
        self._stamp: tuple[int, int] | None = None
        # The stamp as the rules poll's probe last read it (None: read it here each step).
        self._probed: tuple[int, int] | None = None
        self._calendars: object = None  # the rulebook's group calendars when last planned
        self._poked = asyncio.Event()
        self._lock = asyncio.Lock()
        # No flow run open at the last look, and none started or poked since: every flow run
        # is made and moved by this object, so a step with no fire need not read them again.
        self._none_open = False

    def poke(self) -> None:
        """A node of some flow run ended: move the flow runs on now, not at the next step."""
        self._none_open = False
        self._poked.set()

    def note_stamp(self, stamp: tuple[int, int]) -> None:
        """The workflows' stamp, read by the rules poll's probe: a step reloads them (now, if
        it changed) without reading the stamp again."""
        self._probed = stamp
        if stamp != self._stamp:
            self._poked.set()

    async def open(self) -> None:
        """Load the workflows and catch up on the fires no leader started (misfire policy)."""
        async with self._lock:
            await self._reload(catch_up=True)

    async def run(self) -> None:
        """One step at each workflow's fire, each time a node ends, and at least every STEP_S.
        A flow run starts at its instant, not ahead: whether the one before it is still going
        (its overlap policy) is only known then."""
        nxt = self._planner.next_fire_us()
        wait_s = STEP_S if nxt is None else min(STEP_S, max(nxt - now_us(), 0) / 1e6)
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(wait_s):
                await self._poked.wait()
        self._poked.clear()
        await self.step()

    async def step(self) -> None:
        async with self._lock:
            await self._reload()
            now = now_us()
            fires = self._planner.due(now)
            if fires or not self._none_open:
                await self._start([(f.task_id, f.sched_us, Trigger.SCHEDULE) for f in fires], now)

    # ------------------------------------------------------------ definitions and schedules

    async def _reload(self, *, catch_up: bool = False) -> None:
        probed = None if catch_up else self._probed
        stamp = probed or await wstore.workflows_stamp(self._ctx.engine)
        calendars = self._ctx.rulebook.calendars
        if stamp == self._stamp and calendars is self._calendars:
            return
        if calendars is not self._calendars:
            self._defs = {}  # a group calendar changed: every workflow is planned again
        self._stamp, self._calendars = stamp, calendars
        defs = {w.id: w for w in await wstore.load_workflows(self._ctx.engine)}
        last = await wstore.last_scheduled(self._ctx.engine)
        now = now_us()
        for wid in [w for w in self._defs if w not in defs]:
            self._unplan(wid)
        changed = [w for w in defs.values() if self._defs.get(w.id) != w]
        self._defs = defs
        missed: list[tuple[int, int, str]] = []
        for wf in changed:
            schedule = await self._checked(wf)
            if schedule is None:
                self._unplan(wf.id)
                continue
            self._schedules[wf.id] = schedule
            resume_us = max(now, last.get(wf.id, 0))
            self._planner.set_rule(wf.id, schedule, resume_us)
            if catch_up and wf.id in last:
                missed += self._gap(wf, schedule, max(last[wf.id], wf.update_time), now)
        if missed:
            await self._start(missed, now)

    def _unplan(self, wid: int) -> None:
        self._planner.remove(wid)
        self._schedules.pop(wid, None)

    async def _checked(self, wf: Workflow) -> FireTimes | None:
        """The workflow's schedule (None: started by hand only, paused, or broken); a broken
        one gets its error stored, as a rule's does."""
        error, schedule = "", None
        try:
            # The admin checked the nodes against the rules; the rules this center has loaded
            # may lag behind, so a node gone by the time it starts is skipped, naming it.
            cycle = find_cycle(wf.graph.nodes, wf.graph.edges)
            if cycle:
                raise RuleError("edges", f"the edges make a cycle: {cycle}")
            if wf.rule.strip():
                schedule = self._timing(wf)
        except RuleError as exc:
            error = f"{exc.field}: {exc.reason}"
        if error != wf.error:
            log.warning("workflow.error_changed", workflow_id=wf.id, error=error)
            await wstore.set_workflow_error(self._ctx.engine, wf.id, error)
        return schedule if wf.enabled and not error else None

    def _timing(self, wf: Workflow) -> FireTimes:
        """The workflow's fires: its cron expression (`H` seeded by its id), calendar."""
        groups = self._ctx.rulebook.calendars
        calendar = find_calendar(wf.calendar, wf.gid, groups) if wf.calendar else None
        return build_timing(
            wf.rule,
            wf.timezone or "UTC",
            seed=wf.id,
            calendar=calendar,
            mode=wf.calendar_mode,
            fallback=wf.calendar_fallback,
        )

    def _gap(
        self, wf: Workflow, schedule: FireTimes, gap_from_us: int, now: int
    ) -> list[tuple[int, int, str]]:
        """Fires that fell while no center led, as the workflow's misfire policy says: started
        late (trigger misfire), or recorded as missed (a skipped flow run)."""
        if gap_from_us >= now:
            return []
        plan = misfire_plan(
            schedule, wf.misfire, wf.misfire_window_s, gap_from_us=gap_from_us, now_us=now
        )
        return [(wf.id, s, Trigger.MISFIRE) for s in plan.run] + [
            (wf.id, s, "missed") for s in plan.missed
        ]

    # ------------------------------------------------------------ starting flow runs

    async def _start(
        self,
        fires: list[tuple[int, int, str]],
        now: int,
        user_id: int = 0,
        extras: tuple[str, str] = ("", ""),
    ) -> None:
        """Record the flow runs these fires make (running, queued, or skipped as the overlap
        policy says), then move every open flow run on."""
        open_runs = await wstore.open_flow_runs(self._ctx.engine)
        new: list[FlowRun] = []
        for wid, sched_us, trigger in fires:
            wf = self._defs.get(wid)
            if wf is not None:
                run = self._decide(wf, sched_us, trigger, open_runs + new, user_id)
                new.append(dataclasses.replace(run, params=extras[0], env=extras[1]))
        if not new:
            self._none_open = not open_runs
            await self._advance(open_runs, now)
            return
        self._none_open = False
        await wstore.insert_flow_runs(self._ctx.engine, self._ctx.lease, new, now)
        for run in new:
            log.info(
                "flow.started" if run.status == FlowStatus.RUNNING else f"flow.{run.status}",
                flow_runid=run.id,
                workflow_id=run.workflow_id,
                trigger=run.trigger,
                reason=run.reason,
            )
        await self._advance(await wstore.open_flow_runs(self._ctx.engine), now)

    @staticmethod
    def _decide(
        wf: Workflow, sched_us: int, trigger: str, open_runs: list[FlowRun], user_id: int
    ) -> FlowRun:
        run = FlowRun(
            id=flow_runid(wf.id, sched_us),
            workflow_id=wf.id,
            sched_us=sched_us,
            trigger=trigger,
            user_id=user_id,
        )
        if trigger == "missed":
            reason = "missed: no center was leading at its time (misfire policy)"
            return dataclasses.replace(
                run, trigger=Trigger.MISFIRE, status=FlowStatus.SKIPPED, reason=reason
            )
        busy = [r for r in open_runs if r.workflow_id == wf.id and r.id != run.id]
        if not busy or wf.overlap == Overlap.PARALLEL:
            return run
        if wf.overlap == Overlap.QUEUE:
            return dataclasses.replace(run, status=FlowStatus.QUEUED)
        reason = f"flow run {busy[0].id} was still going (overlap skip)"
        return dataclasses.replace(run, status=FlowStatus.SKIPPED, reason=reason)

    # ------------------------------------------------------------ moving flow runs on

    async def _advance(self, open_runs: list[FlowRun], now: int) -> None:
        if not open_runs:
            return
        running = [r for r in open_runs if r.status == FlowStatus.RUNNING]
        rows = await wstore.node_rows(self._ctx.engine, [r.id for r in running])
        moves = _Moves(now)
        ended: set[int] = set()
        for run in running:
            wf = self._defs.get(run.workflow_id)
            if wf is None:
                await self._end(run, FlowStatus.FAILED, "its workflow was deleted", now)
                ended.add(run.workflow_id)
            elif await self._move_on(wf, run, rows.get(run.id, []), moves):
                ended.add(run.workflow_id)
        await wstore.insert_skipped(self._ctx.engine, self._ctx.lease, moves.skips, now)
        await self._ctx.add_runs(moves.starts, now)
        if moves.skips:
            self.poke()  # a skipped node may let others start, or be skipped in turn
        await self._promote(open_runs, ended, now)

    async def _move_on(self, wf: Workflow, run: FlowRun, rows: list[RunRow], moves: _Moves) -> bool:
        """One flow run's next step; True when it has ended."""
        rules, now = self._ctx.rulebook.rules, moves.now_us
        flow = FlowRef(wf.id, run.id, run.sched_us, run.created_us, run.params, run.env)
        outcomes = node_outcomes(as_node_runs(flow, rows, rules, now), run.generations)
        names = {t: rules[t].name for t in wf.graph.nodes if t in rules}
        step = next_step(wf.graph, outcomes, names)
        for task_id in step.start:
            generation = run.generations.get(task_id, 0)
            found = node_runs(
                flow,
                task_id,
                generation,
                rules.get(task_id),
                agents=self._ctx.agents(),
                online=self._online,
                now_us=now,
            )
            if isinstance(found, str):
                moves.skip(skipped_run(flow, task_id, generation), found)
            else:
                moves.starts.extend(found)
        for task_id, reason in step.skip.items():
            moves.skip(skipped_run(flow, task_id, run.generations.get(task_id, 0)), reason)
        if step.ended:
            why = "; ".join(f"node {t} ({names.get(t, '')!r}) {outcomes[t]}" for t in step.nodes)
            await self._end(run, step.status, why, now)
        return step.ended

    async def _end(self, run: FlowRun, status: str, reason: str, now: int) -> None:
        if await wstore.update_flow_run(
            self._ctx.engine, self._ctx.lease, run.id, now, status=status, reason=reason
        ):
            log.info(
                "flow.finished",
                flow_runid=run.id,
                workflow_id=run.workflow_id,
                status=status,
                reason=reason,
                took_ms=max(now - run.sched_us, 0) // 1000,
            )

    async def _promote(self, open_runs: list[FlowRun], ended: set[int], now: int) -> None:
        """A queued flow run starts once its workflow has none running."""
        busy = {
            r.workflow_id
            for r in open_runs
            if r.status == FlowStatus.RUNNING and r.workflow_id not in ended
        }
        for run in open_runs:
            if run.status == FlowStatus.QUEUED and run.workflow_id not in busy:
                busy.add(run.workflow_id)
                await wstore.update_flow_run(
                    self._ctx.engine, self._ctx.lease, run.id, now, status=FlowStatus.RUNNING
                )
                log.info("flow.dequeued", flow_runid=run.id, workflow_id=run.workflow_id)
                self.poke()

    # ------------------------------------------------------------ operators' commands

    async def run_now(
        self, workflow_id: int, trigger: str, user_id: int, extras: tuple[str, str] = ("", "")
    ) -> tuple[str, str]:
        """Start a flow run now (the admin's run, or the API's); `extras` (params, env JSON)
        go to the nodes whose rule allows parameters."""
        async with self._lock:
            self._stamp = None  # a workflow saved moments ago is loaded first
            await self._reload()
            wf = self._defs.get(workflow_id)
            if wf is None:
                return FAILED, f"workflow {workflow_id} does not exist"
            if wf.error:
                return FAILED, f"workflow {workflow_id} cannot run: {wf.error}"
            now = now_us()
            await self._start([(workflow_id, now, trigger)], now, user_id, extras)
            run = await wstore.find_flow_run(self._ctx.engine, flow_runid(workflow_id, now))
        if run is None:
            return FAILED, "the flow run was not recorded"
        note = f" ({run.reason})" if run.reason else ""
        return DONE, f"flow run {run.id}: {run.status}{note}"

    async def rerun(self, flow_run_id: str, task_id: int) -> tuple[str, str]:
        """Re-run a node and every node after it, in the same flow run."""
        async with self._lock:
            run = await wstore.find_flow_run(self._ctx.engine, flow_run_id)
            wf = self._defs.get(run.workflow_id) if run is not None else None
            if run is None or wf is None:
                return FAILED, f"no flow run {flow_run_id!r} of a live workflow"
            if task_id not in wf.graph.nodes:
                return FAILED, f"rule {task_id} is not a node of workflow {wf.id}"
            now = now_us()
            rows = (await wstore.node_rows(self._ctx.engine, [run.id])).get(run.id, [])
            flow = FlowRef(wf.id, run.id, run.sched_us)
            rules = self._ctx.rulebook.rules
            outcomes = node_outcomes(as_node_runs(flow, rows, rules, now), run.generations)
            if outcomes.get(task_id) == RUNNING:
                return FAILED, f"node {task_id} is still running"
            generations = dict(run.generations)
            for node in wf.graph.descendants(task_id):
                generations[node] = generations.get(node, 0) + 1
            if max(generations.values()) > MAX_RERUNS:
                return FAILED, f"flow run {run.id} was re-run {MAX_RERUNS} times already"
            await wstore.update_flow_run(
                self._ctx.engine,
                self._ctx.lease,
                run.id,
                now,
                status=FlowStatus.RUNNING,
                generations=generations,
                only_from=tuple(FlowStatus),
            )
        self.poke()
        log.info("flow.rerun", flow_runid=run.id, task_id=task_id)
        return DONE, f"re-running node {task_id} and what follows it in flow run {run.id}"
