"""`python -m agent` as a real process: settings errors, startup, and SIGTERM shutdown."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
from pathlib import Path

from protocol.messages import AgentState, RunFinished, RunStarted
from tests.agent.peer import (
    CenterPeer,
    daemon_spec,
    exec_msg,
    processes_running,
    session_members,
    wait_for,
    wanted,
)
from tests.agent.procs import REPO, START_S, agent_env, start_agent, wait_started


async def test_bad_setting_exits_2_naming_it(tmp_path: Path) -> None:
    """A bad UNITEDCRON_AGENT_LISTEN exits 2 with one stderr line naming the variable."""
    proc = await start_agent(tmp_path, UNITEDCRON_AGENT_LISTEN="abc")
    async with asyncio.timeout(START_S):
        _, stderr = await proc.communicate()
    assert proc.returncode == 2
    lines = stderr.decode().splitlines()
    assert len(lines) == 1 and "UNITEDCRON_AGENT_LISTEN" in lines[0] and "abc" in lines[0]


async def test_missing_secret_exits_2(tmp_path: Path) -> None:
    """Without UNITEDCRON_SECRET the agent refuses to start, naming the variable."""
    env = agent_env(tmp_path)
    del env["UNITEDCRON_SECRET"]
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "agent",
        cwd=REPO,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    async with asyncio.timeout(START_S):
        _, stderr = await proc.communicate()
    assert proc.returncode == 2
    assert "UNITEDCRON_SECRET" in stderr.decode() and len(stderr.decode().splitlines()) == 1


async def test_sigterm_exits_cleanly(tmp_path: Path) -> None:
    """SIGTERM stops a serving agent with exit code 0 within its grace."""
    proc = await start_agent(tmp_path)
    try:
        started = await wait_started(proc)
        peer = await CenterPeer.connect(int(started["port"]))  # type: ignore[call-overload]
        assert isinstance(await peer.recv(), AgentState)
        await peer.close()
        proc.send_signal(signal.SIGTERM)
        async with asyncio.timeout(5.0):
            await proc.communicate()
        assert proc.returncode == 0
    finally:
        if proc.returncode is None:
            proc.kill()
            async with asyncio.timeout(START_S):
                await proc.wait()


async def test_sigterm_stops_running_jobs_and_keeps_result(tmp_path: Path) -> None:
    """A job still running at SIGTERM is stopped after the grace; its `killed` result is kept
    in the outbox and sent by the next agent on the same state directory."""
    proc = await start_agent(tmp_path)
    try:
        started = await wait_started(proc)
        peer = await CenterPeer.connect(int(started["port"]))  # type: ignore[call-overload]
        msg = exec_msg("/bin/sleep 300")
        await peer.send(msg)
        run = await peer.expect(RunStarted, msg.ref.runid)
        await peer.close()
        proc.send_signal(signal.SIGTERM)
        async with asyncio.timeout(10.0):
            await proc.communicate()
        assert proc.returncode == 0
    finally:
        if proc.returncode is None:
            proc.kill()
            async with asyncio.timeout(START_S):
                await proc.wait()
    try:
        os.kill(run.pid, 0)
        raise AssertionError("the job outlived the agent")
    except ProcessLookupError:
        pass
    proc = await start_agent(tmp_path)
    try:
        started = await wait_started(proc)
        peer = await CenterPeer.connect(int(started["port"]))  # type: ignore[call-overload]
        finished = await peer.expect(RunFinished, msg.ref.runid)
        assert finished.status == "killed" and finished.reason == "agent shut down"
        await peer.close()
    finally:
        proc.send_signal(signal.SIGTERM)
        async with asyncio.timeout(10.0):
            await proc.communicate()


async def test_second_signal_forces_exit(tmp_path: Path) -> None:
    """A second SIGTERM skips the grace: running jobs are killed at once and the agent exits."""
    proc = await start_agent(tmp_path, UNITEDCRON_AGENT_KILL_GRACE_S="60")
    try:
        started = await wait_started(proc)
        peer = await CenterPeer.connect(int(started["port"]))  # type: ignore[call-overload]
        msg = exec_msg("/bin/sleep 300")
        await peer.send(msg)
        run = await peer.expect(RunStarted, msg.ref.runid)
        await peer.close()
        proc.send_signal(signal.SIGTERM)
        assert proc.stderr is not None
        async with asyncio.timeout(5.0):
            while b"agent.stopping" not in await proc.stderr.readline():
                pass
        proc.send_signal(signal.SIGTERM)
        async with asyncio.timeout(5.0):
            await proc.communicate()
        assert proc.returncode == 0
    finally:
        if proc.returncode is None:
            proc.kill()
            async with asyncio.timeout(START_S):
                await proc.wait()
    try:
        os.kill(run.pid, 0)
        raise AssertionError("the job outlived the agent")
    except ProcessLookupError:
        pass


async def test_port_in_use_exits_1(tmp_path: Path) -> None:
    """An agent that cannot bind its port exits 1 with one `agent.start_failed` line."""
    holder = await asyncio.start_server(lambda r, w: None, "127.0.0.1", 0)
    port = holder.sockets[0].getsockname()[1]
    try:
        proc = await start_agent(tmp_path, UNITEDCRON_AGENT_LISTEN=f"127.0.0.1:{port}")
        async with asyncio.timeout(START_S):
            _, stderr = await proc.communicate()
    finally:
        holder.close()
    assert proc.returncode == 1
    failed = [json.loads(line) for line in stderr.splitlines() if b"agent.start_failed" in line]
    assert len(failed) == 1 and "address already in use" in failed[0]["error"]


async def test_sigterm_stops_daemons_and_next_start_restores_them(tmp_path: Path) -> None:
    """SIGTERM stops a daemon at once (no one-shot grace); the next agent process on the same
    state directory starts it again before any center connects."""
    proc = await start_agent(tmp_path, UNITEDCRON_AGENT_KILL_GRACE_S="30")
    try:
        started = await wait_started(proc)
        peer = await CenterPeer.connect(int(started["port"]))  # type: ignore[call-overload]
        await peer.send(wanted(daemon_spec("/bin/sleep 3101")))
        first = await peer.expect(RunStarted)
        await peer.close()
        proc.send_signal(signal.SIGTERM)
        async with asyncio.timeout(5.0):  # far below the 30 s one-shot grace
            await proc.communicate()
        assert proc.returncode == 0 and session_members(first.pid) == []
    finally:
        if proc.returncode is None:
            proc.kill()
            async with asyncio.timeout(START_S):
                await proc.wait()
    proc = await start_agent(tmp_path)
    try:
        await wait_started(proc)
        await wait_for(lambda: len(processes_running("/bin/sleep", "3101")) == 1)
    finally:
        proc.send_signal(signal.SIGTERM)
        async with asyncio.timeout(10.0):
            await proc.communicate()
    assert processes_running("/bin/sleep", "3101") == []


async def test_sigterm_with_a_center_connected_logs_json_only(tmp_path: Path) -> None:
    """SIGTERM while a center is connected and a job runs: every line the agent writes is one
    JSON object (no traceback of the cancelled connection)."""
    proc = await start_agent(tmp_path)
    try:
        started = await wait_started(proc)
        peer = await CenterPeer.connect(int(started["port"]))  # type: ignore[call-overload]
        msg = exec_msg("/bin/sleep 300")
        await peer.send(msg)
        await peer.expect(RunStarted, msg.ref.runid)
        proc.send_signal(signal.SIGTERM)
        async with asyncio.timeout(10.0):
            out, err = await proc.communicate()
        await peer.close()
    finally:
        if proc.returncode is None:
            proc.kill()
            async with asyncio.timeout(START_S):
                await proc.wait()
    assert proc.returncode == 0
    lines = [line for line in (out + err).decode().splitlines() if line.strip()]
    assert lines and all(isinstance(json.loads(line), dict) for line in lines), lines[:5]
