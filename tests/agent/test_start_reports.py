"""A run's start is sent after `agent_start_report_delay_ms`; a run that ends first sends its
finish alone, marked `start_unsent`, and an agent killed meanwhile still reports the run."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest

from agent.config import AgentConfig
from agent.outbox import FILE_NAME, Event
from agent.start_reports import StartReports
from protocol import statuses
from protocol.messages import AgentState, RunFinished, RunStarted
from tests.agent.peer import WAIT_S, CenterPeer, exec_msg, processes_running, running, wait_for
from tests.agent.procs import finish_at_restart, kill_agent, start_agent, stop_agent, wait_started

DELAY_S = 0.05


def _start(runid: str) -> RunStarted:
    return RunStarted(seq=0, ref=exec_msg("/bin/true", runid=runid).ref, pid=7, start_us=10)


def _finish(start: RunStarted) -> RunFinished:
    return RunFinished(seq=0, ref=start.ref, status=statuses.SUCCESS, end_us=20, start_us=10, pid=7)


class _Out:
    """What StartReports passes on, with an event per call."""

    def __init__(self) -> None:
        self.events: list[Event] = []
        self.passed = asyncio.Event()

    def __call__(self, event: Event) -> None:
        self.events.append(event)
        self.passed.set()

    async def next(self) -> Event:
        async with asyncio.timeout(WAIT_S):
            await self.passed.wait()
        self.passed.clear()
        return self.events[-1]


async def test_a_run_that_ends_within_the_delay_sends_its_finish_alone() -> None:
    """The finish is passed on at once, marked; the dropped start never follows."""
    out = _Out()
    reports = StartReports(out, DELAY_S)
    start = _start("a")
    reports.add(start)
    reports.add(_finish(start))
    finished = await out.next()
    assert isinstance(finished, RunFinished) and finished.start_unsent
    # A later start with the same delay is passed on after the first one's timer would have
    # fired.
    later = _start("b")
    reports.add(later)
    assert await out.next() == later
    assert out.events == [finished, later]


async def test_a_start_is_passed_on_after_the_delay_and_its_finish_unmarked() -> None:
    out = _Out()
    reports = StartReports(out, DELAY_S)
    start = _start("a")
    reports.add(start)
    assert await out.next() == start
    reports.add(_finish(start))
    finished = await out.next()
    assert finished == _finish(start)
    assert isinstance(finished, RunFinished) and not finished.start_unsent


async def test_no_delay_passes_each_start_at_once() -> None:
    out = _Out()
    reports = StartReports(out, 0)
    start = _start("a")
    reports.add(start)
    assert out.events == [start]


async def test_release_all_passes_the_waiting_starts_once_in_order() -> None:
    out = _Out()
    reports = StartReports(out, DELAY_S)
    first, second = _start("a"), _start("b")
    reports.add(first)
    reports.add(second)
    reports.release_all()
    assert out.events == [first, second]
    out.passed.clear()
    later = _start("c")
    reports.add(later)
    assert await out.next() == later  # the released starts' timers passed nothing again
    assert out.events == [first, second, later]


@pytest.fixture
async def slow_center(make_config: Callable[..., AgentConfig]) -> AsyncIterator[CenterPeer]:
    async with running(make_config(agent_start_report_delay_ms=300)) as service:
        peer = await CenterPeer.connect(service.port)
        assert isinstance(await peer.recv(), AgentState)
        try:
            yield peer
        finally:
            await peer.close()


async def test_a_short_run_reports_its_finish_alone(slow_center: CenterPeer) -> None:
    """`/bin/true` ends long before 300 ms: one frame, with the start's pid and time."""
    msg = exec_msg("/bin/true")
    finished = await slow_center.run(msg)
    await slow_center.sync()
    assert finished.status == statuses.SUCCESS and finished.start_unsent
    assert finished.pid > 0 and finished.end_us >= finished.start_us > 0
    assert [m for m in slow_center.seen if isinstance(m, RunStarted)] == []


async def test_a_long_run_reports_its_start_after_the_delay(slow_center: CenterPeer) -> None:
    """`sleep 1` outlasts 300 ms: its start is sent, then its finish, unmarked."""
    msg = exec_msg("/bin/sleep 1")
    await slow_center.send(msg)
    started = await slow_center.expect(RunStarted, msg.ref.runid)
    assert started.pid > 0
    finished = await slow_center.expect(RunFinished, msg.ref.runid)
    assert finished.status == statuses.SUCCESS and not finished.start_unsent
    assert (finished.pid, finished.start_us) == (started.pid, started.start_us)


SLEEP = ("/bin/sleep", "3302")


async def test_an_agent_killed_while_a_start_waits_still_reports_the_run(tmp_path: Path) -> None:
    """kill -9 while the run's start waits (never sent): the process is on disk, so the next
    agent stops it and reports the run with its pid and start time."""
    proc = await start_agent(tmp_path, UNITEDCRON_AGENT_START_REPORT_DELAY_MS="2000")
    msg = exec_msg(" ".join(SLEEP))
    try:
        port = int((await wait_started(proc))["port"])  # type: ignore[call-overload]
        peer = await CenterPeer.connect(port)
        await peer.send(msg)
        await wait_for(lambda: _tracked(tmp_path, msg.ref.runid))
        before = await peer.sync()
        await peer.close()
        await kill_agent(proc)
    finally:
        await stop_agent(proc)
    assert [m for m in before if isinstance(m, RunStarted)] == []  # it was still waiting
    [orphan] = processes_running(*SLEEP)

    finished = await finish_at_restart(tmp_path, msg.ref.runid)
    assert processes_running(*SLEEP) == []
    assert finished.status == statuses.LOST and finished.outcome_unknown
    assert finished.pid == orphan.pid and finished.start_us > 0


def _tracked(tmp_path: Path, runid: str) -> bool:
    """Whether the agent's state directory holds the run's process (read-only look)."""
    db = sqlite3.connect(f"file:{tmp_path / 'state' / FILE_NAME}?mode=ro", uri=True)
    try:
        return (
            db.execute("SELECT 1 FROM processes WHERE runid = ?", (runid,)).fetchone() is not None
        )
    finally:
        db.close()
