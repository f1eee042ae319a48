"""Processes a killed agent left behind: remembered while they run, stopped at the next start."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import datetime as dt
import os
import signal

import psutil
import structlog

from protocol import statuses
from protocol.messages import RunFinished, RunStarted

# psutil derives create_time from the boot time and clock ticks: the same process gives the
# same figure; a reused pid started at another tick (10 ms) does not.
SAME_START_S = 0.005
POLL_S = 0.02
log = structlog.get_logger("agent.orphans")


@dataclasses.dataclass(frozen=True, slots=True)
class TrackedProcess:
    """A run's process as the state directory remembers it while it runs: its RunStarted
    (ref, pid, start, user: what its RunFinished needs), its group, its kernel start time
    (which tells it from a later process that reuses the pid), and its kill grace."""

    started: RunStarted
    pgid: int
    create_time: float
    grace_s: float

    @property
    def runid(self) -> str:
        """The run this process belongs to."""
        return self.started.ref.runid


def track(started: RunStarted, grace_s: float) -> TrackedProcess | None:
    """What to remember about a process just spawned (its own group); None if already gone."""
    try:
        create_time = psutil.Process(started.pid).create_time()
    except psutil.Error:
        return None
    return TrackedProcess(started, started.pid, create_time, grace_s)


def still_running(entry: TrackedProcess) -> bool:
    """Whether the very process recorded (same pid, same start time) still runs."""
    try:
        proc = psutil.Process(entry.started.pid)
        same = abs(proc.create_time() - entry.create_time) < SAME_START_S
        return bool(same and proc.status() != psutil.STATUS_ZOMBIE)
    except psutil.Error:
        return False


def _signal_group(pgid: int, signum: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, signum)


async def stop_orphans(entries: list[TrackedProcess]) -> list[TrackedProcess]:
    """TERM the group of each recorded process still running, give them their kill grace
    (the longest of them, at most), KILL what is left. Returns the ones that were running."""
    alive = [e for e in entries if still_running(e)]
    if not alive:
        return []
    for entry in alive:
        log.warning(
            "agent.orphan_found",
            runid=entry.runid,
            pid=entry.started.pid,
            pgid=entry.pgid,
            task_id=entry.started.ref.task_id,
        )
        _signal_group(entry.pgid, signal.SIGTERM)
    loop = asyncio.get_running_loop()
    deadline = loop.time() + max(e.grace_s for e in alive)
    # Not our children (the dead agent was their parent): no exit event exists, poll.
    while loop.time() < deadline and any(still_running(e) for e in alive):  # noqa: ASYNC110
        await asyncio.sleep(POLL_S)
    for entry in alive:
        _signal_group(entry.pgid, signal.SIGKILL)
    return alive


UNKNOWN = "outcome unknown: the agent restarted after accepting it"


def orphan_finished(entry: TrackedProcess, end_us: int, *, was_running: bool) -> RunFinished:
    """The final event of a run whose process the agent recorded, found at its next start: still
    running (and stopped now) or ended meanwhile; either way its outcome is lost to the crash."""
    started = entry.started
    when = dt.datetime.fromtimestamp(started.start_us / 1e6, dt.UTC).isoformat(
        timespec="milliseconds"
    )
    found = (
        "was still running and was stopped at agent start"
        if was_running
        else "had ended meanwhile; its exit status is lost"
    )
    return RunFinished(
        seq=0,
        ref=started.ref,
        status=statuses.LOST,
        end_us=end_us,
        start_us=started.start_us,
        pid=started.pid,
        reason=f"{UNKNOWN}; its process (pid {started.pid}, started {when}) {found}",
        run_user=started.run_user,
        uid=started.uid,
        gid=started.gid,
        outcome_unknown=True,
    )


def unknown_outcomes(
    open_runs: list[RunFinished],
    recorded: list[TrackedProcess],
    running: set[str],
    end_us: int,
) -> list[RunFinished]:
    """Pure: the final events an agent owes for what it had accepted before it restarted: each
    recorded process (`running`: those found still running), then each accepted run that had
    no process recorded yet (it may or may not have started)."""
    out = [orphan_finished(e, end_us, was_running=e.runid in running) for e in recorded]
    with_process = {e.runid for e in recorded}
    out += [
        dataclasses.replace(
            template,
            status=statuses.LOST,
            end_us=end_us,
            reason=f"{UNKNOWN}, before a process of it was recorded (it may not have started)",
            outcome_unknown=True,
        )
        for template in open_runs
        if template.ref.runid not in with_process
    ]
    return out
