"""Carrying out what operators ask through center_command: run now, kill a run, kill a rule."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

import structlog

from center import store
from center.errors import RuleError
from center.leader_context import LeaderContext
from center.loops import Wake
from center.routing import AgentInfo, listed_targets
from center.rules import Rule, check_env_override, check_params
from center.runs import PlannedRun, plan_run
from protocol import statuses
from protocol.clock import now_us
from protocol.messages import Kill
from protocol.vocabulary import CommandKind, CommandStatus, RuleStatus, Trigger

log = structlog.get_logger("center.commands")
DONE, FAILED = CommandStatus.DONE, CommandStatus.FAILED
# The rules poll's probe says when a command waits (woken then); the loop reads the commands
# itself only when that probe is older than this (a slow rules poll, a database outage).
COMMANDS_IDLE_S = 1.0


@dataclass(frozen=True, slots=True)
class Outcome:
    status: str
    result: str
    runs: tuple[PlannedRun, ...] = ()


@dataclass(frozen=True, slots=True)
class ManualArgs:
    """What a "run now" may carry (center_command.args): params and env overrides for a rule
    with allow_params, and a later instant to run at (run-at)."""

    params: str = ""
    env: str = ""  # JSON object text, "" when none
    run_at_us: int = 0

    @classmethod
    def of(cls, args: Mapping[str, Any]) -> ManualArgs:
        """From the command's args, checked again as the admin checked them (ValueError)."""
        params, env, run_at = args.get("params", ""), args.get("env") or {}, args.get("run_at_us")
        if not isinstance(params, str) or not isinstance(run_at, int | None):
            raise ValueError("params must be text and run_at_us a whole number")
        try:
            check_params(params)
            env_text = json.dumps(check_env_override(env), sort_keys=True) if env else ""
        except RuleError as exc:
            raise ValueError(f"{exc.field}: {exc.reason}") from None
        return cls(params, env_text, run_at or 0)


def manual_runs(
    rule: Rule | None,
    agents: Mapping[int, AgentInfo],
    task_id: int,
    now_us: int,
    extra: ManualArgs = ManualArgs(),
) -> Outcome:
    """Pure: the runs a "run now" of this rule means, or why there are none."""
    if (extra.params or extra.env) and rule is not None and not rule.allow_params:
        return Outcome(FAILED, f"params: rule {task_id} does not allow parameters")
    if rule is None or rule.status == RuleStatus.DELETED:
        return Outcome(FAILED, f"rule {task_id} does not exist")
    if rule.error:
        return Outcome(FAILED, f"rule {task_id} cannot run: {rule.error}")
    if rule.is_daemon:
        return Outcome(FAILED, f"rule {task_id} is a daemon: its instances run all the time")
    targets = listed_targets(rule, agents)
    if not targets:
        return Outcome(FAILED, f"rule {task_id} has no approved agent")
    at_us = max(extra.run_at_us, now_us)
    runs = tuple(
        plan_run(task_id, at_us, aid, trigger=Trigger.MANUAL, params=extra.params, env=extra.env)
        for aid in targets
    )
    verb = "started" if at_us == now_us else f"planned at {at_us} µs"
    return Outcome(DONE, f"{verb} {len(runs)} run(s): {', '.join(r.runid for r in runs)}", runs)


class FlowCommands(Protocol):
    """What the workflow engine does for operators."""

    async def run_now(
        self, workflow_id: int, trigger: str, user_id: int, extras: tuple[str, str] = ("", "")
    ) -> tuple[str, str]: ...

    async def rerun(self, flow_run_id: str, task_id: int) -> tuple[str, str]: ...


class CommandRunner:
    """The leader's consumer of center_command."""

    def __init__(
        self,
        ctx: LeaderContext,
        rebalance: Callable[[int], str] = lambda task_id: "",
        flows: FlowCommands | None = None,
    ) -> None:
        self._ctx = ctx
        self._engine = ctx.engine
        self._rebalance = rebalance  # the fleet's: start moving a service toward an even spread
        self._flows = flows
        self.wake = Wake()
        self._probed_mono = 0.0  # when the rules poll's probe last ran
        self._due = True

    def note_probe(self, pending_command: int) -> None:
        """The rules poll's probe ran; it saw the oldest pending command (0: none)."""
        self._probed_mono = time.monotonic()
        if pending_command:
            self.wake.set()

    async def pause(self) -> None:
        """Until the probe sees a command, or COMMANDS_IDLE_S; the step then reads the
        commands only if woken or if no probe ran meanwhile (a slow rules poll, an outage)."""
        woken = await self.wake.wait(COMMANDS_IDLE_S)
        self._due = woken or time.monotonic() - self._probed_mono >= COMMANDS_IDLE_S

    async def step(self) -> None:
        if self._due:
            await self.run_pending()

    async def kill_run(self, command: store.Command, now_us: int) -> Outcome:
        run = await store.find_run(self._engine, command.runid)
        if run is None:
            return Outcome(FAILED, f"no run {command.runid!r}")
        if run.status in statuses.FINAL:
            return Outcome(DONE, f"run had already ended: {run.status}")
        if self._unsent(run):
            await self._kill_unsent([run.runid], command.user_id, now_us)
            return Outcome(DONE, "killed before it was sent")
        return self._send_kills([run.aid], run.task_id, run.runid, command.user_id)

    async def kill_rule(self, rule: Rule | None, command: store.Command, now_us: int) -> Outcome:
        active = await store.active_runs(self._engine, command.task_id)
        unsent = [r.runid for r in active if self._unsent(r)]
        await self._kill_unsent(unsent, command.user_id, now_us)
        aids = {r.aid for r in active if not self._unsent(r)}
        aids |= set(rule.agents if rule else ())  # queued runs are known to the agent only
        return self._send_kills(sorted(aids), command.task_id, "", command.user_id)

    def _unsent(self, run: store.RunState) -> bool:
        """Not sent yet: `planned`, and not among the runs sent whose `dispatched` status is
        not written (a kill must reach the agent holding or running those)."""
        return run.status == statuses.PLANNED and run.runid not in self._ctx.marks

    async def _kill_unsent(self, runids: list[str], user_id: int, now_us: int) -> None:
        reason = f"killed before it was sent, by user {user_id}"
        self._ctx.queue.cancel(runids)  # a run planned for later (run-at) is never sent
        await store.set_run_status(
            self._engine,
            runids,
            statuses.KILLED,
            now_us,
            only_from=frozenset({statuses.PLANNED}),
            reason=reason,
        )

    def _send_kills(self, aids: list[int], task_id: int, runid: str, user_id: int) -> Outcome:
        reason = f"killed by user {user_id}"
        sent: list[int] = []
        offline: list[int] = []
        for aid in aids:
            link = self._ctx.pool.link(aid)
            kill = Kill(epoch=self._ctx.epoch, task_id=task_id, runid=runid, reason=reason)
            (sent if link is not None and link.send([kill]) else offline).append(aid)
        if not sent and offline:
            return Outcome(FAILED, f"agents not connected: {offline}")
        note = f"; not connected: {offline}" if offline else ""
        return Outcome(DONE, f"kill sent to agents {sent}{note}")

    async def run_pending(self) -> None:
        """Carry out every pending command, oldest first, and record each outcome."""
        for command in await store.pending_commands(self._engine):
            if _too_new(command, self._ctx):
                continue  # its rule may not be loaded yet: stays pending for the next poll
            try:
                outcome = await self._carry_out(command)
            except ValueError as exc:
                outcome = Outcome(FAILED, str(exc))
            log.info(
                "command.done",
                command_id=command.id,
                kind=command.kind,
                status=outcome.status,
                result=outcome.result,
            )
            await store.finish_command(
                self._engine, command.id, outcome.status, outcome.result, now_us()
            )

    async def _carry_out(self, command: store.Command) -> Outcome:
        rule = self._ctx.rulebook.rules.get(command.task_id)
        now = now_us()
        if command.kind == CommandKind.RUN:
            extra = ManualArgs.of(command.args)
            outcome = manual_runs(rule, self._ctx.agents(), command.task_id, now, extra)
            await self._ctx.add_runs(list(outcome.runs), now)
            return outcome
        if command.kind == CommandKind.KILL:
            return await self.kill_run(command, now)
        if command.kind == CommandKind.KILL_RULE:
            return await self.kill_rule(rule, command, now)
        if command.kind == CommandKind.REBALANCE:
            return Outcome(DONE, self._rebalance(command.task_id))
        if command.kind in (CommandKind.FLOW_RUN, CommandKind.FLOW_RERUN) and self._flows:
            return Outcome(*await self._flow(command, self._flows))
        return Outcome(FAILED, f"unknown command kind {command.kind!r}")

    @staticmethod
    async def _flow(command: store.Command, flows: FlowCommands) -> tuple[str, str]:
        if command.kind == CommandKind.FLOW_RERUN:
            return await flows.rerun(command.runid, command.task_id)
        given = command.args.get("trigger")
        trigger = given if given in tuple(Trigger) else Trigger.MANUAL  # "api" is a run now too
        extra = ManualArgs.of(command.args)
        extras = (extra.params, extra.env)
        return await flows.run_now(command.task_id, trigger, command.user_id, extras)


RULE_WAIT_US = 10_000_000


def _too_new(command: store.Command, ctx: LeaderContext) -> bool:
    """A command about a rule, or for agents, the center has not loaded yet, issued moments ago:
    an agent approved just before a "run now" reaches the center with its next agents poll."""
    kinds = (CommandKind.RUN, CommandKind.KILL_RULE)
    if command.kind not in kinds or now_us() - command.created_us >= RULE_WAIT_US:
        return False
    rule = ctx.rulebook.rules.get(command.task_id)
    if rule is None:
        return True
    return command.kind == CommandKind.RUN and not listed_targets(rule, ctx.agents())
