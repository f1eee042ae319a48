"""The workflow API's request bodies and answers (kept apart from models.py and responses.py,
in their style: bodies refuse unknown fields, answers name what clients rely on)."""

from __future__ import annotations

from typing import Any

from pydantic import Field

from admin.api.models import Body
from admin.api.responses import Out, RunOut
from admin.web import Int32
from protocol.vocabulary import DependsWhen, FlowJoin, FlowStatus, Misfire, Overlap, RuleStatus


class NodeIn(Body):
    task_id: Int32 = Field(description="A rule of the workflow's group (not a daemon)")
    join: str = Field(default="all", description="all | any: when a node with parents starts")


class EdgeIn(Body):
    parent_task_id: Int32
    child_task_id: Int32
    when: str = Field(default="success", description="success | failure | always")


class WorkflowPatch(Body):
    """Every field of a workflow; `nodes` and `edges` replace the graph when given."""

    gid: Int32 | None = None
    name: str | None = None
    rule: str | None = Field(default=None, description='A cron expression; "" = by hand only')
    timezone: str | None = None
    status: Int32 | None = Field(default=None, description="1 enabled, 0 paused")
    overlap: str | None = Field(default=None, description="skip | queue | parallel")
    misfire: str | None = Field(default=None, description="skip | once | all")
    misfire_window_s: Int32 | None = None
    calendar: str | None = Field(default=None, description='A calendar\'s name; "" = every day')
    calendar_mode: str | None = Field(default=None, description="only | except")
    calendar_fallback: str | None = Field(default=None, description="skip | weekdays")
    description: str | None = None
    nodes: list[NodeIn] | None = None
    edges: list[EdgeIn] | None = None


class WorkflowIn(WorkflowPatch):
    """A new workflow (or, with PUT, the whole of one): `gid`, `name`, `nodes` are required."""

    gid: Int32 | None = Field(description="The group the workflow and its rules belong to")
    name: str | None = Field(description="A name for people")
    nodes: list[NodeIn] | None = Field(description="Its rules")


class FlowRunIn(Body):
    params: str | None = Field(default=None, description="Arguments appended to each command")
    env: dict[str, Any] | None = Field(default=None, description="Environment overrides")


class WorkflowNodeOut(Out):
    task_id: int
    join: FlowJoin
    name: str = ""


class WorkflowEdgeOut(Out):
    parent_task_id: int
    child_task_id: int
    when: DependsWhen


class WorkflowOut(Out):
    """A workflow with every column of `workflow`; one workflow also has `nodes`, `edges`."""

    id: int
    gid: int
    name: str
    rule: str
    timezone: str
    status: RuleStatus
    overlap: Overlap
    misfire: Misfire
    error: str = ""
    nodes: list[WorkflowNodeOut] = Field(default_factory=list)
    edges: list[WorkflowEdgeOut] = Field(default_factory=list)


class FlowNodeOut(Out):
    """A node in a flow run: `state` is a run status, `running`, or `pending` (not started);
    `reason` says why it was skipped; `runs` (one flow run only) are those that count now."""

    task_id: int
    state: str
    reason: str = ""
    generation: int = 0
    runs: list[RunOut] = Field(default_factory=list)


class FlowRunOut(Out):
    """A workflow run (`workflow_run`) with each node's state."""

    id: str
    workflow_id: int
    sched_us: int
    trigger: str
    status: FlowStatus
    reason: str = ""
    nodes: list[FlowNodeOut] = Field(default_factory=list)
