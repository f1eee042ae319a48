"""Spawn throughput of one agent, against raw asyncio subprocess spawns measured in the same run.

Run as root with `.venv/bin/python bench/bench_agent_spawn.py [N [ROUNDS]]` (500 and 3). Each
figure is the best of a few interleaved rounds (a busy moment of the machine hurts every figure
alike) of N runs of `/bin/true`, all sent at once (one rule with overlap `parallel` and
process_num N) over a real authenticated connection, timed from the first exec to the last
run_finished. The agents are real `python -m agent` processes (INFO logs to /dev/null): as
nobody through setpriv (the default), as nobody through CPython's fork
(`UNITEDCRON_AGENT_USER_SWITCH=fork`, the method before), and without a user switch (the agent
believes it is not root). The baselines run in this process: `asyncio.create_subprocess_exec`
of the same command with the same options (own session, piped output), N at once, on Python's
default child watcher: without a user switch, with user=/group=/extra_groups=, and through
setpriv. Prints figures, asserts nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import os
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from protocol.messages import Ack, Exec, RunFinished, RunRef, RunSpec
from protocol.stream import Connection, open_handshake

REPO = Path(__file__).resolve().parent.parent
ROUNDS = 3
SECRET = "bench-cluster-secret-0123456789"
NOBODY = 65534
SETPRIV = "/usr/bin/setpriv"
START_S = 30.0
# The agent believes it runs as an ordinary user: it spawns without dropping privileges (the
# child stays root), which is exactly the cost without the user switch.
NO_SWITCH = (
    "import agent.service as s; from agent.runspec import Account; "
    "s.own_account = lambda: Account('bench', 1000, 1000, '/', '/bin/sh', ()); "
    "from agent.__main__ import main; raise SystemExit(main())"
)
_runids = itertools.count(1)


async def raw_rate(n: int, switch: str) -> float:
    """Runs per second of plain create_subprocess_exec + wait, n at once; `switch` is `none`,
    `user=` (CPython's user=/group=/extra_groups=) or `setpriv` (exec through setpriv)."""
    kwargs: dict[str, Any] = {
        "stdin": subprocess.DEVNULL,
        "stdout": subprocess.PIPE,
        "stderr": subprocess.STDOUT,
        "start_new_session": True,
    }
    argv = ["/bin/true"]
    if switch == "user=":
        kwargs.update(user=NOBODY, group=NOBODY, extra_groups=[NOBODY])
    elif switch == "setpriv":
        argv = [
            SETPRIV,
            f"--reuid={NOBODY}",
            f"--regid={NOBODY}",
            f"--groups={NOBODY}",
            "--inh-caps=-all",
            "--",
            "/bin/true",
        ]

    async def one() -> None:
        proc = await asyncio.create_subprocess_exec(*argv, **kwargs)
        await proc.communicate()

    began = time.perf_counter()
    await asyncio.gather(*(one() for _ in range(n)))
    return n / (time.perf_counter() - began)


def _exec(n: int, run_user: str) -> Exec:
    ref = RunRef(runid=f"bench-{next(_runids)}", task_id=1, sched_us=time.time_ns() // 1000)
    spec = RunSpec(
        task_id=1, command="/bin/true", run_user=run_user, process_num=n, overlap="parallel"
    )
    return Exec(epoch=1, ref=ref, spec=spec)


async def agent_rate(port: int, n: int, run_user: str) -> float:
    """Runs per second through the agent: n execs in one write, until n run_finished."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    conn = Connection(reader, writer)
    try:
        await open_handshake(conn, (SECRET.encode(),), role="center", name="bench")
        await conn.recv()  # AgentState
        began = time.perf_counter()
        conn.send_many([_exec(n, run_user) for _ in range(n)])
        await conn.drain()
        done, seqs = 0, []
        while done < n:
            message = await conn.recv()
            if isinstance(message, RunFinished):
                done += 1
                if message.status != "success":
                    raise RuntimeError(f"run failed: {message.reason}")
            if hasattr(message, "seq"):
                seqs.append(message.seq)
        elapsed = time.perf_counter() - began
        conn.send(Ack(seqs=seqs))
        await conn.drain()
        return n / elapsed
    finally:
        await conn.close()


def free_port() -> int:
    """A port nobody listens on now (the agent binds it right after)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextlib.asynccontextmanager
async def agent_process(method: str) -> AsyncIterator[int]:
    """A `python -m agent` switching users by `method` (`none`: no switch); yields its port."""
    port = free_port()
    with tempfile.TemporaryDirectory() as state_dir:
        env = {
            "PATH": "/usr/bin:/bin",
            "UNITEDCRON_SECRET": SECRET,
            "UNITEDCRON_INSECURE_PLAINTEXT": "true",  # this benchmark plays a plain-text center
            "UNITEDCRON_AGENT_LISTEN": f"127.0.0.1:{port}",
            "UNITEDCRON_AGENT_CENTER": "127.0.0.1:1",
            "UNITEDCRON_AGENT_STATE_DIR": state_dir,
            "UNITEDCRON_AGENT_REGISTER_INTERVAL_S": "3600",
            "UNITEDCRON_AGENT_METRICS_LISTEN": "",
            "UNITEDCRON_AGENT_MAX_PROCESSES": "100000",
            "UNITEDCRON_AGENT_USER_SWITCH": "auto" if method == "none" else method,
            "UNITEDCRON_LOG_FORMAT": "json",
            "UNITEDCRON_LOG_LEVEL": "info",
        }
        argv = ["-c", NO_SWITCH] if method == "none" else ["-m", "agent"]
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            *argv,
            cwd=REPO,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            await _listening(port, proc)
            yield port
        finally:
            proc.terminate()
            async with asyncio.timeout(START_S):
                await proc.wait()


async def _listening(port: int, proc: asyncio.subprocess.Process) -> None:
    """Return once the agent accepts connections (no event to wait on from outside)."""
    async with asyncio.timeout(START_S):
        while proc.returncode is None:
            with contextlib.suppress(OSError):
                _, writer = await asyncio.open_connection("127.0.0.1", port)
                writer.close()
                return
            await asyncio.sleep(0.05)
    raise RuntimeError(f"the agent exited with {proc.returncode}")


async def main(n: int, rounds: int) -> None:
    await raw_rate(20, "user=")  # warm up the page cache and the loop
    best: dict[str, float] = {}
    async with contextlib.AsyncExitStack() as stack:
        ports = {
            m: await stack.enter_async_context(agent_process(m))
            for m in ("setpriv", "fork", "none")
        }
        for port, method in ((p, m) for m, p in ports.items()):  # warm up every agent
            await agent_rate(port, 20, "" if method == "none" else "nobody")
        for _ in range(rounds):  # interleaved, so that a busy moment hurts every figure alike
            for switch in ("none", "user=", "setpriv"):
                best[f"raw {switch}"] = max(
                    best.get(f"raw {switch}", 0.0), await raw_rate(n, switch)
                )
            for method, port in ports.items():
                run_user = "" if method == "none" else "nobody"
                best[f"agent {method}"] = max(
                    best.get(f"agent {method}", 0.0), await agent_rate(port, n, run_user)
                )
    report(n, rounds, best)


def report(n: int, rounds: int, best: dict[str, float]) -> None:
    """The figures, then the ratios the targets are about."""
    print(
        f"spawn throughput, {n} runs of /bin/true at once, best of {rounds} interleaved rounds "
        f"(default asyncio loop, {os.cpu_count()} CPUs), runs/s:"
    )
    rows = [
        ("raw create_subprocess_exec, no user switch", "raw none"),
        ("raw create_subprocess_exec, user=/group= (fork)", "raw user="),
        ("raw create_subprocess_exec through setpriv", "raw setpriv"),
        ("agent as nobody, setpriv (default)", "agent setpriv"),
        ("agent as nobody, fork (agent_user_switch=fork)", "agent fork"),
        ("agent without user switch", "agent none"),
    ]
    for label, key in rows:
        print(f"  {label:50s} {best[key]:7.0f}")
    print("ratios:")
    for label, num, den in [
        ("agent setpriv / raw user=", "agent setpriv", "raw user="),
        ("agent setpriv / raw no switch", "agent setpriv", "raw none"),
        ("agent fork / raw user=", "agent fork", "raw user="),
        ("agent no switch / raw no switch", "agent none", "raw none"),
    ]:
        print(f"  {label:50s} {best[num] / best[den]:7.2f}")


if __name__ == "__main__":
    if os.geteuid() != 0:
        raise SystemExit("run as root: the agent switches to nobody for each run")
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 500
    rounds = int(sys.argv[2]) if len(sys.argv) > 2 else ROUNDS
    asyncio.run(main(n, rounds))
