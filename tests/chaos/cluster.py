"""Two (or more) centers and agents as real processes on one database, agents behind proxies."""

from __future__ import annotations

import asyncio
import contextlib
import sys
from pathlib import Path

from tests.chaos.procs import (
    CENTER_SETTINGS,
    SECRET,
    UNITEDCRON,
    Agent,
    Center,
    Child,
    clean_env,
    free_port,
    run_command,
    wait_listening,
)
from tests.chaos.proxy import TcpProxy

STOP_TIMEOUT_S = 30.0


class Cluster:
    """`centers` × `unitedcron center` and `agents` × `python -m agent` (each dialled by the
    centers through its own TcpProxy), all on `db_url`, state and logs under `workdir`.
    `settings`: the centers' UNITEDCRON_CENTER_* variables (default: the chaos timings)."""

    def __init__(
        self,
        db_url: str,
        workdir: Path,
        *,
        centers: int = 2,
        agents: int = 2,
        settings: dict[str, str] | None = None,
    ) -> None:
        self.db_url, self.workdir = db_url, workdir
        self.settings = CENTER_SETTINGS if settings is None else settings
        self.centers = [self._center(f"c{i}", free_port()) for i in range(1, centers + 1)]
        self.agents = [self._agent(f"a{i}", free_port()) for i in range(1, agents + 1)]

    def _center(self, name: str, port: int) -> Center:
        env = clean_env(
            UNITEDCRON_DB_URL=self.db_url,
            UNITEDCRON_SECRET=SECRET,
            UNITEDCRON_CENTER_LISTEN=f"127.0.0.1:{port}",
            UNITEDCRON_CENTER_NAME=name,
            # Two centers on one host: their /metrics must not both take the default port.
            UNITEDCRON_CENTER_METRICS_LISTEN="127.0.0.1:0",
            **self.settings,
        )
        return Center(name, port, Child(name, [UNITEDCRON, "center"], env, self.log(name)))

    def _agent(self, name: str, port: int) -> Agent:
        proxy = TcpProxy(port)
        child = Child(name, [sys.executable, "-m", "agent"], {}, self.log(name))
        return Agent(name, port, proxy, child)

    def log(self, name: str) -> Path:
        return self.workdir / "logs" / f"{name}.log"

    def _agent_env(self, agent: Agent) -> dict[str, str]:
        return clean_env(
            UNITEDCRON_SECRET=SECRET,
            UNITEDCRON_AGENT_LISTEN=f"127.0.0.1:{agent.port}",
            UNITEDCRON_AGENT_ADVERTISE=f"127.0.0.1:{agent.proxy.port}",
            UNITEDCRON_AGENT_CENTER=",".join(f"127.0.0.1:{c.port}" for c in self.centers),
            UNITEDCRON_AGENT_NAME=agent.name,
            UNITEDCRON_AGENT_STATE_DIR=str(self.workdir / "state" / agent.name),
            UNITEDCRON_AGENT_REGISTER_INTERVAL_S="1",
            UNITEDCRON_AGENT_KILL_GRACE_S="2",
        )

    async def upgrade(self) -> None:
        """`unitedcron db upgrade`, as an operator runs it first."""
        await run_command(UNITEDCRON, "db", "upgrade", env=clean_env(UNITEDCRON_DB_URL=self.db_url))

    async def start(self) -> None:
        """Proxies, then centers, then agents; returns once every one of them listens."""
        for agent in self.agents:
            await agent.proxy.start()
            agent.child.env = self._agent_env(agent)
        await asyncio.gather(*(self.start_center(c) for c in self.centers))
        await asyncio.gather(*(self.start_agent(a) for a in self.agents))

    async def start_center(self, center: Center) -> None:
        await self._start(center.child, center.port)

    async def start_agent(self, agent: Agent) -> None:
        await self._start(agent.child, agent.port)

    async def _start(self, child: Child, port: int) -> None:
        """Start `child`; AssertionError with its log's tail unless it listens on `port` soon."""
        await child.start()
        try:
            await wait_listening(port, alive=lambda: child.running)
        except TimeoutError:
            tail = child.log_path.read_text(errors="replace").splitlines()[-25:]
            state = "running" if child.running else f"exited {child.proc and child.proc.returncode}"
            raise AssertionError(
                f"{child.name} ({state}) does not listen on {port}:\n" + "\n".join(tail)
            ) from None

    def center(self, name: str) -> Center:
        return next(c for c in self.centers if c.name == name)

    def agent(self, name: str) -> Agent:
        return next(a for a in self.agents if a.name == name)

    def children(self) -> list[Child]:
        return [a.child for a in self.agents] + [c.child for c in self.centers]

    async def stop(self) -> dict[str, int | None]:
        """SIGTERM to agents, then centers; each one's exit status (None: it had to be killed)."""
        codes: dict[str, int | None] = {}
        for group in ([a.child for a in self.agents], [c.child for c in self.centers]):
            done = await asyncio.gather(*(c.terminate(STOP_TIMEOUT_S) for c in group))
            codes.update({c.name: code for c, code in zip(group, done, strict=True)})
        await self.close_proxies()
        return codes

    async def kill_all(self) -> None:
        """Cleanup after a failure: nothing may outlive the test."""
        for child in self.children():
            if child.running:
                with contextlib.suppress(ProcessLookupError, TimeoutError):
                    await child.kill9()
        await self.close_proxies()

    async def close_proxies(self) -> None:
        for agent in self.agents:
            await agent.proxy.close()
