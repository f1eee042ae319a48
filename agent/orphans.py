"""Processes a killed agent left behind: remembered while they run, stopped at the next start."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import os
import signal

import psutil
import structlog

from protocol import statuses
from protocol.messages import RunFinished, RunStarted

ORPHAN_REASON = "orphaned by an agent crash; stopped at agent start"
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


def orphan_finished(entry: TrackedProcess, end_us: int) -> RunFinished:
    """The final event of an orphan stopped at start: lost to the crash, so its rule may retry."""
    started = entry.started
    return RunFinished(
        seq=0,
        ref=started.ref,
        status=statuses.LOST,
        end_us=end_us,
        start_us=started.start_us,
        pid=started.pid,
        reason=ORPHAN_REASON,
        run_user=started.run_user,
        uid=started.uid,
        gid=started.gid,
    )
