"""Daemon rules: keep `process_num` instances of each wanted rule running, as the center asks."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Callable

import structlog

from agent.daemon_instance import Instance
from agent.decisions import DaemonPolicy, daemon_exec, launch_key, plan_wanted
from agent.handle import RunHandle
from agent.journal import Journal
from agent.runs import RunTable
from agent.server import Session, Sessions
from protocol.clock import now_us
from protocol.messages import DaemonStatus, DaemonsWanted, RunSpec

STATUS_EVERY_S = 0.25
STOPPED_REASON = "rule paused or deleted"
log = structlog.get_logger("agent.daemons")


def instance_indexes(spec: RunSpec) -> frozenset[int]:
    """The instances this agent runs: those the center placed here, else 0 … process_num-1."""
    if spec.instances:
        return frozenset(spec.instances)
    return frozenset(range(max(0, spec.process_num)))


def _why_not_wanted(spec: RunSpec) -> str:
    if spec.instances:
        return "instance placed on another agent"
    return f"process_num lowered to {spec.process_num}"


class DaemonRule:
    """One daemon rule on this agent: its wanted spec, its instances, its last exit."""

    def __init__(self, supervisor: DaemonSupervisor, task_id: int) -> None:
        self._supervisor = supervisor
        self.task_id = task_id
        self.spec: RunSpec | None = None  # None: no longer wanted, instances stopping
        self.instances: dict[int, Instance] = {}
        self.retiring: set[Instance] = set()
        self.last_exit = ""
        self._roll: asyncio.Task[None] | None = None

    # ------------------------------------------------------------ what instances need

    @property
    def table(self) -> RunTable:
        return self._supervisor.table

    @property
    def policy(self) -> DaemonPolicy:
        return self._supervisor.policy

    def new_handle(
        self, spec: RunSpec, index: int, on_started: Callable[[RunHandle], None]
    ) -> RunHandle:
        """A handle for the next start of instance `index`."""
        return self._supervisor.new_handle(spec, index, on_started)

    def instance_changed(self, instance: Instance, summary: str | None) -> None:
        """Record an exit text and tell the status coalescer."""
        if summary is not None:
            self.last_exit = summary
        self._supervisor.changed(self.task_id)

    def instance_ended(self, instance: Instance) -> None:
        """Forget a finished instance; forget the rule once nothing of it is left."""
        self.retiring.discard(instance)
        if self.instances.get(instance.index) is instance:
            del self.instances[instance.index]
        self._supervisor.changed(self.task_id)
        self._supervisor.forget_if_gone(self)

    # ------------------------------------------------------------ desired state

    @property
    def gone(self) -> bool:
        """Not wanted, and no instance left."""
        return self.spec is None and not self.instances and not self.retiring

    def want(self, spec: RunSpec) -> None:
        """Run the instances of `spec` (those it names, else `process_num`): start, stop or
        replace as needed."""
        self.spec = spec
        wanted = instance_indexes(spec)
        for index in sorted(self.instances):
            if index not in wanted:
                self._retire(index, _why_not_wanted(spec))
        key = launch_key(spec)
        stale = False
        for instance in self.instances.values():
            if launch_key(instance.spec) == key:
                instance.spec = spec  # timeouts, grace, output cap: no restart needed
            else:
                stale = True
        for index in sorted(wanted):
            if index not in self.instances:
                self._start(index, spec)
        if stale:
            self._restart_roll()
        self._supervisor.changed(self.task_id)

    def retire_all(self, reason: str) -> None:
        """Stop every instance (TERM, grace, KILL), their runs ending `killed` with `reason`."""
        self.spec = None
        if self._roll is not None:
            self._roll.cancel()
            self._roll = None
        for index in list(self.instances):
            self._retire(index, reason)
        self._supervisor.changed(self.task_id)
        self._supervisor.forget_if_gone(self)

    def _start(self, index: int, spec: RunSpec) -> None:
        instance = self.instances[index] = Instance(self, index, spec)
        instance.start()

    def _retire(self, index: int, reason: str) -> None:
        instance = self.instances.pop(index)
        self.retiring.add(instance)
        instance.stop(reason)

    def _restart_roll(self) -> None:
        """(Re)start replacing the instances that run an older spec."""
        if self._roll is not None:
            self._roll.cancel()
        self._roll = self.table.spawn(self._rolling(), f"daemon {self.task_id} roll")

    async def _rolling(self) -> None:
        """Replace stale instances one at a time, lowest index first."""
        while self.spec is not None:
            key = launch_key(self.spec)
            stale = [i for _, i in sorted(self.instances.items()) if launch_key(i.spec) != key]
            if not stale:
                return
            log.info(
                "daemon.replacing", task_id=self.task_id, instance=stale[0].index, left=len(stale)
            )
            await stale[0].replace(self.spec)

    def status(self) -> DaemonStatus:
        """The figures the center shows for this rule on this agent."""
        wanted = len(instance_indexes(self.spec)) if self.spec is not None else 0
        running = sum(1 for i in itertools.chain(self.instances.values(), self.retiring) if i.up)
        crash = any(i.health.crash_looping(self.policy) for i in self.instances.values())
        return DaemonStatus(
            task_id=self.task_id,
            wanted=wanted,
            running=running,
            crash_looping=crash,
            last_exit=self.last_exit,
        )


class DaemonSupervisor:
    """Every daemon rule of this agent, the durable wanted set, and the status reports.

    The center sends `DaemonsWanted`: the complete set after each (re)connect, changes in
    between. The wanted set (and the agent id daemon run ids are made with) is kept in the
    outbox, so an agent restarted while no center reaches it brings its daemons back at once.
    A rule no longer wanted has its instances stopped (TERM, grace, KILL); lowering
    `process_num` stops the highest indexes; a changed command, shell, user, env or cwd
    replaces instances one at a time, each waiting until the previous replacement's process
    has started. `DaemonStatus` (state, not history: never in the outbox) goes to the leader
    when a rule's figures change, coalesced to one per rule per STATUS_EVERY_S, and to every
    new connection and new leader.
    """

    def __init__(
        self, table: RunTable, journal: Journal, sessions: Sessions, policy: DaemonPolicy
    ) -> None:
        self.table = table
        self.policy = policy
        self._journal = journal
        self._sessions = sessions
        self.rules: dict[int, DaemonRule] = {}
        self.wanted: dict[int, RunSpec] = {}
        self.aid = 0
        self._closed = False
        self._dirty: set[int] = set()
        self._sent: dict[int, DaemonStatus] = {}
        self._flush: asyncio.TimerHandle | None = None

    def apply(self, msg: DaemonsWanted) -> None:
        """Apply a (fenced) DaemonsWanted and keep the result durable."""
        if self._closed:
            return
        wanted = plan_wanted(self.wanted, msg)
        aid = msg.aid or self.aid
        log.info(
            "daemon.wanted",
            complete=msg.complete,
            rules=sorted(wanted),
            aid=aid,
            stopped=msg.stopped or None,
        )
        if (wanted, aid) != (self.wanted, self.aid):
            self._journal.save_daemons(
                DaemonsWanted(
                    epoch=self._journal.epoch, specs=list(wanted.values()), complete=True, aid=aid
                )
            )
        self.wanted, self.aid = wanted, aid
        self._reconcile()

    def restore(self, saved: DaemonsWanted | None) -> None:
        """At start: bring back the daemons wanted when the agent last ran."""
        if saved is None or self._closed:
            return
        self.wanted, self.aid = plan_wanted({}, saved), saved.aid
        log.info("daemon.restored", rules=sorted(self.wanted), aid=self.aid)
        self._reconcile()

    def _reconcile(self) -> None:
        """Make the rules match `wanted`."""
        for task_id, rule in list(self.rules.items()):
            if task_id not in self.wanted and rule.spec is not None:
                rule.retire_all(STOPPED_REASON)
        for task_id, spec in self.wanted.items():
            if task_id not in self.rules:
                self.rules[task_id] = DaemonRule(self, task_id)
            rule = self.rules[task_id]
            if rule.spec != spec:
                rule.want(spec)

    def partition_check(self, silent_s: float) -> None:
        """Stop the rules that ask for "at most N" (`partition_stop_s`) once no center has been
        heard for that long: the center places their instances elsewhere after the same time.
        They start again with the next center's word (`apply`)."""
        for task_id, rule in list(self.rules.items()):
            stop_s = rule.spec.partition_stop_s if rule.spec is not None else 0
            if stop_s and silent_s >= stop_s:
                log.warning("daemon.partition_stop", task_id=task_id, silent_s=round(silent_s, 1))
                rule.retire_all(f"no center heard for {silent_s:.0f} s (partition_stop_s {stop_s})")

    def stop_all(self, reason: str) -> None:
        """Agent shutdown: stop every instance; the durable wanted set stays as it is."""
        self._closed = True
        if self._flush is not None:
            self._flush.cancel()
        for rule in list(self.rules.values()):
            rule.retire_all(reason)

    def new_handle(
        self, spec: RunSpec, index: int, on_started: Callable[[RunHandle], None]
    ) -> RunHandle:
        """The next start of an instance: its start time is its scheduled time and run id."""
        start_us = now_us()
        msg = daemon_exec(spec, index, self.aid, start_us, self._journal.epoch)
        return RunHandle(msg, start_us=start_us, on_started=on_started)

    def forget_if_gone(self, rule: DaemonRule) -> None:
        """Drop a rule that is neither wanted nor running anything."""
        if rule.gone and self.rules.get(rule.task_id) is rule:
            del self.rules[rule.task_id]

    # ------------------------------------------------------------ status reports

    def statuses(self) -> list[DaemonStatus]:
        """Every rule's status now (for a new connection, leader or not)."""
        return [rule.status() for _, rule in sorted(self.rules.items())]

    def send_all(self, session: Session) -> None:
        """Every rule's status to a new leader; later changes are compared with these."""
        out = self.statuses()
        self._sent = {s.task_id: s for s in out}
        session.send(list(out))

    def changed(self, task_id: int) -> None:
        """A rule's figures may have changed: report it with the next coalesced flush."""
        if self._closed:
            return
        self._dirty.add(task_id)
        if self._flush is None:
            loop = asyncio.get_running_loop()
            self._flush = loop.call_later(STATUS_EVERY_S, self._send_changed)

    def _send_changed(self) -> None:
        """Send the statuses that differ from what the leader was last sent."""
        self._flush = None
        dirty, self._dirty = self._dirty, set()
        leader = self._sessions.leader()
        if leader is None:
            self._sent.clear()  # the next leader is sent every status on connect anyway
            return
        out = []
        for task_id in sorted(dirty):
            rule = self.rules.get(task_id)
            status = (
                rule.status()
                if rule is not None
                else DaemonStatus(task_id=task_id, wanted=0, running=0)
            )
            if self._sent.get(task_id) != status:
                out.append(status)
            if rule is None:
                self._sent.pop(task_id, None)
            else:
                self._sent[task_id] = status
        leader.send(list(out))
