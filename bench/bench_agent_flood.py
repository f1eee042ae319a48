"""RSS of a real agent process (`python -m agent`) while one run writes 1 GB of output.

Run as root with `.venv/bin/python bench/bench_agent_flood.py [BYTES]` (default 10**9). Starts
an agent process, sends it one exec of `head -c BYTES /dev/zero` as nobody over a real
connection, samples the agent's RSS every 20 ms until the run_finished arrives, and prints the
RSS before, the peak, the time taken, and what the result kept. Prints figures, asserts nothing.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import psutil

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from protocol.messages import Exec, RunFinished, RunOutput, RunRef, RunSpec
from protocol.stream import Connection, open_handshake

SECRET = "bench-cluster-secret-0123456789"
REPO = Path(__file__).resolve().parent.parent
MIB = 1 << 20


_DRAINS: set[asyncio.Future[None]] = set()


async def start_agent(state_dir: str) -> tuple[asyncio.subprocess.Process, int]:
    """A `python -m agent` process on a free port; returns it and its port."""
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "UNITEDCRON_SECRET": SECRET,
        "UNITEDCRON_INSECURE_PLAINTEXT": "true",  # this benchmark plays a plain-text center
        "UNITEDCRON_AGENT_LISTEN": "127.0.0.1:0",
        "UNITEDCRON_AGENT_CENTER": "127.0.0.1:1",
        "UNITEDCRON_AGENT_STATE_DIR": state_dir,
        "UNITEDCRON_LOG_FORMAT": "json",
        "UNITEDCRON_AGENT_REGISTER_INTERVAL_S": "3600",
    }
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "agent",
        cwd=REPO,
        env=env,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
    )
    assert proc.stderr is not None
    while True:
        line = await proc.stderr.readline()
        if not line:
            raise SystemExit("the agent exited before it started")
        event = json.loads(line)
        if event["event"] == "agent.started":
            _DRAINS.add(asyncio.ensure_future(_drain(proc.stderr)))  # its logs must not block it
            return proc, int(event["port"])


async def _drain(stream: asyncio.StreamReader) -> None:
    while await stream.readline():
        pass


async def flood(port: int, agent_pid: int, size: int) -> None:
    """One flooding run; print the agent's RSS figures around it."""
    agent = psutil.Process(agent_pid)
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    conn = Connection(reader, writer)
    await open_handshake(conn, (SECRET.encode(),), role="center", name="bench")
    await conn.recv()  # AgentState
    before = peak = agent.memory_info().rss
    spec = RunSpec(task_id=1, command=f"head -c {size} /dev/zero", run_user="nobody")
    ref = RunRef(runid="flood-1", task_id=1, sched_us=time.time_ns() // 1000)
    conn.send(Exec(epoch=1, ref=ref, spec=spec))
    await conn.drain()
    began, live = time.perf_counter(), 0
    recv = asyncio.ensure_future(conn.recv())
    while True:
        done, _ = await asyncio.wait({recv}, timeout=0.02)
        peak = max(peak, agent.memory_info().rss)
        if not done:
            continue
        message = recv.result()
        if isinstance(message, RunOutput):
            live += len(message.data)
        if isinstance(message, RunFinished):
            break
        recv = asyncio.ensure_future(conn.recv())
    took_s = time.perf_counter() - began
    await conn.close()
    print(
        f"{size / 1e9:g} GB of output in {took_s:.1f} s: agent RSS {before / MIB:.1f} MiB "
        f"before, peak {peak / MIB:.1f} MiB (+{(peak - before) / MIB:.1f} MiB)"
    )
    print(
        f"  result: status {message.status}, output_bytes {message.output_bytes}, truncated "
        f"{message.truncated}, {len(message.output)} bytes kept; {live} bytes sent live"
    )


async def main(size: int) -> None:
    with tempfile.TemporaryDirectory() as state_dir:
        proc, port = await start_agent(state_dir)
        try:
            await flood(port, proc.pid, size)
        finally:
            proc.terminate()
            await proc.wait()


if __name__ == "__main__":
    if os.geteuid() != 0:
        raise SystemExit("run as root: the agent switches to nobody for the run")
    asyncio.run(main(int(sys.argv[1]) if len(sys.argv) > 1 else 10**9))
