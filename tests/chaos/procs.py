"""Real `unitedcron center` and `python -m agent` processes, each with its output in a file."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from tests.chaos.proxy import TcpProxy

UNITEDCRON = str(Path(sys.executable).with_name("unitedcron"))
SECRET = "chaos-cluster-secret-0123456789"
REPO = Path(__file__).resolve().parents[2]
START_TIMEOUT_S = 30.0
KILL_TIMEOUT_S = 10.0
# Short timings, as the chaos brief asks: lease renewed every 1 s with a 3 s TTL, an agent
# that stops answering is offline after 2 s; pings and agent polls twice a second.
CENTER_SETTINGS = {
    "UNITEDCRON_CENTER_LEASE_TTL_S": "3",
    "UNITEDCRON_CENTER_LEASE_RENEW_S": "1",
    "UNITEDCRON_CENTER_OFFLINE_AFTER_S": "2",
    "UNITEDCRON_CENTER_PING_INTERVAL_S": "0.5",
    "UNITEDCRON_CENTER_AGENTS_POLL_S": "0.5",
    "UNITEDCRON_CENTER_RULES_POLL_S": "0.5",
    "UNITEDCRON_CENTER_RECONNECT_MAX_S": "1",
    "UNITEDCRON_CENTER_DISPATCH_GRACE_S": "10",
    "UNITEDCRON_CENTER_GRACE_S": "10",
}


def now_us() -> int:
    return time.time_ns() // 1000


def free_port() -> int:
    """A free TCP port on 127.0.0.1 (closed again before use; the race is acceptable here)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def clean_env(**values: str) -> dict[str, str]:
    """This process's environment without any UNITEDCRON_* setting, plus `values`."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("UNITEDCRON_")}
    return env | {"UNITEDCRON_LOG_FORMAT": "json", "PYTHONPATH": str(REPO)} | values


async def wait_listening(
    port: int, timeout_s: float = START_TIMEOUT_S, alive: Callable[[], bool] = lambda: True
) -> None:
    """Return once something accepts TCP connections on 127.0.0.1:`port`; TimeoutError after
    `timeout_s`, or as soon as `alive()` says the process meant to listen has exited."""
    async with asyncio.timeout(timeout_s):
        while True:
            try:
                _, writer = await asyncio.open_connection("127.0.0.1", port)
            except OSError:
                if not alive():
                    raise TimeoutError from None
                await asyncio.sleep(0.05)
                continue
            writer.close()
            await writer.wait_closed()
            return


async def run_command(*args: str, env: dict[str, str], timeout_s: float = 90) -> str:
    """Run a command to its end; its output, or AssertionError with it on a non-zero exit."""
    proc = await asyncio.create_subprocess_exec(
        *args, env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT
    )
    async with asyncio.timeout(timeout_s):
        out, _ = await proc.communicate()
    text = out.decode(errors="replace")
    assert proc.returncode == 0, f"{args} exited {proc.returncode}:\n{text}"
    return text


class Child:
    """One restartable child process; its stdout and stderr appended to `log_path`, with a
    marker line at each start and SIGKILL (shared by the chaos test and the failover bench)."""

    def __init__(self, name: str, args: list[str], env: dict[str, str], log_path: Path) -> None:
        self.name, self.args, self.env, self.log_path = name, args, env, log_path
        self.proc: asyncio.subprocess.Process | None = None

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.returncode is None

    async def start(self) -> None:
        assert not self.running, f"{self.name} is already running"
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with self.log_path.open("ab") as log:
            log.write(f"=== chaos: start {self.name} at {now_us()}\n".encode())
            log.flush()
            self.proc = await asyncio.create_subprocess_exec(
                *self.args,
                env=self.env,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=log,
                stderr=asyncio.subprocess.STDOUT,
            )

    async def kill9(self) -> int:
        """SIGKILL, reaped; returns the time of the signal (µs)."""
        assert self.proc is not None and self.running, f"{self.name} is not running"
        at_us = now_us()
        self.proc.kill()
        async with asyncio.timeout(KILL_TIMEOUT_S):
            await self.proc.wait()
        self._note(f"killed with SIGKILL at {at_us}")
        return at_us

    async def terminate(self, timeout_s: float) -> int | None:
        """SIGTERM and wait; the exit status, or None if it had to be killed after `timeout_s`."""
        if not self.running:
            return self.proc.returncode if self.proc else None
        assert self.proc is not None
        self.proc.send_signal(signal.SIGTERM)
        try:
            async with asyncio.timeout(timeout_s):
                return await self.proc.wait()
        except TimeoutError:
            self.proc.kill()
            async with asyncio.timeout(KILL_TIMEOUT_S):
                await self.proc.wait()
            return None

    def _note(self, text: str) -> None:
        with self.log_path.open("a") as log:
            log.write(f"=== chaos: {self.name} {text}\n")


@dataclass
class Center:
    name: str
    port: int
    child: Child


@dataclass
class Agent:
    name: str
    port: int  # where the agent listens; centers dial `proxy.port`
    proxy: TcpProxy
    child: Child
    aid: int = 0
