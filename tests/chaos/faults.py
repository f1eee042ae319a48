"""Faults from a seeded random schedule: kill -9 of the leader or an agent, proxy cuts."""

from __future__ import annotations

import asyncio
import random
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import TypeVar

from tests.chaos.cluster import Cluster
from tests.chaos.monitor import Monitor
from tests.chaos.procs import now_us

KINDS = ("leader_kill", "agent_kill", "cut", "blackhole")
WAIT_S = 20.0  # bound on a takeover or an offline detection before it counts as failed
RECOVER_S = 30.0
AGENT_ENABLED, AGENT_UNREACHABLE = 1, 2
T = TypeVar("T")


@dataclass
class Fault:
    """One injected fault; `measured_s` is its takeover or offline-detection time."""

    kind: str
    target: str
    at_us: int
    measured_s: float | None = None
    ended_us: int = 0

    def line(self, origin_us: int) -> str:
        took = "NOT SEEN" if self.measured_s is None else f"{self.measured_s:.2f} s"
        what = "takeover" if self.kind == "leader_kill" else "offline after"
        at_s = (self.at_us - origin_us) / 1e6
        return f"t+{at_s:6.1f} s {self.kind:<11} {self.target}: {what} {took}"


def fault_kinds(rng: random.Random) -> Iterator[str]:
    """Every kind once (shuffled), then kinds at random, forever."""
    first = list(KINDS)
    rng.shuffle(first)
    yield from first
    while True:
        yield rng.choice(KINDS)


class Injector:
    """Injects one fault at a time, measures it, and brings the cluster back."""

    def __init__(self, cluster: Cluster, monitor: Monitor, rng: random.Random) -> None:
        self.cluster, self.monitor, self.rng = cluster, monitor, rng
        self.faults: list[Fault] = []

    async def inject(self, kind: str) -> Fault:
        if kind == "leader_kill":
            fault = await self._leader_kill()
        elif kind == "agent_kill":
            fault = await self._agent_kill()
        else:
            fault = await self._cut(blackhole=kind == "blackhole")
        fault.ended_us = now_us()
        self.faults.append(fault)
        return fault

    async def _leader_kill(self) -> Fault:
        lease = self.monitor.leader()
        assert lease is not None, "no center has ever held the lease"
        center = self.cluster.center(lease.holder)
        fault = Fault("leader_kill", center.name, await center.child.kill9())
        took = await self._wait(lambda: self.monitor.first_lease_after(fault.at_us, center.name))
        if took is not None:
            fault.measured_s = (took.at_us - fault.at_us) / 1e6
        await asyncio.sleep(self.rng.uniform(1.0, 3.0))
        await self.cluster.start_center(center)  # back as a standby
        return fault

    async def _agent_kill(self) -> Fault:
        agent = self.rng.choice(self.cluster.agents)
        fault = Fault("agent_kill", agent.name, await agent.child.kill9())
        await self._measure_offline(fault)
        await asyncio.sleep(self.rng.uniform(0.5, 2.0))
        await self.cluster.start_agent(agent)  # same state dir, same port
        return fault

    async def _cut(self, *, blackhole: bool) -> Fault:
        agent = self.rng.choice(self.cluster.agents)
        fault = Fault("blackhole" if blackhole else "cut", agent.name, now_us())
        if blackhole:
            agent.proxy.blackhole()
        else:
            agent.proxy.cut()
        await self._measure_offline(fault)
        await asyncio.sleep(self.rng.uniform(0.5, 2.0))
        agent.proxy.restore()
        return fault

    async def _measure_offline(self, fault: Fault) -> None:
        at = await self._wait(
            lambda: self.monitor.first_status_after(fault.target, fault.at_us, AGENT_UNREACHABLE)
        )
        if at is not None:
            fault.measured_s = (at - fault.at_us) / 1e6

    async def _wait(self, probe: Callable[[], T | None]) -> T | None:
        """The first non-None answer of `probe` on the monitor's samples, within WAIT_S."""
        try:
            await self.monitor.wait(lambda: probe() is not None, WAIT_S)
        except TimeoutError:
            return None
        return probe()

    async def recover(self) -> None:
        await wait_healthy(self.cluster, self.monitor)


async def wait_healthy(cluster: Cluster, monitor: Monitor, timeout_s: float = RECOVER_S) -> None:
    """Wait until a running center leads and every agent is connected (status 1) again."""
    running = {c.name for c in cluster.centers if c.child.running}

    def healthy() -> bool:
        lease = monitor.leader()
        return (
            lease is not None
            and lease.holder in running
            and lease.expires_us > now_us()
            and all(monitor.status(a.name) == AGENT_ENABLED for a in cluster.agents)
        )

    try:
        await monitor.wait(healthy, timeout_s)
    except TimeoutError:
        agents = {a.name: monitor.status(a.name) for a in cluster.agents}
        raise AssertionError(
            f"no recovery within {timeout_s:g} s: lease {monitor.leader()}, "
            f"centers running {sorted(running)}, agent status {agents}"
        ) from None
