"""Overlap policies end to end: a slow one-shot rule (`sleep 3`) exec'd every second."""

from __future__ import annotations

import asyncio
import itertools

import pytest

from agent.service import AgentService
from protocol import statuses
from protocol.messages import AgentState, Exec, Kill, RunFinished, RunOutput, RunStarted
from tests.agent.peer import CenterPeer, exec_msg, session_members, wait_for

SLOW = "/bin/sleep 3"
pytestmark = pytest.mark.slow


async def _fire_every_second(center: CenterPeer, msgs: list[Exec]) -> None:
    """Send one exec per second, as the center would for a rule firing every second."""
    loop = asyncio.get_running_loop()
    first_s = loop.time()
    for i, msg in enumerate(msgs):
        await asyncio.sleep(max(0.0, first_s + i - loop.time()))
        await center.send(msg)


def _slow_runs(n: int, **spec: object) -> list[Exec]:
    return [exec_msg(SLOW, **spec) for _ in range(n)]  # type: ignore[arg-type]


def _started(center: CenterPeer, msg: Exec) -> list[RunStarted]:
    return [m for m in center.seen if isinstance(m, RunStarted) and m.ref == msg.ref]


async def test_skip_records_skipped_runs(center: CenterPeer) -> None:
    """skip: while the first run goes, the next fires end `skipped` with the reason."""
    msgs = _slow_runs(3, overlap="skip")
    await _fire_every_second(center, msgs)
    for msg in msgs[1:]:
        skipped = await center.expect(RunFinished, msg.ref.runid)
        assert skipped.status == statuses.SKIPPED
        assert skipped.reason == "1 runs of rule 7 already running (process_num=1)"
    assert (await center.expect(RunFinished, msgs[0].ref.runid)).status == statuses.SUCCESS
    assert [len(_started(center, m)) for m in msgs] == [1, 0, 0]


async def test_queue_waits_for_the_slot_and_skips_a_second(
    agent: AgentService, center: CenterPeer
) -> None:
    """queue: the second fire waits (known, not started) and runs when the first ends;
    the third is skipped because one is already queued."""
    msgs = _slow_runs(3, overlap="queue")
    await _fire_every_second(center, msgs)
    skipped = await center.expect(RunFinished, msgs[2].ref.runid)
    assert (skipped.status, skipped.reason) == (
        statuses.SKIPPED,
        "a run of rule 7 is already queued",
    )
    assert agent.control.runs[msgs[1].ref.runid].pid == 0
    other = await CenterPeer.connect(agent.port)
    try:
        state = await other.expect(AgentState)
        assert state.running == [msgs[0].ref.runid, msgs[1].ref.runid]
    finally:
        await other.close()
    first = await center.expect(RunFinished, msgs[0].ref.runid)
    queued = await center.expect(RunStarted, msgs[1].ref.runid)
    assert queued.seq > first.seq and queued.start_us >= first.end_us
    assert queued.ref == msgs[1].ref  # its scheduled identity is kept
    second = await center.expect(RunFinished, msgs[1].ref.runid)
    assert (first.status, second.status) == (statuses.SUCCESS, statuses.SUCCESS)


async def test_replace_kills_the_running_one(center: CenterPeer) -> None:
    """replace: each fire stops the run going (`killed`, "replaced by <new>") and starts."""
    msgs = _slow_runs(3, overlap="replace")
    await _fire_every_second(center, msgs)
    for old, new in itertools.pairwise(msgs):
        ended = await center.expect(RunFinished, old.ref.runid)
        assert (ended.status, ended.reason) == (statuses.KILLED, f"replaced by {new.ref.runid}")
        assert ended.signal == 15
        started = await center.expect(RunStarted, new.ref.runid)
        assert started.start_us >= ended.end_us  # never two at once
    last = await center.expect(RunFinished, msgs[2].ref.runid)
    assert last.status == statuses.SUCCESS


async def test_parallel_runs_two_and_skips_the_third(center: CenterPeer) -> None:
    """parallel with process_num=2: two runs overlap, the third fire is skipped."""
    msgs = _slow_runs(3, overlap="parallel", process_num=2)
    await _fire_every_second(center, msgs)
    first = await center.expect(RunStarted, msgs[0].ref.runid)
    second = await center.expect(RunStarted, msgs[1].ref.runid)
    await wait_for(lambda: len(session_members(first.pid)) == len(session_members(second.pid)) == 1)
    skipped = await center.expect(RunFinished, msgs[2].ref.runid)
    assert (skipped.status, skipped.reason) == (
        statuses.SKIPPED,
        "2 runs of rule 7 already running (process_num=2)",
    )
    ends = [await center.expect(RunFinished, m.ref.runid) for m in msgs[:2]]
    assert [e.status for e in ends] == [statuses.SUCCESS] * 2
    assert second.start_us < ends[0].end_us  # they really overlapped


async def test_kill_rule_with_a_queued_run(center: CenterPeer) -> None:
    """Kill of a rule stops its running run and ends its queued one `killed`, never started."""
    running, queued = (exec_msg("/bin/sleep 300", overlap="queue") for _ in range(2))
    await center.send(running)
    await center.expect(RunStarted, running.ref.runid)
    await center.send(queued, Kill(epoch=1, task_id=7, reason="operator"))
    never = await center.expect(RunFinished, queued.ref.runid)
    assert (never.status, never.reason, never.start_us, never.pid) == (
        statuses.KILLED,
        "operator",
        0,
        0,
    )
    ended = await center.expect(RunFinished, running.ref.runid)
    assert (ended.status, ended.reason) == (statuses.KILLED, "operator")
    assert _started(center, queued) == []


async def test_kill_one_queued_run_by_runid(center: CenterPeer) -> None:
    """Kill of a queued run by its id ends it without starting; the running one goes on."""
    running, queued = (exec_msg("/bin/sleep 300", overlap="queue") for _ in range(2))
    await center.send(running, queued)
    await center.expect(RunStarted, running.ref.runid)
    await center.send(Kill(epoch=1, task_id=7, runid=queued.ref.runid))
    never = await center.expect(RunFinished, queued.ref.runid)
    assert (never.status, never.start_us) == (statuses.KILLED, 0)
    assert not [m for m in await center.sync(epoch=1) if getattr(m, "ref", None) == running.ref]
    await center.send(Kill(epoch=1, task_id=7))
    await center.expect(RunFinished, running.ref.runid)


async def test_replace_while_the_old_run_is_still_stopping(center: CenterPeer) -> None:
    """replace: a run that ignores TERM holds its slot for the kill grace; a fire meanwhile
    takes the waiting run's place (it ends `killed`, never started), then starts after KILL."""
    command = "trap '' TERM; echo trapped; sleep 300 & wait"
    old, bumped, new = (
        exec_msg(command, shell=True, overlap="replace", kill_grace_s=1.0) for _ in range(3)
    )
    await center.send(old)
    await center.expect(RunStarted, old.ref.runid)
    await center.expect(RunOutput, old.ref.runid)  # TERM is ignored from now on
    await center.send(bumped)
    await center.send(new)
    never = await center.expect(RunFinished, bumped.ref.runid)
    assert (never.status, never.reason, never.start_us) == (
        statuses.KILLED,
        f"replaced by {new.ref.runid}",
        0,
    )
    ended = await center.expect(RunFinished, old.ref.runid)
    assert (ended.reason, ended.signal) == (f"replaced by {bumped.ref.runid}", 9)
    started = await center.expect(RunStarted, new.ref.runid)
    assert started.start_us >= ended.end_us
    await center.send(Kill(epoch=1, task_id=7))
    await center.expect(RunFinished, new.ref.runid)
