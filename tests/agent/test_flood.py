"""Output floods: 1 GB through a real agent keeps its memory flat; live chunks are throttled."""

from __future__ import annotations

import asyncio
import gc
import time
from types import SimpleNamespace
from typing import Any

import psutil
import pytest
import structlog

from agent.handle import RunHandle
from agent.metrics import AgentMetrics
from agent.output import LIVE_CHUNK_BYTES
from agent.runs import RunLimits, RunTable
from agent.server import LIVE_OUTPUT_BACKLOG_BYTES
from agent.service import AgentService
from protocol.messages import Message, RunFinished, RunOutput, RunStarted
from tests.agent.peer import CenterPeer, exec_msg

GB = 1_000_000_000
MIB = 1 << 20
FLOOD = f"printf HEAD; head -c {GB - 8} /dev/zero; printf TAIL"


@pytest.mark.slow
async def test_one_gigabyte_keeps_rss_flat(agent: AgentService, center: CenterPeer) -> None:
    """A run writing 1 GB grows the agent's RSS by less than 64 MiB, stores head, tail and
    the true size, and (with a center that reads nothing meanwhile) keeps the connection's
    send buffer within the live-output bound."""
    me = psutil.Process()
    gc.collect()
    baseline = peak = me.memory_info().rss
    backlog_peak = 0
    msg = exec_msg(FLOOD, shell=True)
    await center.send(msg)
    began = time.monotonic()
    async with asyncio.timeout(180):
        while msg.ref.runid not in agent.control.runs:  # noqa: ASYNC110 - sampling, no event
            await asyncio.sleep(0.01)
        while msg.ref.runid in agent.control.runs:  # sample while the flood goes
            peak = max(peak, me.memory_info().rss)
            leader = agent.sessions.leader()
            backlog_peak = max(backlog_peak, leader.backlog_bytes if leader else 0)
            await asyncio.sleep(0.05)
    took_s = time.monotonic() - began
    finished = await center.expect(RunFinished, msg.ref.runid)
    await center.expect(RunStarted, msg.ref.runid)
    live = [m for m in center.seen if isinstance(m, RunOutput) and m.runid == msg.ref.runid]
    growth = peak - baseline
    print(
        f"\n1 GB flood: {took_s:.1f} s, agent RSS {baseline / MIB:.1f} -> peak "
        f"{peak / MIB:.1f} MiB (+{growth / MIB:.1f} MiB), send buffer peak "
        f"{backlog_peak} B, {len(live)} live chunks, {sum(len(c.data) for c in live)} B live"
    )
    assert finished.status == "success"
    assert finished.output_bytes == GB and finished.truncated
    half = 256 * 1024 // 2
    assert finished.output.startswith(b"HEAD" + b"\0" * (half - 4))
    assert finished.output.endswith(b"\0" * (half - 4) + b"TAIL")
    assert b"[... %d bytes skipped ...]" % (GB - 2 * half) in finished.output
    assert growth < 64 * MIB
    assert backlog_peak <= LIVE_OUTPUT_BACKLOG_BYTES + LIVE_CHUNK_BYTES + 1024
    assert live and all(len(c.data) <= LIVE_CHUNK_BYTES for c in live)
    assert [c.offset for c in live] == sorted(c.offset for c in live)


class _Leader:
    """A connection stand-in whose send buffer grows by what is sent and drains on demand."""

    def __init__(self, backlog_bytes: int) -> None:
        self.backlog_bytes = backlog_bytes
        self.sent: list[Message] = []
        self.conn = SimpleNamespace(peer="127.0.0.1:9")

    def send(self, messages: list[Message]) -> None:
        for message in messages:
            self.sent.append(message)
            self.backlog_bytes += len(getattr(message, "data", b""))


class _Sessions:
    def __init__(self, leader: _Leader) -> None:
        self._leader = leader

    def leader(self) -> Any:
        return self._leader


def _flooding_table(
    leader: _Leader,
    runs: int,
    limits: RunLimits | None = None,
    metrics: AgentMetrics | None = None,
) -> RunTable:
    """A run table with `runs` runs, each with a full live chunk pending."""
    table = RunTable(
        _Sessions(leader),
        journal=None,
        runner=None,  # type: ignore[arg-type]
        limits=limits or RunLimits(),
        metrics=metrics,
    )
    for _ in range(runs):
        handle = RunHandle(exec_msg("/usr/bin/yes"))
        handle.tail.feed(b"y\n" * LIVE_CHUNK_BYTES)
        table.add(handle)
    return table


def test_live_output_stops_above_the_backlog_bound() -> None:
    """Live chunks are sent one frame at a time only while the send buffer is under the bound;
    the chunks held back stay pending and go once it has drained."""
    leader = _Leader(LIVE_OUTPUT_BACKLOG_BYTES - LIVE_CHUNK_BYTES - 1)
    table = _flooding_table(leader, runs=10)
    table.pump_output()
    assert len(leader.sent) == 2
    assert leader.backlog_bytes < LIVE_OUTPUT_BACKLOG_BYTES + LIVE_CHUNK_BYTES
    leader.backlog_bytes = 0  # the center caught up
    table.pump_output()
    assert len(leader.sent) == 10
    assert {m.runid for m in leader.sent} == set(table.runs)  # type: ignore[attr-defined]


def test_live_output_backlog_is_a_setting_counted_and_logged() -> None:
    """A smaller `agent_live_output_backlog_bytes` holds chunks back sooner; each time it does
    counts as a `live_output` limit hit, with one log line for the first."""
    metrics = AgentMetrics()
    leader = _Leader(0)
    table = _flooding_table(
        leader, runs=4, limits=RunLimits(live_backlog_bytes=LIVE_CHUNK_BYTES), metrics=metrics
    )
    with structlog.testing.capture_logs() as logs:
        table.pump_output()  # one chunk fills the bound
        table.pump_output()
    assert len(leader.sent) == 1
    hits = metrics.registry.get_sample_value(
        "unitedcron_agent_limit_hits_total", {"limit": "live_output"}
    )
    assert hits == 2
    lines = [e for e in logs if e["event"] == "agent.limit_reached"]
    assert len(lines) == 1 and lines[0]["limit"] == "live_output"
    assert lines[0]["max"] == LIVE_CHUNK_BYTES and lines[0]["peer"] == "127.0.0.1:9"
