"""A flow run's nodes as runs (pure): the runs a node starts, and its runs read back as the DAG's
node runs (a failed run about to be retried still counts as running)."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass

from center.dag import NodeRun, generation_of, node_sched_us
from center.decisions import RETRIED
from center.routing import AgentInfo, choose
from center.rules import Rule
from center.runs import PlannedRun, plan_run
from protocol.vocabulary import RetryUnknown, RuleStatus, Trigger

# A failed node run whose rule retries it counts as running this long after it ended: the
# retry's row is written right after the result, and the flow must not end in between.
RETRY_WRITE_US = 10_000_000
LOAD_WAIT_US = 10_000_000


@dataclass(frozen=True, slots=True)
class FlowRef:
    """Which flow run a node belongs to, as its runs need it."""

    workflow_id: int
    flow_runid: str
    sched_us: int
    started_us: int = 0  # when the flow run was recorded
    params: str = ""  # a run now's extras, for nodes whose rule allows parameters
    env: str = ""


def node_runs(
    flow: FlowRef,
    task_id: int,
    generation: int,
    rule: Rule | None,
    *,
    agents: Mapping[int, AgentInfo],
    online: Callable[[int], bool],
    now_us: int,
) -> list[PlannedRun] | str:
    """The runs that start a node (one per target agent or shard), why it cannot start, or
    none yet: a rule or an agent saved moments before the flow run started may not be loaded."""
    young = now_us - flow.started_us < LOAD_WAIT_US
    if rule is None and young:
        return []
    refused = _refusal(task_id, rule)
    if refused or rule is None:
        return refused or f"rule {task_id} does not exist"
    picks = choose(rule, agents, online)
    if not picks:
        return [] if young else f"rule {task_id} ({rule.name!r}) has no approved agent to run it"
    sched = node_sched_us(flow.workflow_id, flow.sched_us, generation)
    extras = (flow.params, flow.env) if rule.allow_params else ("", "")
    return [
        plan_run(
            task_id,
            sched,
            aid,
            instance=shard,
            trigger=Trigger.FLOW,
            flow_runid=flow.flow_runid,
            shard_total=rule.shard_total,
            due_us=now_us if sched < now_us else 0,
            params=extras[0],
            env=extras[1],
        )
        for shard, aid in picks
    ]


def skipped_run(flow: FlowRef, task_id: int, generation: int) -> PlannedRun:
    """The row that records a node which will not start (agent 0: no agent was chosen)."""
    sched = node_sched_us(flow.workflow_id, flow.sched_us, generation)
    return plan_run(task_id, sched, 0, trigger=Trigger.FLOW, flow_runid=flow.flow_runid)


def _refusal(task_id: int, rule: Rule | None) -> str:
    if rule is None or rule.status == RuleStatus.DELETED:
        return f"rule {task_id} does not exist (deleted)"
    if rule.error:
        return f"rule {task_id} ({rule.name!r}) is broken: {rule.error}"
    if not rule.enabled:
        return f"rule {task_id} ({rule.name!r}) is paused"
    if rule.is_daemon:
        return f"rule {task_id} ({rule.name!r}) is a daemon; it cannot be a workflow step"
    return ""


@dataclass(frozen=True, slots=True)
class RunRow:
    """A node's run as stored."""

    task_id: int
    status: str
    attempt: int
    first_runid: str
    sched_us: int
    updated_us: int


def as_node_runs(
    flow: FlowRef, rows: Iterable[RunRow], rules: Mapping[int, Rule], now_us: int
) -> list[NodeRun]:
    """The DAG's view of a flow run's rows: each with its generation, and a failed run whose
    retry is about to be written counted as still running."""
    return [
        NodeRun(
            row.task_id,
            "running" if _retry_coming(row, rules.get(row.task_id), now_us) else row.status,
            row.attempt,
            row.first_runid,
            generation_of(flow.workflow_id, flow.sched_us, row.sched_us),
        )
        for row in rows
    ]


def _retry_coming(row: RunRow, rule: Rule | None, now_us: int) -> bool:
    if rule is None or not rule.enabled or row.status not in RETRIED:
        return False
    if row.attempt >= rule.retries or now_us - row.updated_us > RETRY_WRITE_US:
        return False
    return row.status != "lost" or rule.retry_unknown == RetryUnknown.RETRY
