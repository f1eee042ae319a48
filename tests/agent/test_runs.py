"""One-shot runs end to end: a test center sends exec over the real protocol to a real agent."""

from __future__ import annotations

import os
import signal
from collections.abc import Callable
from pathlib import Path

import pytest

from agent.config import AgentConfig
from protocol import statuses
from protocol.messages import Kill, RunFinished, RunStarted
from tests.agent.peer import CenterPeer, exec_msg, running, session_members, wait_for

NOBODY = 65534


@pytest.fixture(params=["setpriv", "fork"])
def make_config(
    request: pytest.FixtureRequest, make_config: Callable[..., AgentConfig]
) -> Callable[..., AgentConfig]:
    """Every agent of these tests once per user-switch method: both must behave alike."""

    def make(**overrides: object) -> AgentConfig:
        return make_config(**{"agent_user_switch": request.param, **overrides})

    return make


async def test_id_runs_as_nobody(center: CenterPeer) -> None:
    """`id -un` with run_user nobody reports started then success, as uid/gid 65534."""
    msg = exec_msg("/usr/bin/id -un")
    await center.send(msg)
    started = await center.expect(RunStarted, msg.ref.runid)
    finished = await center.expect(RunFinished, msg.ref.runid)
    assert (started.run_user, started.uid, started.gid) == ("nobody", NOBODY, NOBODY)
    assert started.pid > 0 and started.start_us > 0
    assert finished.status == statuses.SUCCESS
    assert finished.code == 0 and finished.signal is None
    assert finished.output == b"nobody\n"
    assert finished.output_bytes == 7 and not finished.truncated
    assert (finished.uid, finished.gid, finished.pid) == (NOBODY, NOBODY, started.pid)
    assert finished.seq > started.seq
    assert finished.end_us >= finished.start_us == started.start_us


async def test_no_root_group_kept(center: CenterPeer) -> None:
    """The run's groups are exactly nobody's: root's supplementary groups are dropped."""
    finished = await center.run(exec_msg("/usr/bin/id -G"))
    assert finished.output == b"65534\n"


async def test_clean_environment(center: CenterPeer) -> None:
    """The run sees a clean environment with its identity, never the agent's own variables."""
    os.environ["AGENT_PRIVATE_VALUE"] = "leak"
    try:
        msg = exec_msg("/usr/bin/env", shard=(2, 5), env={"EXTRA": "x", "LANG": "C"})
        finished = await center.run(msg)
    finally:
        del os.environ["AGENT_PRIVATE_VALUE"]
    env = dict(line.split("=", 1) for line in finished.output.decode().splitlines())
    assert env["USER"] == env["LOGNAME"] == "nobody"
    assert env["HOME"] == "/nonexistent" and env["SHELL"] == "/usr/sbin/nologin"
    assert env["PATH"] == "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
    assert env["UNITEDCRON_RUNID"] == msg.ref.runid
    assert env["UNITEDCRON_TASK_ID"] == "7"
    assert env["UNITEDCRON_SHARD_INDEX"] == "2" and env["UNITEDCRON_SHARD_TOTAL"] == "5"
    assert env["EXTRA"] == "x" and env["LANG"] == "C"
    assert "AGENT_PRIVATE_VALUE" not in env
    assert not any("secret" in k.lower() for k in env)


async def test_cwd_falls_back_to_root(center: CenterPeer) -> None:
    """A user whose home does not exist runs in `/`; a given cwd is used as is."""
    assert (await center.run(exec_msg("/bin/pwd"))).output == b"/\n"
    assert (await center.run(exec_msg("/bin/pwd", cwd="/tmp"))).output == b"/tmp\n"


@pytest.mark.parametrize(
    ("overrides", "reason"),
    [
        ({"run_user": "no-such-user-x"}, "run_user 'no-such-user-x': no such user on this agent"),
        ({"run_user": "root"}, "UNITEDCRON_AGENT_ALLOW_ROOT=true"),
        ({"run_user": ""}, "run_user is empty"),
        ({"command": "/nonexistent/prog"}, "command '/nonexistent/prog': not found"),
        ({"command": "no-such-command-xyz --flag"}, "command 'no-such-command-xyz': not found"),
        ({"command": "/etc/passwd"}, "command '/etc/passwd': permission denied"),
        ({"command": 'echo "unterminated'}, "cannot be split like a shell would"),
        ({"command": "   "}, "command is empty"),
        ({"cwd": "/no/such/dir"}, "cwd '/no/such/dir': no such directory"),
    ],
)
async def test_refused_or_unstartable(center: CenterPeer, overrides: dict, reason: str) -> None:
    """A run that cannot start ends `failed` with a reason naming why, and never starts."""
    kwargs = {"command": "/usr/bin/true", **overrides}
    msg = exec_msg(**kwargs)
    await center.send(msg)
    first = await center.expect(RunFinished | RunStarted, msg.ref.runid)
    assert isinstance(first, RunFinished)
    assert first.status == statuses.FAILED
    assert reason in first.reason
    assert first.start_us == 0 and first.pid == 0


async def test_unreadable_cwd(center: CenterPeer, tmp_path: Path) -> None:
    """A cwd the run's user may not enter fails the run with a reason naming the cwd."""
    private = tmp_path / "private"
    private.mkdir(mode=0o700)
    finished = await center.run(exec_msg("/usr/bin/true", cwd=str(private)))
    assert finished.status == statuses.FAILED
    assert finished.reason == f"cwd {str(private)!r}: permission denied for user 'nobody'"


async def test_exit_code(center: CenterPeer) -> None:
    """A non-zero exit is `failed` with the code."""
    finished = await center.run(exec_msg("/bin/sh -c 'exit 3'"))
    assert (finished.status, finished.code, finished.signal) == (statuses.FAILED, 3, None)
    assert finished.reason == "exited with code 3"


async def test_killed_by_signal(center: CenterPeer) -> None:
    """A process that dies of a signal nobody asked for is `failed` with the signal."""
    finished = await center.run(exec_msg("kill -9 $$", shell=True))
    assert (finished.status, finished.code, finished.signal) == (statuses.FAILED, None, 9)
    assert "SIGKILL" in finished.reason


async def test_timeout_kills_process_group(center: CenterPeer) -> None:
    """On timeout the whole process group goes, a background grandchild included."""
    msg = exec_msg("sleep 300 & sleep 300", shell=True, timeout_s=0.5, kill_grace_s=1.0)
    await center.send(msg)
    started = await center.expect(RunStarted, msg.ref.runid)
    await wait_for(lambda: len(session_members(started.pid)) >= 2, 0.4)  # sh plus the sleeps
    finished = await center.expect(RunFinished, msg.ref.runid)
    assert finished.status == statuses.TIMEOUT
    assert finished.reason == "timed out after 0.5 s"
    assert finished.signal == 15
    assert session_members(started.pid) == []


async def test_timeout_kills_a_process_ignoring_term(center: CenterPeer) -> None:
    """A process that ignores SIGTERM is killed after the kill grace."""
    msg = exec_msg("trap '' TERM; sleep 300 & wait", shell=True, timeout_s=0.5, kill_grace_s=0.3)
    await center.send(msg)
    started = await center.expect(RunStarted, msg.ref.runid)
    finished = await center.expect(RunFinished, msg.ref.runid)
    assert finished.status == statuses.TIMEOUT and finished.signal == 9
    assert session_members(started.pid) == []


async def test_kill_one_run(center: CenterPeer) -> None:
    """Kill with a runid stops that run: status `killed` with the reason given."""
    msg = exec_msg("/bin/sleep 300")
    await center.send(msg)
    started = await center.expect(RunStarted, msg.ref.runid)
    await center.send(Kill(epoch=1, task_id=7, runid=msg.ref.runid, reason="operator said so"))
    finished = await center.expect(RunFinished, msg.ref.runid)
    assert (finished.status, finished.reason) == (statuses.KILLED, "operator said so")
    assert finished.signal == 15
    assert session_members(started.pid) == []


async def test_overlap_skip_and_kill_all_of_rule(center: CenterPeer) -> None:
    """At process_num the next run is skipped; Kill without runid stops every run of the rule."""
    first, second, third = (exec_msg("/bin/sleep 300", process_num=2) for _ in range(3))
    await center.send(first, second, third)
    skipped = await center.expect(RunFinished, third.ref.runid)
    assert skipped.status == statuses.SKIPPED
    assert skipped.reason == "2 runs of rule 7 already running (process_num=2)"
    await center.expect(RunStarted, first.ref.runid)
    await center.send(Kill(epoch=1, task_id=7))
    for msg in (first, second):
        finished = await center.expect(RunFinished, msg.ref.runid)
        assert finished.status == statuses.KILLED


async def test_repeated_exec_starts_one_process(center: CenterPeer) -> None:
    """The same runid sent three times (twice in one write) starts one process."""
    msg = exec_msg("/usr/bin/id -u")
    await center.send(msg, msg)
    await center.expect(RunFinished, msg.ref.runid)
    await center.send(msg)
    await center.sync(epoch=1)
    runs = [m for m in center.seen if getattr(m, "ref", None) == msg.ref]
    assert [type(m) for m in runs] == [RunStarted, RunFinished]


async def test_output_cap_keeps_head_tail_and_size(center: CenterPeer) -> None:
    """Output above the cap keeps its head and tail and reports the true size."""
    command = "printf HEAD; head -c 100000 /dev/zero; printf TAIL"
    finished = await center.run(exec_msg(command, shell=True, output_max_bytes=1000))
    assert finished.truncated and finished.output_bytes == 100_008
    assert finished.output.startswith(b"HEAD" + b"\0" * 496)
    assert finished.output.endswith(b"\0" * 496 + b"TAIL")
    assert b"\n[... 99008 bytes skipped ...]\n" in finished.output
    assert len(finished.output) == 1000 + len(b"\n[... 99008 bytes skipped ...]\n")


async def test_huge_output_is_counted_not_kept(center: CenterPeer) -> None:
    """50 MB of output is counted exactly while only the capped head and tail are kept."""
    msg = exec_msg("/usr/bin/head -c 50000000 /dev/zero", output_max_bytes=4096)
    finished = await center.run(msg, timeout_s=60)
    assert finished.status == statuses.SUCCESS
    assert finished.output_bytes == 50_000_000 and finished.truncated
    assert len(finished.output) < 4096 + 64


async def test_allow_root_and_allowed_users(make_config) -> None:
    """With allow_root a rule may run as root; a user outside allowed_users is refused."""
    config = make_config(agent_allow_root=True, agent_allowed_users="root,daemon")
    async with running(config) as agent:
        peer = await CenterPeer.connect(agent.port)
        try:
            as_root = await peer.run(exec_msg("/usr/bin/id -u", run_user="root"))
            assert (as_root.status, as_root.output, as_root.uid) == ("success", b"0\n", 0)
            refused = await peer.run(exec_msg("/usr/bin/id -u", run_user="nobody"))
            assert refused.status == statuses.FAILED
            assert "not in this agent's UNITEDCRON_AGENT_ALLOWED_USERS (root, daemon)" in (
                refused.reason
            )
        finally:
            await peer.close()


async def test_relative_cwd_refused(center: CenterPeer) -> None:
    """A relative cwd is refused rather than resolved against the agent's own cwd."""
    finished = await center.run(exec_msg("/usr/bin/true", cwd="tmp"))
    assert finished.reason == "cwd 'tmp': must be an absolute path"


async def test_background_child_does_not_hold_the_run(center: CenterPeer) -> None:
    """A run ends when its main process exits, even if a background child keeps stdout open."""
    msg = exec_msg("sleep 300 & echo done", shell=True)
    await center.send(msg)
    started = await center.expect(RunStarted, msg.ref.runid)
    try:
        finished = await center.expect(RunFinished, msg.ref.runid, timeout_s=5)
        assert (finished.status, finished.output) == (statuses.SUCCESS, b"done\n")
        assert finished.end_us - finished.start_us < 3_000_000
    finally:
        os.killpg(started.pid, signal.SIGKILL)
