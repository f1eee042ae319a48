"""The agent's Prometheus endpoint, scraped over HTTP while a real agent runs jobs."""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Callable

import structlog
from prometheus_client.parser import text_string_to_metric_families

from agent.config import AgentConfig
from protocol.clock import now_us
from protocol.messages import AgentState, Kill, RunFinished, RunStarted
from tests.agent.peer import WAIT_S, CenterPeer, exec_msg, running

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


async def scrape(port: int, path: str = "/metrics") -> tuple[str, str]:
    """GET `path` from 127.0.0.1:port; (status line, body)."""
    async with asyncio.timeout(WAIT_S):
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(f"GET {path} HTTP/1.1\r\nHost: agent\r\n\r\n".encode())
        response = await reader.read()
        writer.close()
        await writer.wait_closed()
    head, _, body = response.decode().partition("\r\n\r\n")
    return head.split("\r\n", 1)[0], body


def samples(body: str) -> Samples:
    """Every sample of an exposition, by name and sorted labels."""
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(body)
        for s in family.samples
    }


async def test_scrape_shows_runs_timing_load_and_limits(
    make_config: Callable[..., AgentConfig],
) -> None:
    """After a scheduled run and during another, /metrics shows runs by status, spawn latency,
    exec lateness, processes, outbox depth, connections and (zero) limit hits."""
    async with running(make_config(agent_metrics_listen="127.0.0.1:0")) as agent:
        assert agent.metrics_port > 0
        peer = await CenterPeer.connect(agent.port)
        try:
            assert isinstance(await peer.recv(), AgentState)
            quick = exec_msg("/usr/bin/true")
            quick = dataclasses.replace(
                quick, ref=dataclasses.replace(quick.ref, sched_us=now_us() - 20_000)
            )
            await peer.run(quick)
            slow = exec_msg("/bin/sleep 300", task_id=8)
            await peer.send(slow)
            await peer.expect(RunStarted, slow.ref.runid)
            status, body = await scrape(agent.metrics_port)
            await peer.send(Kill(epoch=1, task_id=8))
            await peer.expect(RunFinished, slow.ref.runid)
        finally:
            await peer.close()
    assert status == "HTTP/1.1 200 OK"
    got = samples(body)
    assert got[("unitedcron_agent_runs_total", (("status", "success"),))] == 1
    assert got[("unitedcron_agent_spawn_seconds_count", ())] == 2
    assert got[("unitedcron_agent_exec_lateness_seconds_count", ())] == 2
    # 20 ms late at the scheduled time: in the 25 ms bucket, not the 10 ms one.
    assert got[("unitedcron_agent_exec_lateness_seconds_bucket", (("le", "0.01"),))] == 0
    assert got[("unitedcron_agent_processes", ())] == 1
    assert got[("unitedcron_agent_outbox_events", ())] == 3  # started, finished, started
    assert got[("unitedcron_agent_connections", (("state", "authenticated"),))] == 1
    assert got[("unitedcron_agent_connections", (("state", "open"),))] == 1
    for limit in ("connections", "processes", "live_output", "outbox", "frame"):
        assert got[("unitedcron_agent_limit_hits_total", (("limit", limit),))] == 0


async def test_metrics_port_taken_costs_only_the_metrics(
    make_config: Callable[..., AgentConfig],
) -> None:
    """A metrics address that cannot be bound is one error line; the agent still serves."""
    holder = await asyncio.start_server(lambda r, w: None, "127.0.0.1", 0)
    port = holder.sockets[0].getsockname()[1]
    try:
        with structlog.testing.capture_logs() as logs:
            config = make_config(agent_metrics_listen=f"127.0.0.1:{port}")
            async with running(config) as agent:
                peer = await CenterPeer.connect(agent.port)
                try:
                    assert (await peer.run(exec_msg("/usr/bin/true"))).status == "success"
                finally:
                    await peer.close()
                assert agent.metrics_port == 0
    finally:
        holder.close()
    failed = [e for e in logs if e["event"] == "agent.metrics_unavailable"]
    assert len(failed) == 1 and "address already in use" in str(failed[0]["error"])
