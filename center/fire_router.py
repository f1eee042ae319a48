"""Turns due fires into runs on the agents their rules choose, keeping the fires that found no
agent for another try and noting why a rule runs on fewer agents than it asks for."""

from __future__ import annotations

import structlog

from center import store
from center.leader_context import LeaderContext
from center.loops import Background
from center.planner import Fire
from center.routing import choose, planning_notice
from center.rules import Rule
from center.runs import PlannedRun, plan_run
from protocol.vocabulary import Routing

log = structlog.get_logger("center.leader")
MAX_UNROUTED = 100_000


class FireRouter:
    """The plan loop's routing: fires in, runs out; what found no agent waits in `unrouted`."""

    def __init__(self, ctx: LeaderContext, background: Background) -> None:
        self._ctx, self._background = ctx, background
        self._turns: dict[int, int] = {}  # round robin position per rule
        self._notices: dict[int, str] = {}
        self._unwritten: dict[int, str] = {}  # notes to store, the newest per rule
        self._writing = False
        self.unrouted: list[Fire] = []

    def notices_on_file(self, notices: dict[int, str]) -> None:
        """What the rules' notes say at the start of the term: a note that no longer holds
        (written by an earlier leader) is cleared at the rule's next fire."""
        self._notices = notices

    def take_unrouted(self, now_us: int) -> list[Fire]:
        """The fires that found no agent and are not yet past their time: tried again until
        then, so an agent approved (or reconnected) moments before a fire still gets it."""
        again, self.unrouted = [f for f in self.unrouted if f.sched_us >= now_us], []
        return again

    def route(self, fires: list[Fire]) -> list[PlannedRun]:
        runs: list[PlannedRun] = []
        rules, agents, pool = self._ctx.rulebook.rules, self._ctx.agents(), self._ctx.pool
        for fire in fires:
            rule = rules.get(fire.task_id)
            if rule is None:
                continue
            turn = 0
            if rule.routing == Routing.ROUND_ROBIN:  # the only routing that reads it: a
                turn = self._turns.get(rule.id, 0)  # turn per rule of a million would not
                self._turns[rule.id] = turn + 1  # be kept for nothing
            picks = choose(rule, agents, pool.connected, turn)
            self._note(rule, len(picks))
            if not picks and len(self.unrouted) < MAX_UNROUTED:
                self.unrouted.append(fire)
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
        notice = planning_notice(rule, self._ctx.agents(), chosen)
        if self._notices.get(rule.id, "") != notice:
            self._notices[rule.id] = notice
            if notice:
                log.warning("rule.notice", task_id=rule.id, notice=notice)
            self._unwritten[rule.id] = notice
            if not self._writing:
                self._writing = True
                self._background(self._write_notices())

    async def _write_notices(self) -> None:
        """Store the notes one at a time, the newest per rule: written side by side, a rule's
        older note could commit after its newer one and stay (an agent approved a tick after
        a fire found none left "no approved agent" on a rule that ran)."""
        try:
            while self._unwritten:
                task_id, notice = next(iter(self._unwritten.items()))
                await store.set_rule_notice(self._ctx.engine, task_id, notice)
                if self._unwritten.get(task_id) == notice:
                    del self._unwritten[task_id]
        finally:
            self._writing = False
