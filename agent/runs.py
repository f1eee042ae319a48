"""The runs an agent has going, whoever started them, and the one way a run is carried out."""

from __future__ import annotations

import asyncio
import dataclasses
import resource
from collections.abc import Awaitable, Coroutine, Iterable
from typing import Any

import structlog

from agent.errors import StateDirError
from agent.gate import Go, Prepared
from agent.handle import RunHandle
from agent.journal import Journal
from agent.metrics import AgentMetrics
from agent.outcomes import abandoned, log_finished, not_started
from agent.prepared import Preparer, fd_room
from agent.runner import Runner
from agent.server import LIVE_OUTPUT_BACKLOG_BYTES, Sessions
from protocol import statuses
from protocol.clock import now_us
from protocol.messages import Exec, RunFinished, RunOutput

DEFAULT_MAX_PROCESSES = 512
DEFAULT_PREPARE_MAX = 2000
DEFAULT_PREPARE_AHEAD_US = 2_000_000
log = structlog.get_logger("agent.runs")


@dataclasses.dataclass(frozen=True, slots=True)
class RunLimits:
    """Processes at once on this agent, the send backlog that holds live output back, and
    how many held runs get their process ready ahead, how early (agent.prepared)."""

    max_processes: int = DEFAULT_MAX_PROCESSES
    live_backlog_bytes: int = LIVE_OUTPUT_BACKLOG_BYTES
    prepare_max: int = DEFAULT_PREPARE_MAX
    prepare_ahead_us: int = DEFAULT_PREPARE_AHEAD_US


class RunTable:
    """Every accepted run by run id (one-shots, waiting runs, daemon instances) and the tasks
    that supervise them, so that state, kill, live output and shutdown see them all.

    `processes` counts the runs being carried out (from spawn to exit); a run that would go
    beyond `max_processes` ends `skipped` without starting.
    """

    def __init__(
        self,
        sessions: Sessions,
        journal: Journal,
        runner: Runner,
        *,
        limits: RunLimits = RunLimits(),
        metrics: AgentMetrics | None = None,
    ) -> None:
        self._sessions = sessions
        self._journal = journal
        self._runner = runner
        self._limits = limits
        self._metrics = metrics or AgentMetrics()
        self.runs: dict[str, RunHandle] = {}
        self.processes = 0
        soft_nofile = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
        self.preparer = Preparer(
            self._prepare,
            ahead_us=limits.prepare_ahead_us,
            max_held=min(limits.prepare_max, fd_room(soft_nofile)),
            held_starts=self._metrics.held_starts,
        )
        self._tasks: set[asyncio.Task[None]] = set()

    def _prepare(self, msg: Exec, go: Go) -> Awaitable[Prepared]:
        """The runner's preparation (looked up late: some tests build a table without one)."""
        return self._runner.prepare(msg, go)

    @property
    def tasks(self) -> set[asyncio.Task[None]]:
        """The tasks still going (runs, daemon instances, resends), for shutdown."""
        return set(self._tasks)

    def spawn(self, coro: Coroutine[Any, Any, None], name: str) -> asyncio.Task[None]:
        """A tracked task, so shutdown can wait for it or cancel it."""
        task = asyncio.create_task(coro, name=name)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    def add(self, handle: RunHandle) -> None:
        """Count a run as known to this agent (it is listed in AgentState from now on)."""
        self.runs[handle.runid] = handle

    def admit(self, handle: RunHandle) -> Prepared | None:
        """At its second, let a newly accepted run's prepared process through its gate, if it
        has one and there is room under the process limit: it execs once its run id is
        durable (`Prepared.admit`). Counted among the processes until `execute` ends."""
        if self.processes >= self._limits.max_processes:
            return None  # `execute` skips it
        prepared = self.preparer.take(handle.msg)
        if prepared is not None:
            self.processes += 1
            prepared.protocol.tail = handle.tail
            prepared.admit(self._journal.when_committed, lambda: bool(handle.stop_status))
        return prepared

    async def execute(self, handle: RunHandle, admitted: Prepared | None = None) -> RunFinished:
        """Run an added handle (or its `admit`ted process) to its end; its RunFinished is
        queued and returned."""
        with structlog.contextvars.bound_contextvars(runid=handle.runid, task_id=handle.task_id):
            try:
                if admitted is not None:
                    event = await self._carry_admitted(handle, admitted)
                else:
                    await self._journal.committed()  # run id and epoch on disk before a spawn
                    event = self._over_limit(handle) or await self._carry_out(handle)
            except StateDirError as exc:
                event = not_started(
                    handle.msg, statuses.FAILED, f"agent cannot record the run: {exc}", now_us()
                )
            except asyncio.CancelledError:
                self.finish(
                    abandoned(handle, "agent exited before the run ended", now_us()), handle
                )
                raise
            except Exception as exc:  # a bug must cost this run only, and still report it
                log.exception("agent.run_crashed")
                event = abandoned(handle, f"agent error: {type(exc).__name__}: {exc}", now_us())
                event = dataclasses.replace(event, status=statuses.FAILED)
            self.pump_output(handle)
            self.finish(event, handle)
            return event

    async def _carry_admitted(self, handle: RunHandle, prepared: Prepared) -> RunFinished:
        """An admitted process, once its run id is durable; a failed commit discards it (its
        gate never opens for it) and the run ends failed."""
        try:
            try:
                await self._journal.committed()
            except BaseException:
                prepared.discard()
                raise
            return await self._runner.run(handle, prepared)
        finally:
            self.processes -= 1

    async def _carry_out(self, handle: RunHandle) -> RunFinished:
        """Run it, counted among the processes meanwhile (its run id is durable by now)."""
        self.processes += 1
        try:
            prepared = self.preparer.take(handle.msg)
            if prepared is None:  # the prepared runs due with it open their gates first
                await asyncio.sleep(0)
            elif not handle.stop_status:
                prepared.protocol.tail = handle.tail
                prepared.admit(self._journal.when_committed, lambda: bool(handle.stop_status))
            return await self._runner.run(handle, prepared)
        finally:
            self.processes -= 1

    def _over_limit(self, handle: RunHandle) -> RunFinished | None:
        """A skipped RunFinished if the agent already runs `max_processes`, else None."""
        limit = self._limits.max_processes
        if self.processes < limit:
            return None
        self._metrics.limit_hit(
            "processes", max=limit, runid=handle.runid, task_id=handle.task_id, action="run skipped"
        )
        return not_started(
            handle.msg,
            statuses.SKIPPED,
            f"agent process limit reached: {self.processes} processes running "
            f"(UNITEDCRON_AGENT_MAX_PROCESSES={limit})",
            now_us(),
        )

    def finish(self, event: RunFinished, handle: RunHandle | None = None) -> None:
        """Forget a run, log and count its outcome, queue its RunFinished for the outbox."""
        if handle is not None:
            self.runs.pop(handle.runid, None)
        self.preparer.discard(event.ref.runid)  # a run ended without its prepared process
        log_finished(event)
        self._metrics.runs.labels(status=event.status).inc()
        self._journal.emit(event)

    def pump_output(self, only: RunHandle | None = None) -> None:
        """Send each run's pending live chunk to the leader, one frame at a time, while the
        connection's send buffer stays under `live_backlog_bytes`. Above it, chunks wait
        and the bytes produced meanwhile are skipped (the chunk offsets show the gap): a flood
        never grows the buffer past the bound plus one chunk. Without a leader they are dropped.
        """
        leader = self._sessions.leader()
        handles: Iterable[RunHandle] = (only,) if only is not None else list(self.runs.values())
        limit = self._limits.live_backlog_bytes
        for handle in handles:
            if leader is not None and leader.backlog_bytes >= limit:
                self._metrics.limit_hit(
                    "live_output", max=limit, peer=leader.conn.peer, action="live output held back"
                )
                return
            chunk = handle.tail.take()
            if chunk is not None and leader is not None:
                leader.send([RunOutput(runid=handle.runid, offset=chunk[0], data=chunk[1])])

    def stop_all(self, reason: str) -> None:
        """Ask every run to stop (TERM, grace, KILL) with `reason`."""
        for handle in list(self.runs.values()):
            handle.request_stop(statuses.KILLED, reason)
