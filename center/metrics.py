"""The center's Prometheus metrics, one registry per service (tests run several in one process)."""

from __future__ import annotations

import bisect
import collections
import itertools
from typing import TYPE_CHECKING

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from protocol.vocabulary import Trigger

if TYPE_CHECKING:
    from collections.abc import Iterable

    from center.report_buffer import ReportBatch
    from center.rulebook import RuleBook
    from protocol.messages import RunFinished, RunStarted

# Lateness is about milliseconds; the tail up to seconds shows a saturated center.
LATENESS_BUCKETS_S = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)
WRITE_BUCKETS_S = (0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5)


class CenterMetrics:
    """What an operator graphs: timing, outcomes, agents, queues, database writes."""

    def __init__(self) -> None:
        self.registry = r = CollectorRegistry()
        self.dispatch_lateness_s = Histogram(
            "unitedcron_dispatch_lateness_seconds",
            "From a run's scheduled time to its exec frame being written to the agent.",
            buckets=LATENESS_BUCKETS_S,
            registry=r,
        )
        self.start_lateness_s = Histogram(
            "unitedcron_start_lateness_seconds",
            "From a run's scheduled time to its process starting on the agent.",
            buckets=LATENESS_BUCKETS_S,
            registry=r,
        )
        self.runs = Counter(
            "unitedcron_runs", "Runs that ended, by status.", ["status"], registry=r
        )
        self.dispatched = Counter("unitedcron_dispatched_runs", "Exec frames sent.", registry=r)
        self.is_leader = Gauge(
            "unitedcron_leader", "1 while this center holds the lease.", registry=r
        )
        self.epoch = Gauge(
            "unitedcron_leader_epoch", "Epoch of the lease this center holds.", registry=r
        )
        self.agents_connected = Gauge(
            "unitedcron_agents_connected", "Agents with an authenticated connection.", registry=r
        )
        self.queue_depth = Gauge(
            "unitedcron_dispatch_queue_depth", "Planned runs waiting for their time.", registry=r
        )
        self.rules_planned = Gauge(
            "unitedcron_rules_planned", "Rules in the planner's heap.", registry=r
        )
        self.service_instances = Gauge(
            "unitedcron_service_instances",
            "Fleet services' instances: wanted (process_num), placed on an agent, and running "
            "(as their agents report).",
            ["task_id", "kind"],
            registry=r,
        )
        self.rules_in_error = Gauge(
            "unitedcron_rules_in_error", "Rules that cannot be planned.", registry=r
        )
        self.agent_outbox = Gauge(
            "unitedcron_agent_outbox_events",
            "Unacknowledged events in each agent's outbox.",
            ["agent"],
            registry=r,
        )
        self.agent_processes = Gauge(
            "unitedcron_agent_processes", "Processes each agent runs.", ["agent"], registry=r
        )
        self.store_write_s = Histogram(
            "unitedcron_store_write_seconds",
            "Database write transactions, by kind.",
            ["kind"],
            buckets=WRITE_BUCKETS_S,
            registry=r,
        )
        self.limit_hits = Counter(
            "unitedcron_limit_hits", "Connections refused by a limit.", ["limit"], registry=r
        )
        self.handshakes_refused = Counter(
            "unitedcron_handshakes_refused", "Peers that failed the secret handshake.", registry=r
        )
        self.tls_refused = Counter(
            "unitedcron_tls_refused",
            "Peers refused for their TLS: handshake (plain text, another CA, expired), "
            "certificate (role, name, revoked) or csr.",
            ["kind"],
            registry=r,
        )
        self.reports_refused = Counter(
            "unitedcron_reports_refused",
            "Agent reports refused: about a run or rule that is not the agent's.",
            registry=r,
        )
        self.output_dropped = Counter(
            "unitedcron_live_output_dropped_bytes",
            "Live output bytes not stored: beyond a run's bound or its agent's rate.",
            registry=r,
        )
        self.alert_targets_refused = Counter(
            "unitedcron_alert_targets_refused",
            "Alert sends refused: the target is not a public address nor in an allowed network.",
            registry=r,
        )
        self.store_errors = Counter(
            "unitedcron_store_errors", "Failed database operations.", ["loop"], registry=r
        )

    def observe_reports(self, batch: ReportBatch) -> None:
        """Start lateness of scheduled runs, and outcomes by status."""
        # A run that ended before its agent sent its start: its finish stands for the start.
        unsent = (msg for _aid, msg in batch.finished_msgs if msg.start_unsent)
        starts: Iterable[RunStarted | RunFinished] = itertools.chain(batch.started_msgs, unsent)
        for msg in starts:
            ref = msg.ref
            if ref.trigger == Trigger.SCHEDULE and msg.start_us:
                self.start_lateness_s.observe(max(msg.start_us - ref.sched_us, 0) / 1e6)
        by_status = collections.Counter(msg.status for _aid, msg in batch.finished_msgs)
        for status, n in by_status.items():  # one label lookup per status, not per run
            self.runs.labels(status=status).inc(n)

    def observe_leading(
        self, *, epoch: int, agents_connected: int, queue_depth: int, rules_planned: int
    ) -> None:
        """The leader's gauges (epoch 0 and zeros when not leading), once per agents poll."""
        self.is_leader.set(1 if epoch else 0)
        self.epoch.set(epoch)
        self.agents_connected.set(agents_connected)
        self.queue_depth.set(queue_depth)
        self.rules_planned.set(rules_planned)

    def observe_services(self, figures: dict[int, tuple[int, int, int]]) -> None:
        """task_id -> (wanted, placed, running), once per agents poll; gone services cleared."""
        self.service_instances.clear()
        for task_id, counts in figures.items():
            for kind, value in zip(("wanted", "placed", "running"), counts, strict=True):
                self.service_instances.labels(task_id=str(task_id), kind=kind).set(value)

    def observe_rules(self, rulebook: RuleBook) -> None:
        """Rules that cannot be planned, once per agents poll."""
        self.rules_in_error.set(len(rulebook.in_error))


def observe_many(histogram: Histogram, amounts: list[float]) -> None:
    """Histogram.observe for a batch: one lock taken per bucket hit rather than two per value
    (a 100k-run burst spent ~0.3 s in observe). Reaches into the histogram's bucket values,
    which observe() itself uses; a test checks the result equals observe() one by one."""
    if not amounts:
        return
    bounds = histogram._upper_bounds  # no public batch observe
    counts = collections.Counter(bisect.bisect_left(bounds, a) for a in amounts)
    histogram._sum.inc(sum(amounts))
    for i, n in counts.items():
        histogram._buckets[i].inc(n)
