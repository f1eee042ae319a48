"""A run's whole tree: its process group, and the processes that left it (setsid, double
fork) but still carry its run id in their environment."""

from __future__ import annotations

import asyncio
import os
import signal

import structlog

log = structlog.get_logger("agent.descendants")
POLL_S = 0.02


def tree_of(runid: str, uid: int, pgid: int) -> list[int]:
    """Pids of `uid`'s processes in group `pgid` or whose environment names `runid` (a job
    that left its session keeps UNITEDCRON_RUNID unless it cleared its environment). The
    owner of /proc/<pid> is the process's user: one stat per process filters out the rest."""
    marker = f"UNITEDCRON_RUNID={runid}".encode()
    me = os.getpid()
    out = []
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit() or int(entry.name) == me:
            continue
        pid = int(entry.name)
        try:
            if entry.stat().st_uid != uid:
                continue
            if (os.getpgid(pid) == pgid or marker in _environ(pid)) and not _zombie(pid):
                out.append(pid)
        except OSError:  # gone meanwhile, or not ours to read
            continue
    return out


def _environ(pid: int) -> list[bytes]:
    with open(f"/proc/{pid}/environ", "rb") as f:
        return f.read().split(b"\0")


def _signal_all(pids: list[int], signum: int) -> list[int]:
    """Signal each pid; the ones that still existed."""
    alive = []
    for pid in pids:
        try:
            os.kill(pid, signum)
            alive.append(pid)
        except ProcessLookupError:
            continue
    return alive


async def end_tree(runid: str, uid: int, pgid: int, grace_s: float) -> int:
    """TERM every process of the run's tree, give them `grace_s`, KILL what is left; the
    number of processes found. The search reads /proc: it runs in a thread."""
    pids = await asyncio.to_thread(tree_of, runid, uid, pgid)
    if not pids:
        return 0
    loop = asyncio.get_running_loop()
    deadline = loop.time() + grace_s
    alive = _signal_all(pids, signal.SIGTERM)
    while alive and loop.time() < deadline:
        await asyncio.sleep(POLL_S)
        alive = [pid for pid in _signal_all(alive, 0) if not _zombie(pid)]
    killed = _signal_all(alive, signal.SIGKILL)
    log.info("run.tree_ended", runid=runid, found=len(pids), killed=len(killed))
    return len(pids)


def _zombie(pid: int) -> bool:
    """Dead but not yet reaped (by whoever adopted it), or gone."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            return f.read().rsplit(b")", 1)[1].split()[0] == b"Z"
    except (OSError, IndexError):
        return True
