"""Flow nodes as runs (pure): the runs a node starts or why not, and runs read back."""

from __future__ import annotations

import pytest

from center.dag import NODE_OFFSET_SPAN_US, node_sched_us
from center.flow_nodes import LOAD_WAIT_US, RETRY_WRITE_US, FlowRef, RunRow, as_node_runs, node_runs
from center.routing import AgentInfo
from center.rules import Rule
from protocol.vocabulary import Trigger

NOW = 1_800_000_000_000_000
FLOW = FlowRef(workflow_id=7, flow_runid="f7-1", sched_us=NOW - 5_000_000, started_us=NOW - 1_000)
AGENTS = {1: AgentInfo(id=1, name="a1", ip="127.0.0.1", port=1, status=1)}
RULE = Rule(id=3, name="load", rule="", execute="/bin/true", run_user="nobody", agents=(1,))


def _runs(rule: Rule | None, flow: FlowRef = FLOW, agents: dict[int, AgentInfo] = AGENTS):
    return node_runs(flow, 3, 0, rule, agents=agents, online=lambda aid: True, now_us=NOW)


def test_a_node_starts_one_run_per_target_with_the_flow_run_id():
    [run] = _runs(RULE)
    assert run.flow_runid == "f7-1" and run.trigger == Trigger.FLOW and run.aid == 1
    assert run.sched_us == node_sched_us(7, FLOW.sched_us) and run.due_us == NOW
    assert run.sched_us % 1_000_000 != 0  # never a whole second: not the rule's own fire id


@pytest.mark.parametrize(
    ("rule", "reason"),
    [
        (Rule(id=3, name="x", rule="", execute="/bin/true", status=0), "is paused"),
        (Rule(id=3, name="x", rule="", execute="/bin/true", status=-1), "does not exist"),
        (Rule(id=3, name="x", rule="", execute="/bin/true", error="rule: bad"), "is broken"),
        (Rule(id=3, name="x", rule="", execute="/bin/true", is_daemon=True), "is a daemon"),
        (Rule(id=3, name="x", rule="", execute="/bin/true", agents=(9,)), "no approved agent"),
    ],
)
def test_a_node_that_cannot_start_says_why(rule: Rule, reason: str):
    old = FlowRef(7, "f7-1", FLOW.sched_us, started_us=NOW - LOAD_WAIT_US - 1)
    found = _runs(rule, old)
    assert isinstance(found, str) and reason in found


def test_a_young_flow_run_waits_for_rules_and_agents_not_loaded_yet():
    assert _runs(None) == []
    assert _runs(RULE, agents={}) == []
    old = FlowRef(7, "f7-1", FLOW.sched_us, started_us=NOW - LOAD_WAIT_US - 1)
    assert "does not exist" in str(_runs(None, old))


def _row(status: str, attempt: int = 0, ended_ago_us: int = 0, generation: int = 0) -> RunRow:
    sched = node_sched_us(7, FLOW.sched_us, generation)
    return RunRow(3, status, attempt, "r0", sched, NOW - ended_ago_us)


@pytest.mark.parametrize(
    ("row", "retries", "seen"),
    [
        (_row("failed"), 1, "running"),  # its retry is about to be written
        (_row("failed", attempt=1), 1, "failed"),  # no retry left
        (_row("failed", ended_ago_us=RETRY_WRITE_US + 1), 1, "failed"),  # the retry never came
        (_row("failed"), 0, "failed"),
        (_row("lost"), 1, "lost"),  # a lost run is retried only with retry_unknown = retry
        (_row("success"), 1, "success"),
    ],
)
def test_runs_read_back_count_a_coming_retry_as_running(row: RunRow, retries: int, seen: str):
    rule = Rule(id=3, rule="", execute="/bin/true", retries=retries)
    [node] = as_node_runs(FLOW, [row], {3: rule}, NOW)
    assert node.status == seen


def test_runs_read_back_carry_their_generation():
    rows = [_row("failed"), _row("success", generation=2)]
    assert [n.generation for n in as_node_runs(FLOW, rows, {}, NOW)] == [0, 2]
    assert node_sched_us(7, 0, 1) - node_sched_us(7, 0, 0) == NODE_OFFSET_SPAN_US
