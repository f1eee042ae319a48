"""Runs sent ahead get their process ready before their second; a cancelled one never runs."""

from __future__ import annotations

import dataclasses
import os
import shutil
import signal
import sqlite3
import subprocess
import tempfile
import time
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path

import pytest

from agent.config import AgentConfig
from agent.decisions import PREPARE_MIN_LEAD_US, PrepareStep, decide_prepare
from agent.gate import GATE_SCRIPT, exec_stamp, gate_argv, verdict_socket
from agent.prepared import fd_room
from agent.service import AgentService
from agent.userswitch import UserSwitch, post_drop_argv
from protocol import statuses
from protocol.messages import AgentState, Exec, Kill, RunFinished, RunOutput, RunStarted
from protocol.rlimits import Rlimits
from tests.agent.peer import CenterPeer, exec_msg, running, wait_for

AHEAD_US = 1_500_000


def early(command: str, ahead_us: int = AHEAD_US, **spec: object) -> Exec:
    msg = exec_msg(command, shell=True, **spec)  # type: ignore[arg-type]
    sched = time.time_ns() // 1000 + ahead_us
    return dataclasses.replace(msg, ref=dataclasses.replace(msg.ref, sched_us=sched))


@pytest.fixture
def drop() -> Iterator[Path]:
    """A directory the run's user (nobody) may write to (pytest's own are root's only)."""
    path = Path(tempfile.mkdtemp(prefix="unitedcron-prepared-"))
    path.chmod(0o777)
    yield path
    shutil.rmtree(path, ignore_errors=True)


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


async def held_pid(agent: AgentService, msg: Exec) -> int:
    """The pid of the process held for `msg`, once it is ready."""
    preparer = agent.control.table.preparer
    await wait_for(lambda: preparer.pid(msg.ref.runid) is not None)
    pid = preparer.pid(msg.ref.runid)
    assert pid is not None
    return pid


async def sentinel(center: CenterPeer, after: Exec) -> None:
    """A run due after `after`, run to its end: `after`'s second has surely passed."""
    last = early("true", ahead_us=after.ref.sched_us - time.time_ns() // 1000 + 200_000)
    await center.send(last)
    assert (await center.expect(RunFinished, last.ref.runid)).status == statuses.SUCCESS


async def test_a_prepared_run_starts_at_its_second_as_its_user(
    center: CenterPeer, agent: AgentService
) -> None:
    """Held at its gate, then run on time: its user, its env, its output; its start is the
    exec instant (never before its second, never after the command's own clock)."""
    msg = early('id -un; echo "$GREETING"; date +%s%6N', env={"GREETING": "hi"})
    await center.send(msg)
    await held_pid(agent, msg)
    started = await center.expect(RunStarted, msg.ref.runid)
    finished = await center.expect(RunFinished, msg.ref.runid)
    user, greeting, own_clock_us = finished.output.decode().split("\n")[:3]
    assert (finished.status, user, greeting) == (statuses.SUCCESS, "nobody", "hi")
    assert msg.ref.sched_us <= started.start_us <= int(own_clock_us)
    assert finished.start_us == started.start_us
    assert agent.control.table.preparer.held == 0


async def test_the_gate_leaves_no_trace_in_the_environment(
    center: CenterPeer, agent: AgentService
) -> None:
    """A command (not a shell line) gets exactly the environment a spawn would give it."""
    msg = early("/usr/bin/env", env={"GREETING": "hi"})
    msg = dataclasses.replace(msg, spec=dataclasses.replace(msg.spec, shell=False))
    await center.send(msg)
    await held_pid(agent, msg)
    finished = await center.expect(RunFinished, msg.ref.runid)
    names = {line.split("=", 1)[0] for line in finished.output.decode().splitlines()}
    assert "GREETING" in names and "UNITEDCRON_RUNID" in names
    assert not names & {"PWD", "OLDPWD", "_", "SHLVL"}


async def test_a_run_killed_while_held_never_executes(
    center: CenterPeer, agent: AgentService, drop: Path
) -> None:
    """Killed at its gate: the process is gone, the run ends killed, the command never ran."""
    msg = early(f"touch {drop}/ran")
    await center.send(msg)
    pid = await held_pid(agent, msg)
    await center.send(Kill(epoch=1, task_id=msg.spec.task_id, runid=msg.ref.runid, reason="no"))
    finished = await center.expect(RunFinished, msg.ref.runid)
    assert (finished.status, finished.start_us) == (statuses.KILLED, 0)
    await wait_for(lambda: not alive(pid))
    await sentinel(center, msg)
    assert not (drop / "ran").exists()
    assert not [m for m in center.seen if isinstance(m, RunStarted) and m.ref == msg.ref]


async def test_a_run_replaced_while_held_runs_its_new_spec_only(
    center: CenterPeer, agent: AgentService, drop: Path
) -> None:
    """The rule changed within the window: the old process is discarded before exec."""
    old = early(f"touch {drop}/old", updated_us=1)
    await center.send(old)
    pid = await held_pid(agent, old)
    new = dataclasses.replace(
        old, spec=dataclasses.replace(old.spec, command=f"touch {drop}/new", updated_us=2)
    )
    await center.send(new)
    await wait_for(lambda: not alive(pid))
    finished = await center.expect(RunFinished, old.ref.runid)
    assert finished.status == statuses.SUCCESS, finished.output
    assert (drop / "new").exists()
    assert not (drop / "old").exists()


async def test_a_held_run_skipped_at_its_second_never_executes(
    center: CenterPeer, agent: AgentService, drop: Path
) -> None:
    """Its rule is still running at its second (overlap skip): the prepared process is
    discarded, not started."""
    busy = exec_msg("sleep 30", task_id=9)
    await center.send(busy)
    await center.expect(RunStarted, busy.ref.runid)
    msg = early(f"touch {drop}/ran", task_id=9)
    await center.send(msg)
    pid = await held_pid(agent, msg)
    finished = await center.expect(RunFinished, msg.ref.runid)
    assert finished.status == statuses.SKIPPED
    await wait_for(lambda: not alive(pid))
    await sentinel(center, msg)
    assert not (drop / "ran").exists()
    await center.send(Kill(epoch=1, task_id=9, runid=busy.ref.runid))
    await center.expect(RunFinished, busy.ref.runid)


async def test_a_held_process_that_died_is_replaced_by_a_spawn(
    center: CenterPeer, agent: AgentService, drop: Path
) -> None:
    """Something killed the process at its gate: the run still runs, spawned at its second."""
    msg = early(f"touch {drop}/ran")
    await center.send(msg)
    os.kill(await held_pid(agent, msg), signal.SIGKILL)
    finished = await center.expect(RunFinished, msg.ref.runid)
    assert finished.status == statuses.SUCCESS
    assert (drop / "ran").exists()
    assert held_starts(agent, "lost") == 1


def held_starts(agent: AgentService, how: str) -> float:
    return agent.metrics.held_starts.labels(how=how)._value.get()  # type: ignore[no-any-return]


async def test_a_failed_commit_never_opens_the_gate(
    center: CenterPeer, agent: AgentService, drop: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Its run id cannot be recorded at its second: its verdict went, but the gate never
    opens; the process is discarded unexecuted and the run ends failed."""
    msg = early(f"touch {drop}/ran", ahead_us=800_000)
    await center.send(msg)
    pid = await held_pid(agent, msg)
    assert agent._journal is not None
    outbox = agent._journal.outbox

    def refuse(*args: object, **kwargs: object) -> None:
        time.sleep(0.3)  # a slow failing disk (on the writer thread): time enough to exec
        raise sqlite3.OperationalError("disk I/O error")

    monkeypatch.setattr(outbox, "commit", refuse)
    await wait_for(lambda: time.time_ns() // 1000 > msg.ref.sched_us)
    await wait_for(lambda: not alive(pid))  # discarded once its commit failed
    assert msg.ref.runid not in agent.control.runs
    monkeypatch.undo()  # the disk is back: the outcome is recorded and sent
    finished = await center.expect(RunFinished, msg.ref.runid)
    assert finished.status == statuses.FAILED
    assert "agent cannot record the run" in finished.reason
    await sentinel(center, msg)
    assert not (drop / "ran").exists()
    assert not [m for m in center.seen if isinstance(m, RunStarted) and m.ref == msg.ref]


async def test_a_run_killed_before_its_commit_lands_never_executes(
    center: CenterPeer, agent: AgentService, drop: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Accepted at its second, its verdict sent, its run id still being written (a slow
    disk): a kill now means the gate must not open for it once the commit lands."""
    msg = early(f"touch {drop}/ran", ahead_us=800_000)
    await center.send(msg)
    pid = await held_pid(agent, msg)
    assert agent._journal is not None
    outbox = agent._journal.outbox
    commit = outbox.commit

    def slow(*args: object, **kwargs: object) -> object:
        time.sleep(0.3)  # on the writer thread: the kill below lands before this commit
        return commit(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(outbox, "commit", slow)
    await wait_for(lambda: msg.ref.runid in agent.control.runs)  # accepted, verdict sent
    await center.send(Kill(epoch=1, task_id=msg.spec.task_id, runid=msg.ref.runid, reason="no"))
    finished = await center.expect(RunFinished, msg.ref.runid)
    assert (finished.status, finished.start_us) == (statuses.KILLED, 0)
    await wait_for(lambda: not alive(pid))
    monkeypatch.undo()
    await sentinel(center, msg)
    assert not (drop / "ran").exists()
    assert not [m for m in center.seen if isinstance(m, RunStarted) and m.ref == msg.ref]
    assert held_starts(agent, "lost") == 0  # stopped, not a process that died at its gate


async def test_a_prepared_process_is_supervised_like_a_spawned_one(
    center: CenterPeer, agent: AgentService
) -> None:
    """Forked on a thread, watched through a pidfd: timeout, output and exit code as ever."""
    timed = early("echo out; exec sleep 30", timeout_s=0.5, kill_grace_s=0.5)
    failing = early("echo hi; exit 3", task_id=8)
    await center.send(timed, failing)
    pid = await held_pid(agent, timed)
    await held_pid(agent, failing)
    done = await center.expect(RunFinished, timed.ref.runid)
    assert (done.status, done.output, done.pid) == (statuses.TIMEOUT, b"out\n", pid)
    assert timed.ref.sched_us <= done.start_us
    await wait_for(lambda: not alive(pid))
    bad = await center.expect(RunFinished, failing.ref.runid)
    assert (bad.status, bad.code, bad.output) == (statuses.FAILED, 3, b"hi\n")
    assert bad.reason == "exited with code 3"
    assert held_starts(agent, "prepared") == 2


async def test_a_prepared_process_inherits_nothing_else(
    center: CenterPeer, agent: AgentService
) -> None:
    """Forked on a thread while the agent has connections, sockets and pipes open: the held
    process has its go pipe, its output pipe and its verdict socket, nothing more."""
    msg = early("true")
    await center.send(msg)
    pid = await held_pid(agent, msg)
    fds = {name: os.readlink(f"/proc/{pid}/fd/{name}") for name in os.listdir(f"/proc/{pid}/fd")}
    assert sorted(fds) == ["0", "1", "2"], fds
    assert [fds[n].split(":")[0] for n in "012"] == ["pipe", "pipe", "socket"]
    await center.expect(RunFinished, msg.ref.runid)


async def test_a_prepared_runs_output_is_streamed_live(
    center: CenterPeer, agent: AgentService
) -> None:
    """Its output reaches the center while it runs, as a spawned run's does."""
    msg = early("echo first; exec sleep 30")
    await center.send(msg)
    await held_pid(agent, msg)
    chunk = await center.expect(RunOutput, msg.ref.runid)
    assert (chunk.offset, chunk.data) == (0, b"first\n")
    await center.send(Kill(epoch=1, task_id=msg.spec.task_id, runid=msg.ref.runid))
    finished = await center.expect(RunFinished, msg.ref.runid)
    assert (finished.status, finished.output) == (statuses.KILLED, b"first\n")


@pytest.mark.parametrize("go_filled", [False, True])
def test_a_verdict_alone_never_execs(drop: Path, go_filled: bool) -> None:
    """The agent dying between a verdict and the go (its pipe closed, not filled): the shell
    exits without running anything. Both given: it runs, stamping its exec."""
    read_fd, write_fd = os.pipe()
    ours, theirs = verdict_socket()
    ours.setblocking(True)
    with subprocess.Popen(
        [*gate_argv(keep_pwd=False), "/usr/bin/touch", f"{drop}/ran"],
        stdin=read_fd,
        stdout=subprocess.DEVNULL,
        stderr=theirs.fileno(),
    ) as proc:
        os.close(read_fd)
        theirs.close()
        ours.send(b"\n")
        if go_filled:
            os.write(write_fd, b"\n")
        os.close(write_fd)
        assert proc.wait(timeout=10) == (0 if go_filled else 125)
    assert (exec_stamp(ours) is not None) == go_filled == (drop / "ran").exists()
    ours.close()


@pytest.fixture
async def stoppable(make_config: Callable[..., AgentConfig]) -> AsyncIterator[AgentService]:
    async with running(make_config()) as service:
        yield service


async def test_held_processes_die_with_the_agent_unexecuted(
    stoppable: AgentService, drop: Path
) -> None:
    """An agent stopped while holding kills its held processes: none runs its command."""
    peer = await CenterPeer.connect(stoppable.port)
    try:
        assert isinstance(await peer.recv(), AgentState)
        msg = early(f"touch {drop}/ran", ahead_us=1_000_000)
        await peer.send(msg)
        pid = await held_pid(stoppable, msg)
    finally:
        await peer.close()
    await stoppable.stop()
    await wait_for(lambda: not alive(pid))  # dead before its second: it can never exec now
    assert time.time_ns() // 1000 < msg.ref.sched_us
    assert not (drop / "ran").exists()


async def test_preparing_off_still_starts_on_time(
    make_config: Callable[..., AgentConfig],
) -> None:
    """UNITEDCRON_AGENT_PREPARE_MAX=0: nothing is held, the run spawns at its second."""
    async with running(make_config(agent_prepare_max=0)) as service:
        peer = await CenterPeer.connect(service.port)
        try:
            assert isinstance(await peer.recv(), AgentState)
            msg = early("true", ahead_us=300_000)
            await peer.send(msg)
            started = await peer.expect(RunStarted, msg.ref.runid)
            assert started.start_us >= msg.ref.sched_us
            assert service.control.table.preparer.held == 0
            await peer.expect(RunFinished, msg.ref.runid)
        finally:
            await peer.close()


@pytest.mark.parametrize(
    ("now_us", "due_us", "held", "max_held", "expected"),
    [
        (0, 1_000_000, 0, 10, (PrepareStep.PREPARE, 0)),  # inside the window
        (0, 2_000_000, 0, 10, (PrepareStep.PREPARE, 0)),  # exactly the window
        (0, 5_000_000, 0, 10, (PrepareStep.WAIT, 3_000_000)),  # too early: come back
        (0, PREPARE_MIN_LEAD_US - 1, 0, 10, (PrepareStep.SPAWN, 0)),  # too late to help
        (0, PREPARE_MIN_LEAD_US, 0, 10, (PrepareStep.PREPARE, 0)),
        (0, 1_000_000, 10, 10, (PrepareStep.SPAWN, 0)),  # full: spawned at its second
        (0, 5_000_000, 10, 10, (PrepareStep.WAIT, 3_000_000)),  # full now, maybe not then
        (0, 1_000_000, 0, 0, (PrepareStep.SPAWN, 0)),  # preparing off
        (3_000_000, 1_000_000, 0, 10, (PrepareStep.SPAWN, 0)),  # already due
    ],
)
def test_decide_prepare(
    now_us: int, due_us: int, held: int, max_held: int, expected: tuple[PrepareStep, int]
) -> None:
    assert decide_prepare(now_us, due_us, 2_000_000, held, max_held) == expected


def test_decide_prepare_without_a_window() -> None:
    assert decide_prepare(0, 1_000_000, 0, 0, 10) == (PrepareStep.SPAWN, 0)


@pytest.mark.parametrize(
    ("cwd", "rule_env", "tail"),
    [
        ("/", False, ["/bin/sh", "-c", GATE_SCRIPT, "sh", "0", "/bin/true", "x"]),
        ("/tmp", True, ["/bin/sh", "-c", GATE_SCRIPT, "sh", "0", "/bin/true", "x"]),
    ],
)
def test_the_gate_goes_right_before_the_command(cwd: str, rule_env: bool, tail: list[str]) -> None:
    """After the drop, the limits, the directory and the environment: only exec is left."""
    argv, _ = post_drop_argv(
        UserSwitch("setpriv"),
        cwd,
        {"A": "1"},
        ["/bin/true", "x"],
        Rlimits(nofile=64),
        rule_env=rule_env,
        gate=gate_argv(keep_pwd=False),
    )
    assert argv[0] == "/usr/bin/prlimit"
    assert argv[-len(tail) :] == tail
    assert ("/usr/bin/env" in argv) == (cwd != "/" or rule_env)
    assert fd_room(20_000) == (20_000 - 256) // 3 and fd_room(100) == 0
