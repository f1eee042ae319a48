"""The center's only SQL: rules and agents in, planned runs and results out, the leader lease.

One module per job; this package re-exports them so that callers write `store.<name>`.
"""

from __future__ import annotations

from center.store._util import new_id
from center.store.agents import (
    Heartbeat,
    load_agents,
    record_heartbeats,
    register_agent,
    set_agent_status,
)
from center.store.events import (
    Command,
    RunState,
    active_runs,
    find_run,
    finish_command,
    pending_commands,
    record_daemon_states,
    record_security_events,
    security_event,
)
from center.store.lease import LEASE_NAME, Lease, acquire_lease, release_lease, renew_lease
from center.store.limits import ActiveRun, load_keys, runs_ended, runs_holding
from center.store.lost import in_flight_off_line, record_lost
from center.store.reports import record_reports
from center.store.rules import (
    load_rules,
    rule_notices,
    rules_fingerprint,
    rules_probe,
    set_rule_error,
    set_rule_notice,
)
from center.store.runs import (
    expire_planned,
    insert_planned,
    reroute_run,
    run_agents,
    runs_in_flight,
    runs_waiting,
    set_run_status,
)

__all__ = [
    "LEASE_NAME",
    "ActiveRun",
    "Command",
    "Heartbeat",
    "Lease",
    "RunState",
    "acquire_lease",
    "active_runs",
    "expire_planned",
    "find_run",
    "finish_command",
    "in_flight_off_line",
    "insert_planned",
    "load_agents",
    "load_keys",
    "load_rules",
    "new_id",
    "pending_commands",
    "record_daemon_states",
    "record_heartbeats",
    "record_lost",
    "record_reports",
    "record_security_events",
    "register_agent",
    "release_lease",
    "renew_lease",
    "reroute_run",
    "rule_notices",
    "rules_fingerprint",
    "rules_probe",
    "run_agents",
    "runs_ended",
    "runs_holding",
    "runs_in_flight",
    "runs_waiting",
    "security_event",
    "set_agent_status",
    "set_rule_error",
    "set_rule_notice",
    "set_run_status",
]
