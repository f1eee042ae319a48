"""What a killed agent had accepted: its processes still running are stopped by the next agent,
and every accepted run is reported `lost` with its outcome unknown and what was found of it."""

from __future__ import annotations

import asyncio
import dataclasses
import signal
import subprocess
from pathlib import Path

import psutil

from agent.orphans import UNKNOWN, TrackedProcess, stop_orphans, track, unknown_outcomes
from agent.outbox import Outbox
from protocol import statuses
from protocol.messages import AgentState, RunFinished, RunStarted
from tests.agent.peer import WAIT_S, CenterPeer, exec_msg, processes_running, wait_for
from tests.agent.procs import finish_at_restart, kill_agent, start_agent, stop_agent, wait_started

SLEEP = ("/bin/sleep", "3301")


async def test_orphan_of_a_killed_agent_is_stopped_at_restart(tmp_path: Path) -> None:
    """kill -9 of the agent leaves its `sleep` running; the next agent on the same state
    directory stops it before serving and sends its RunFinished (`killed`, with the reason)."""
    proc = await start_agent(tmp_path)
    try:
        port = int((await wait_started(proc))["port"])  # type: ignore[call-overload]
        peer = await CenterPeer.connect(port)
        msg = exec_msg(" ".join(SLEEP))
        await peer.send(msg)
        run = await peer.expect(RunStarted, msg.ref.runid)
        await peer.close()
        await kill_agent(proc)
    finally:
        await stop_agent(proc)
    await wait_for(lambda: [p.pid for p in processes_running(*SLEEP)] == [run.pid])
    assert psutil.Process(run.pid).uids().real == run.uid  # still running, unsupervised

    proc = await start_agent(tmp_path)
    logs: list[dict[str, object]] = []
    try:
        port = int((await wait_started(proc, logs))["port"])  # type: ignore[call-overload]
        assert processes_running(*SLEEP) == []  # stopped before the agent serves
        peer = await CenterPeer.connect(port)
        try:
            state = await peer.expect(AgentState)
            finished = await peer.expect(RunFinished, msg.ref.runid)
        finally:
            await peer.close()
    finally:
        await stop_agent(proc)
    assert state.running == []
    found = [e for e in logs if e["event"] == "agent.orphan_found"]
    assert len(found) == 1 and found[0]["runid"] == msg.ref.runid and found[0]["pid"] == run.pid
    assert finished.status == statuses.LOST and finished.outcome_unknown
    assert finished.reason.startswith(UNKNOWN) and f"pid {run.pid}" in finished.reason
    assert "was still running and was stopped" in finished.reason
    assert (finished.pid, finished.start_us, finished.uid) == (run.pid, run.start_us, run.uid)
    assert finished.ref == msg.ref and finished.end_us >= run.start_us


async def test_a_run_accepted_before_a_crash_is_reported_outcome_unknown(tmp_path: Path) -> None:
    """An agent killed after it committed a run id but before it recorded a process: the next
    agent reports that run lost with its outcome unknown, never as a run that did not start."""
    msg = exec_msg("/bin/true")
    outbox = Outbox.open(tmp_path / "state")
    template = RunFinished(seq=0, ref=msg.ref, status=statuses.LOST, end_us=0)
    outbox.commit([], runids=[(msg.ref.runid, 1)], opened=[template])
    outbox.close()
    finished = await finish_at_restart(tmp_path, msg.ref.runid)
    assert finished.status == statuses.LOST and finished.outcome_unknown
    assert finished.reason == (
        f"{UNKNOWN}, before a process of it was recorded (it may not have started)"
    )


def test_unknown_outcomes_say_what_was_found() -> None:
    """A recorded process still running, one that had ended, and a run with none recorded."""
    refs = [exec_msg("x").ref for _ in range(3)]
    recorded = [
        TrackedProcess(RunStarted(seq=1, ref=ref, pid=100 + i, start_us=1), 100 + i, 1.0, 1.0)
        for i, ref in enumerate(refs[:2])
    ]
    opened = [RunFinished(seq=0, ref=ref, status=statuses.LOST, end_us=0) for ref in refs]
    out = unknown_outcomes(opened, recorded, {refs[0].runid}, end_us=9)
    assert [e.ref.runid for e in out] == [r.runid for r in refs]
    assert all(e.outcome_unknown and e.status == statuses.LOST and e.end_us == 9 for e in out)
    assert "pid 100" in out[0].reason and "still running" in out[0].reason
    assert "pid 101" in out[1].reason and "had ended" in out[1].reason
    assert "before a process of it was recorded" in out[2].reason


def _sleeper(*argv: str) -> subprocess.Popen[bytes]:
    """A process in its own session, as a run's would be."""
    return subprocess.Popen(argv, start_new_session=True, stdin=subprocess.DEVNULL)


def _entry(proc: subprocess.Popen[bytes], grace_s: float = 1.0) -> TrackedProcess:
    started = RunStarted(seq=1, ref=exec_msg("x").ref, pid=proc.pid, start_us=1)
    entry = track(started, grace_s)
    assert entry is not None
    return entry


async def _reaped(proc: subprocess.Popen[bytes]) -> int:
    """Wait (bounded, off the loop) for a child of this test to exit; its return code."""
    async with asyncio.timeout(WAIT_S):
        return await asyncio.to_thread(proc.wait)


async def test_reused_pid_is_left_alone() -> None:
    """A recorded pid now held by another process (another start time) is not signalled."""
    proc = _sleeper("/bin/sleep", "3302")
    try:
        entry = dataclasses.replace(_entry(proc), create_time=_entry(proc).create_time - 60)
        assert await stop_orphans([entry]) == []
        assert proc.poll() is None
    finally:
        proc.kill()
        await _reaped(proc)


async def test_orphan_ignoring_term_is_killed_after_its_grace() -> None:
    """TERM first; a process that ignores it is KILLed once its kill grace has passed."""
    proc = _sleeper("/bin/sh", "-c", "trap '' TERM; sleep 3303 & wait")
    await wait_for(lambda: len(processes_running("sleep", "3303")) == 1)
    loop = asyncio.get_running_loop()
    began = loop.time()
    stopped = await stop_orphans([_entry(proc, grace_s=0.3)])
    assert [e.started.pid for e in stopped] == [proc.pid]
    assert await _reaped(proc) == -signal.SIGKILL
    assert loop.time() - began >= 0.3
    await wait_for(lambda: processes_running("sleep", "3303") == [])


async def test_gone_process_is_not_stopped() -> None:
    """A recorded process that has ended since is not running: nothing is signalled."""
    proc = _sleeper("/bin/sleep", "3304")
    entry = _entry(proc)
    proc.kill()
    await _reaped(proc)
    assert await stop_orphans([entry]) == []
