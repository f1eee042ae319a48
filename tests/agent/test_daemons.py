"""Daemon rules end to end: real agents keep N real processes running as the rule's user."""

from __future__ import annotations

import asyncio
import dataclasses
import os
import shutil
import signal
import tempfile
import time
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path

import pytest

from agent.config import AgentConfig
from agent.service import AgentService
from protocol import statuses
from protocol.messages import (
    AgentState,
    DaemonStatus,
    Error,
    Kill,
    RunFinished,
    RunStarted,
    make_runid,
)
from tests.agent.peer import (
    CenterPeer,
    daemon_spec,
    processes_running,
    running,
    session_members,
    stopped,
    wait_for,
    wanted,
)

NOBODY = 65534
AID = 5
pytestmark = pytest.mark.slow


def _uids(sid: int) -> list[int]:
    """The real uids of the live processes of session `sid`."""
    return [p.uids().real for p in session_members(sid)]


async def _starts(center: CenterPeer, n: int) -> list[RunStarted]:
    """The next `n` RunStarted events, by instance index."""
    got = [await center.expect(RunStarted) for _ in range(n)]
    return sorted(got, key=lambda s: s.ref.instance)


async def _status(
    center: CenterPeer, match: Callable[[DaemonStatus], bool], timeout_s: float = 10.0
) -> DaemonStatus:
    """The first DaemonStatus (not yet expected) that satisfies `match`."""
    async with asyncio.timeout(timeout_s):
        while True:
            status: DaemonStatus = await center.expect(DaemonStatus)
            if match(status):
                return status


@pytest.fixture
async def fast_agent(make_config: Callable[..., AgentConfig]) -> AsyncIterator[AgentService]:
    """An agent whose daemon backoff is short, so crash loops show within a second or two."""
    config = make_config(
        agent_daemon_backoff_s=0.1, agent_daemon_backoff_max_s=0.4, agent_daemon_stable_s=0.6
    )
    async with running(config) as service:
        yield service


@pytest.fixture
async def fast_center(fast_agent: AgentService) -> AsyncIterator[CenterPeer]:
    peer = await CenterPeer.connect(fast_agent.port)
    assert isinstance(await peer.recv(), AgentState)
    try:
        yield peer
    finally:
        await peer.close()


async def test_runs_exactly_n_instances_as_rule_user(center: CenterPeer) -> None:
    """process_num=2 runs exactly two processes under uid 65534, instances 0 and 1."""
    spec = daemon_spec("/bin/sleep 3001", process_num=2)
    await center.send(wanted(spec))
    starts = await _starts(center, 2)
    assert [s.ref.instance for s in starts] == [0, 1]
    for start in starts:
        ref = start.ref
        assert (ref.trigger, ref.attempt, ref.task_id) == ("daemon", 0, 21)
        assert ref.sched_us == start.start_us
        assert ref.runid == make_runid(21, start.start_us, AID, 0, ref.instance)
        assert (start.uid, start.gid, start.run_user) == (NOBODY, NOBODY, "nobody")
        # setpriv may still be dropping privileges when RunStarted arrives: wait for the command.
        await wait_for(lambda pid=start.pid: _uids(pid) == [NOBODY])
        members = session_members(start.pid)
        assert members[0].environ()["UNITEDCRON_INSTANCE"] == str(ref.instance)
        assert members[0].environ()["UNITEDCRON_RUNID"] == ref.runid
    assert len(processes_running("/bin/sleep", "3001")) == 2
    status = await _status(center, lambda s: s.running == 2)
    assert (status.task_id, status.wanted, status.crash_looping) == (21, 2, False)


async def test_kill_9_brings_a_replacement_after_about_a_second(center: CenterPeer) -> None:
    """A SIGKILLed instance ends `failed` and comes back with the same index about 1 s later."""
    await center.send(wanted(daemon_spec("/bin/sleep 3002", process_num=2)))
    victim = (await _starts(center, 2))[1]
    os.kill(victim.pid, signal.SIGKILL)
    killed_at = time.monotonic()
    ended = await center.expect(RunFinished, victim.ref.runid)
    again = await center.expect(RunStarted)
    seen_after_s = time.monotonic() - killed_at
    delay_s = (again.start_us - ended.end_us) / 1e6
    print(
        f"\nrestart delay after kill -9: {delay_s:.3f} s agent-side, "
        f"{seen_after_s:.3f} s until the center got RunStarted"
    )
    assert (ended.status, ended.signal) == (statuses.FAILED, 9)
    assert again.ref.instance == 1 and again.ref.runid != victim.ref.runid
    assert 0.9 <= delay_s <= 1.5
    assert len(processes_running("/bin/sleep", "3002")) == 2


async def test_stopped_rule_leaves_nothing(center: CenterPeer) -> None:
    """A rule in `stopped` has every instance killed: no process left, a `killed` run each."""
    spec = daemon_spec("sleep 3003 & exec sleep 3003", shell=True, process_num=2)
    await center.send(wanted(spec))
    starts = await _starts(center, 2)
    await wait_for(lambda: all(len(session_members(s.pid)) == 2 for s in starts))
    await center.send(wanted(complete=False, stopped=(21,)))
    for start in starts:
        finished = await center.expect(RunFinished, start.ref.runid)
        assert (finished.status, finished.reason) == (statuses.KILLED, "rule paused or deleted")
        assert session_members(start.pid) == []
    await _status(center, lambda s: (s.wanted, s.running) == (0, 0))
    assert processes_running("sleep", "3003") == []


async def test_lowering_process_num_stops_highest_indexes(center: CenterPeer) -> None:
    """process_num 3 -> 1 stops instances 1 and 2 and leaves instance 0 running."""
    spec = daemon_spec("/bin/sleep 3004", process_num=3)
    await center.send(wanted(spec))
    starts = await _starts(center, 3)
    await center.send(wanted(dataclasses.replace(spec, process_num=1), complete=False))
    for start in starts[1:]:
        finished = await center.expect(RunFinished, start.ref.runid)
        assert (finished.status, finished.reason) == (statuses.KILLED, "process_num lowered to 1")
    status = await _status(center, lambda s: s.running == 1)
    assert status.wanted == 1
    later = await center.sync(epoch=1)
    assert not [m for m in later if isinstance(m, RunStarted | RunFinished)]
    assert [p.pid for p in processes_running("/bin/sleep", "3004")] == [starts[0].pid]


async def _count_while(argvs: list[tuple[str, ...]], done: asyncio.Event) -> list[int]:
    """Sample how many processes run any of `argvs` until `done` is set."""
    counts = []
    while not done.is_set():
        counts.append(sum(len(processes_running(*argv)) for argv in argvs))
        await asyncio.sleep(0.01)
    return counts


async def test_changed_command_replaces_one_at_a_time(center: CenterPeer) -> None:
    """A new command replaces instance 0, waits for its start, then replaces instance 1:
    at no point does the rule have no process running."""
    spec = daemon_spec("/bin/sleep 3005", process_num=2)
    await center.send(wanted(spec))
    old = await _starts(center, 2)
    done = asyncio.Event()
    sampler = asyncio.create_task(
        _count_while([("/bin/sleep", "3005"), ("/bin/sleep", "3006")], done)
    )
    await center.send(wanted(dataclasses.replace(spec, command="/bin/sleep 3006")))
    end0 = await center.expect(RunFinished, old[0].ref.runid)
    new = await _starts(center, 2)
    end1 = await center.expect(RunFinished, old[1].ref.runid)
    done.set()
    counts = await sampler
    assert [s.ref.instance for s in new] == [0, 1]
    assert end0.reason == end1.reason == "replaced: rule changed"
    assert end0.seq < new[0].seq < end1.seq < new[1].seq
    assert min(counts) >= 1 and max(counts) <= 2
    assert len(processes_running("/bin/sleep", "3006")) == 2


async def test_roll_stops_at_a_spec_that_cannot_start(fast_center: CenterPeer) -> None:
    """A changed spec whose process cannot start replaces one instance only; the rest keep
    running the old spec while the broken one retries and shows as crash-looping."""
    spec = daemon_spec("/bin/sleep 3007", process_num=2)
    await fast_center.send(wanted(spec))
    old = await _starts(fast_center, 2)
    await fast_center.send(wanted(dataclasses.replace(spec, run_user="no-such-user-x")))
    await fast_center.expect(RunFinished, old[0].ref.runid)
    status = await _status(fast_center, lambda s: s.crash_looping)
    assert status.last_exit.startswith("cannot start: run_user 'no-such-user-x'")
    assert (status.wanted, status.running) == (2, 1)
    assert [p.pid for p in processes_running("/bin/sleep", "3007")] == [old[1].pid]


async def test_crash_loop_reported_with_last_exit(fast_center: CenterPeer) -> None:
    """A command that exits at once is restarted and, after 3 quick deaths, reported as
    crash-looping with its exit code and last output line."""
    spec = daemon_spec("echo starting; echo boom >&2; exit 1", shell=True)
    await fast_center.send(wanted(spec))
    status = await _status(fast_center, lambda s: s.crash_looping)
    assert (status.task_id, status.wanted, status.last_exit) == (21, 1, "exit 1: boom")
    ended = [m for m in fast_center.seen if isinstance(m, RunFinished)]
    assert len(ended) >= 3 and all(e.ref.instance == 0 for e in ended)
    assert all(e.ref.trigger == "daemon" and e.code == 1 for e in ended)


@pytest.fixture
def shared_dir() -> Iterator[Path]:
    """A directory nobody can write to (pytest's tmp_path is private to root)."""
    path = Path(tempfile.mkdtemp(prefix="unitedcron-test-"))
    path.chmod(0o777)
    try:
        yield path
    finally:
        shutil.rmtree(path)


async def test_crash_loop_clears_once_stable(fast_center: CenterPeer, shared_dir: Path) -> None:
    """A daemon that fails three times, then stays up past stable_s, stops being crash-looping."""
    box = shared_dir
    command = (
        f"n=$(cat {box}/n 2>/dev/null || echo 0); echo $((n+1)) > {box}/n; "
        f"[ $n -ge 3 ] && exec sleep 3008; echo failing; exit 2"
    )
    await fast_center.send(wanted(daemon_spec(command, shell=True)))
    looping = await _status(fast_center, lambda s: s.crash_looping)
    assert looping.last_exit == "exit 2: failing"
    healthy = await _status(fast_center, lambda s: not s.crash_looping and s.running == 1)
    assert healthy.last_exit == "exit 2: failing"


async def test_complete_set_without_rule_stops_it(center: CenterPeer) -> None:
    """A complete DaemonsWanted that no longer lists a rule stops it; listed rules go on."""
    keep = daemon_spec("/bin/sleep 3009", task_id=31)
    drop = daemon_spec("/bin/sleep 3010", task_id=32)
    await center.send(wanted(keep, drop))
    starts = {s.ref.task_id: s for s in await _starts(center, 2)}
    await center.send(wanted(keep))
    finished = await center.expect(RunFinished, starts[32].ref.runid)
    assert (finished.status, finished.reason) == (statuses.KILLED, "rule paused or deleted")
    later = await center.sync(epoch=1)
    assert not [m for m in later if getattr(m, "ref", None) == starts[31].ref]
    assert processes_running("/bin/sleep", "3010") == []
    assert [p.pid for p in processes_running("/bin/sleep", "3009")] == [starts[31].pid]


async def test_stale_epoch_daemons_refused(center: CenterPeer) -> None:
    """DaemonsWanted below the highest epoch gets stale_epoch (no run id) and starts nothing."""
    await center.sync(epoch=5)
    await center.send(wanted(daemon_spec("/bin/sleep 3011"), epoch=4))
    error = await center.expect(Error)
    assert (error.code, error.runid) == ("stale_epoch", "")
    later = await center.sync(epoch=5)
    assert not [m for m in later if isinstance(m, RunStarted)]
    assert processes_running("/bin/sleep", "3011") == []


async def test_restart_without_center_brings_daemons_back(
    make_config: Callable[..., AgentConfig], agent: AgentService
) -> None:
    """An agent restarted while no center connects starts the daemons it last wanted, from
    its state directory; the next center hears of the new instance."""
    peer = await CenterPeer.connect(agent.port)
    await peer.send(wanted(daemon_spec("/bin/sleep 3012"), aid=9))
    first = await peer.expect(RunStarted)
    await peer.close()
    await stopped(agent)
    assert processes_running("/bin/sleep", "3012") == []
    async with running(make_config()) as again:
        await wait_for(lambda: len(processes_running("/bin/sleep", "3012")) == 1)
        peer = await CenterPeer.connect(again.port)
        try:
            state = await peer.expect(AgentState)
            status = await peer.expect(DaemonStatus)
            assert (status.task_id, status.wanted, status.running) == (21, 1, 1)
            shut = await peer.expect(RunFinished, first.ref.runid)
            assert (shut.status, shut.reason) == (statuses.KILLED, "agent shut down")
            await peer.expect(RunStarted, first.ref.runid)  # resent: never acked
            back = await peer.expect(RunStarted)
            assert back.ref.runid in state.running and back.ref.runid != first.ref.runid
            assert back.ref.runid == make_runid(21, back.start_us, 9, 0, 0)
        finally:
            await peer.close()


async def test_status_sent_to_each_new_connection(agent: AgentService, center: CenterPeer) -> None:
    """A (re)connecting center gets every daemon rule's status right after AgentState."""
    await center.send(wanted(daemon_spec("/bin/sleep 3013", process_num=2)))
    await _starts(center, 2)
    await wait_for(lambda: agent.control.daemons.rules[21].status().running == 2)
    other = await CenterPeer.connect(agent.port)
    try:
        assert isinstance(await other.recv(), AgentState)
        status = await other.recv()
        assert status == DaemonStatus(task_id=21, wanted=2, running=2)
    finally:
        await other.close()


async def test_kill_of_a_daemon_run_restarts_it(center: CenterPeer) -> None:
    """Kill of a daemon instance's run ends it `killed`; the instance comes back (pausing the
    rule is what stops a daemon)."""
    await center.send(wanted(daemon_spec("/bin/sleep 3014")))
    first = await center.expect(RunStarted)
    await center.send(Kill(epoch=1, task_id=21, runid=first.ref.runid, reason="operator"))
    ended = await center.expect(RunFinished, first.ref.runid)
    assert (ended.status, ended.reason) == (statuses.KILLED, "operator")
    again = await center.expect(RunStarted)
    assert again.ref.instance == 0 and again.start_us - ended.end_us < 1_500_000
