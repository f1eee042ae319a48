"""The agent's Prometheus metrics, one registry per service (tests run several in one process)."""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from typing import Any

import structlog
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from protocol.vocabulary import Trigger

# Spawning takes about a millisecond; the tail up to seconds shows a saturated agent.
SPAWN_BUCKETS_S = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5)
LATENESS_BUCKETS_S = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)
HELD_STARTS = ("prepared", "spawned", "lost")
LIMITS = ("connections", "processes", "live_output", "outbox", "frame")
# A limit hit under load (a connection flood) logs its first hit, then one line per this long.
LIMIT_LOG_EVERY_S = 10.0
log = structlog.get_logger("agent.limits")


class AgentMetrics:
    """What an operator graphs on an agent: outcomes, timing, load, and limits hit.

    Gauges read their value when scraped (`watch`), so nothing has to keep them up to date.
    """

    def __init__(self) -> None:
        self.registry = r = CollectorRegistry()
        self.runs = Counter(
            "unitedcron_agent_runs",
            "Runs that ended on this agent, by status.",
            ["status"],
            registry=r,
        )
        self.spawn_s = Histogram(
            "unitedcron_agent_spawn_seconds",
            "From an exec received (or a queued run given its slot) to its process started.",
            buckets=SPAWN_BUCKETS_S,
            registry=r,
        )
        self.exec_lateness_s = Histogram(
            "unitedcron_agent_exec_lateness_seconds",
            "From a scheduled run's scheduled time to this agent receiving its exec.",
            buckets=LATENESS_BUCKETS_S,
            registry=r,
        )
        self.held_starts = Counter(
            "unitedcron_agent_held_starts",
            "Runs sent ahead and held until their second, by how their process started: from "
            "the process prepared ahead, spawned at the second (not prepared in time, no room), "
            "or spawned after the prepared one died at its gate.",
            ["how"],
            registry=r,
        )
        for how in HELD_STARTS:
            self.held_starts.labels(how=how)
        self.limit_hits = Counter(
            "unitedcron_agent_limit_hits",
            "Things refused or held back by a limit: connections closed, runs skipped, live "
            "output held back, outbox events dropped, frames too large.",
            ["limit"],
            registry=r,
        )
        self.tls_refused = Counter(
            "unitedcron_agent_tls_refused",
            "Connections refused for their TLS: plain text, another CA, not a center's "
            "certificate, or none of ours yet.",
            registry=r,
        )
        for limit in LIMITS:
            self.limit_hits.labels(limit=limit)  # every series exists from the start, at 0
        self.processes = Gauge(
            "unitedcron_agent_processes", "Runs with a process (starting or running).", registry=r
        )
        self.outbox = Gauge(
            "unitedcron_agent_outbox_events", "Events in the outbox not yet acked.", registry=r
        )
        self.connections = Gauge(
            "unitedcron_agent_connections",
            "Connections to the agent port: all open ones, and those authenticated as a center.",
            ["state"],
            registry=r,
        )
        self._limit_logged: dict[str, tuple[float, int]] = {}

    def watch(
        self,
        *,
        processes: Callable[[], float],
        outbox: Callable[[], float],
        open_connections: Callable[[], float],
        sessions: Callable[[], float],
    ) -> None:
        """Read the gauges from these functions at each scrape."""
        self.processes.set_function(processes)
        self.outbox.set_function(outbox)
        self.connections.labels(state="open").set_function(open_connections)
        self.connections.labels(state="authenticated").set_function(sessions)

    def observe_receipt(self, trigger: str, sched_us: int, now_us: int) -> None:
        """An exec arrived: how late after its scheduled time (scheduled runs only)."""
        if trigger == Trigger.SCHEDULE:
            self.exec_lateness_s.observe(max(now_us - sched_us, 0) / 1e6)

    def limit_hit(self, limit: str, count: int = 1, **fields: Any) -> None:
        """Count a limit hit; log it, at most once per LIMIT_LOG_EVERY_S per limit."""
        self.limit_hits.labels(limit=limit).inc(count)
        now = time.monotonic()
        last, suppressed = self._limit_logged.get(limit, (-math.inf, 0))
        if now - last < LIMIT_LOG_EVERY_S:
            self._limit_logged[limit] = (last, suppressed + count)
            return
        self._limit_logged[limit] = (now, 0)
        log.warning(
            "agent.limit_reached", limit=limit, since_last_line=suppressed or None, **fields
        )
