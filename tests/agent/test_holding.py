"""Runs the center sends ahead of their time wait at the agent and start on time."""

from __future__ import annotations

import dataclasses
import time

from agent.service import AgentService
from protocol import statuses
from protocol.messages import AgentState, Exec, Kill, RunFinished, RunStarted
from tests.agent.peer import CenterPeer, exec_msg, wait_for

AHEAD_US = 600_000


def early(command: str, ahead_us: int = AHEAD_US, trigger: str = "schedule") -> Exec:
    msg = exec_msg(command)
    sched = time.time_ns() // 1000 + ahead_us
    return dataclasses.replace(
        msg, ref=dataclasses.replace(msg.ref, sched_us=sched, trigger=trigger)
    )


async def test_an_early_run_starts_at_its_time_not_on_arrival(center: CenterPeer) -> None:
    """An exec 0.6 s ahead starts at its scheduled time (within a few ms), not before."""
    msg = early("/bin/true")
    await center.send(msg)
    started = await center.expect(RunStarted, msg.ref.runid)
    assert msg.ref.sched_us <= started.start_us < msg.ref.sched_us + 50_000
    assert (await center.expect(RunFinished, msg.ref.runid)).status == statuses.SUCCESS


async def test_a_held_run_is_known_repeated_and_killable(
    center: CenterPeer, agent: AgentService
) -> None:
    """Held: a repeat is ignored, a new connection hears of it, a kill ends it unstarted."""
    msg = early("/bin/true", ahead_us=5_000_000)
    await center.send(msg, msg)
    await wait_for(lambda: msg.ref.runid in agent.control.holding)
    second = await CenterPeer.connect(agent.port)
    try:
        state = await second.recv()
        assert isinstance(state, AgentState) and msg.ref.runid in state.running
    finally:
        await second.close()
    await center.send(Kill(epoch=1, task_id=msg.spec.task_id, runid=msg.ref.runid, reason="no"))
    finished = await center.expect(RunFinished, msg.ref.runid)
    assert (finished.status, finished.start_us, finished.reason) == (statuses.KILLED, 0, "no")
    assert not [m for m in center.seen if isinstance(m, RunStarted)]
    assert msg.ref.runid not in agent.control.runs


async def test_runs_that_are_due_anyway_start_on_arrival(center: CenterPeer) -> None:
    """A manual run (or a retry, a catch-up) with a later sched time is not held."""
    msg = early("/bin/true", ahead_us=5_000_000, trigger="manual")
    await center.send(msg)
    started = await center.expect(RunStarted, msg.ref.runid, timeout_s=3)
    assert started.start_us < msg.ref.sched_us
