"""Agents as real `python -m agent` processes, configured through the environment."""

from __future__ import annotations

import asyncio
import json
import os
import sys
from pathlib import Path

from protocol.messages import RunFinished
from tests.agent.peer import SECRET, CenterPeer

REPO = Path(__file__).resolve().parents[2]
START_S = 20.0


def agent_env(tmp_path: Path, **settings: str) -> dict[str, str]:
    """A clean environment for an agent process: test settings, then `settings`."""
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "UNITEDCRON_SECRET": SECRET,
        "UNITEDCRON_AGENT_LISTEN": "127.0.0.1:0",
        "UNITEDCRON_AGENT_CENTER": "127.0.0.1:1",
        "UNITEDCRON_AGENT_STATE_DIR": str(tmp_path / "state"),
        "UNITEDCRON_AGENT_KILL_GRACE_S": "1",
        "UNITEDCRON_LOG_FORMAT": "json",
        "UNITEDCRON_AGENT_METRICS_LISTEN": "",
        "UNITEDCRON_INSECURE_PLAINTEXT": "true",  # the test plays a plain-text center
    }
    env.update(settings)
    return env


async def start_agent(tmp_path: Path, **settings: str) -> asyncio.subprocess.Process:
    """`python -m agent` with its state in `tmp_path`, JSON logs on its stderr pipe."""
    return await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "agent",
        cwd=REPO,
        env=agent_env(tmp_path, **settings),
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )


async def wait_started(
    proc: asyncio.subprocess.Process, seen: list[dict[str, object]] | None = None
) -> dict[str, object]:
    """Read JSON log lines until agent.started; return it (and the lines before to `seen`)."""
    assert proc.stderr is not None
    async with asyncio.timeout(START_S):
        while True:
            line = await proc.stderr.readline()
            assert line, "the agent exited before it started"
            event = json.loads(line)
            if seen is not None:
                seen.append(event)
            if event["event"] == "agent.started":
                return event  # type: ignore[no-any-return]


async def stop_agent(proc: asyncio.subprocess.Process) -> None:
    """SIGTERM and wait (bounded); SIGKILL if it does not go."""
    if proc.returncode is None:
        proc.terminate()
    try:
        async with asyncio.timeout(START_S):
            await proc.communicate()
    except TimeoutError:
        proc.kill()
        async with asyncio.timeout(START_S):
            await proc.wait()


async def kill_agent(proc: asyncio.subprocess.Process) -> None:
    """kill -9 of the agent (a crash: nothing of its own shutdown runs), then wait for it."""
    proc.kill()
    async with asyncio.timeout(START_S):
        await proc.communicate()


async def finish_at_restart(tmp_path: Path, runid: str) -> RunFinished:
    """Start an agent on the state directory a killed one left and return the RunFinished it
    sends for `runid` (then stop it)."""
    proc = await start_agent(tmp_path)
    try:
        port = int((await wait_started(proc))["port"])  # type: ignore[call-overload]
        peer = await CenterPeer.connect(port)
        try:
            finished: RunFinished = await peer.expect(RunFinished, runid)
        finally:
            await peer.close()
    finally:
        await stop_agent(proc)
    return finished
