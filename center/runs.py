"""Runs between planning and recording: identities, planned-run records, result rows (pure)."""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from typing import Any

from protocol import statuses
from protocol.messages import RunFinished, RunRef, RunStarted, make_runid
from protocol.vocabulary import Trigger


@dataclass(frozen=True, slots=True, kw_only=True)
class PlannedRun:
    """A run the leader has decided on; written to the store before it is sent."""

    runid: str
    task_id: int
    aid: int
    sched_us: int
    attempt: int = 0
    instance: int = 0
    trigger: str = Trigger.SCHEDULE
    first_runid: str = ""
    parent_runid: str = ""
    flow_runid: str = ""  # the workflow run this run is a node of
    shard_total: int = 0
    due_us: int = 0  # send no earlier than this (a retry's backoff); 0 = at sched_us
    rule_version: int = 0  # the rule's update_time when planned: a change means re-check
    # A manual run's extras (rules with allow_params): arguments appended to the command, and
    # env overrides as a JSON object ("" when none).
    params: str = ""
    env: str = ""

    @property
    def env_override(self) -> dict[str, str]:
        """`env` decoded (it was checked when the run was asked for; anything else reads as
        none rather than stopping the dispatch of every other run)."""
        if not self.env:
            return {}  # nearly every run: no JSON to parse
        try:
            value = json.loads(self.env)
        except ValueError:
            return {}
        ok = isinstance(value, dict) and all(isinstance(v, str) for v in value.values())
        return value if ok else {}

    @property
    def send_at_us(self) -> int:
        return max(self.sched_us, self.due_us)

    def moved_to(self, aid: int) -> PlannedRun:
        """This run on another agent (failover), under its own id: a run id always names the
        agent that runs it, so two leaders moving one run agree, and a report is only ever
        accepted from the agent its id names."""
        runid = make_runid(self.task_id, self.sched_us, aid, self.attempt, self.instance)
        first = runid if self.first_runid in ("", self.runid) else self.first_runid
        return dataclasses.replace(self, runid=runid, aid=aid, first_runid=first)

    def ref_params(self) -> dict[str, Any]:
        """`params_of(self.ref)` without making the RunRef: the same keys in the same order,
        the same values (a test says so). An exec is encoded ahead for every fire."""
        return {
            "runid": self.runid,
            "task_id": self.task_id,
            "sched_us": self.sched_us,
            "attempt": self.attempt,
            "trigger": self.trigger,
            "instance": self.instance,
            "first_runid": self.first_runid or self.runid,
            "parent_runid": self.parent_runid,
            "flow_runid": self.flow_runid,
        }

    @property
    def ref(self) -> RunRef:
        return RunRef(
            runid=self.runid,
            task_id=self.task_id,
            sched_us=self.sched_us,
            attempt=self.attempt,
            trigger=self.trigger,
            instance=self.instance,
            first_runid=self.first_runid or self.runid,
            parent_runid=self.parent_runid,
            flow_runid=self.flow_runid,
        )


def plan_run(
    task_id: int,
    sched_us: int,
    aid: int,
    *,
    attempt: int = 0,
    instance: int = 0,
    trigger: str = Trigger.SCHEDULE,
    first_runid: str = "",
    parent_runid: str = "",
    flow_runid: str = "",
    shard_total: int = 0,
    due_us: int = 0,
    rule_version: int = 0,
    params: str = "",
    env: str = "",
) -> PlannedRun:
    runid = make_runid(task_id, sched_us, aid, attempt, instance)
    return PlannedRun(
        runid=runid,
        task_id=task_id,
        aid=aid,
        sched_us=sched_us,
        attempt=attempt,
        instance=instance,
        trigger=trigger,
        first_runid=first_runid or runid,
        parent_runid=parent_runid,
        flow_runid=flow_runid,
        shard_total=shard_total,
        due_us=due_us,
        rule_version=rule_version,
        params=params,
        env=env,
    )


def planned_row(run: PlannedRun, epoch: int, now_us: int) -> dict[str, Any]:
    return {
        "runid": run.runid,
        "task_id": run.task_id,
        "aid": run.aid,
        "sched_us": run.sched_us,
        "attempt": run.attempt,
        "instance": run.instance,
        "trigger": run.trigger,
        "first_runid": run.first_runid or run.runid,
        "parent_runid": run.parent_runid,
        "flow_runid": run.flow_runid,
        "status": statuses.PLANNED,
        "epoch": epoch,
        "created_us": now_us,
        "updated_us": now_us,
        "due_us": run.due_us,
        "params": run.params or None,
        "env_override": run.env or None,
    }


def _ref_row(ref: RunRef, aid: int, now_us: int) -> dict[str, Any]:
    return {
        "runid": ref.runid,
        "task_id": ref.task_id,
        "aid": aid,
        "sched_us": ref.sched_us,
        "attempt": ref.attempt,
        "instance": ref.instance,
        "trigger": ref.trigger,
        "first_runid": ref.first_runid or ref.runid,
        "parent_runid": ref.parent_runid,
        "flow_runid": ref.flow_runid,
        "created_us": now_us,
        "updated_us": now_us,
    }


def started_row(msg: RunStarted, aid: int, now_us: int) -> dict[str, Any]:
    row = _ref_row(msg.ref, aid, now_us)  # filled in place: no second and third dict
    row["status"] = statuses.RUNNING
    row["pid"] = msg.pid
    row["start"] = msg.start_us
    row["run_user"] = msg.run_user[:64]
    row["uid"] = msg.uid
    row["gid"] = msg.gid
    return row


def finished_row(msg: RunFinished, aid: int, now_us: int) -> dict[str, Any]:
    status = msg.status if msg.status in statuses.FINAL else statuses.FAILED
    row = _ref_row(msg.ref, aid, now_us)  # filled in place: no second and third dict
    row["status"] = status
    row["pid"] = msg.pid
    row["start"] = msg.start_us
    row["end"] = msg.end_us
    row["code"] = msg.code
    row["signal"] = msg.signal
    row["reason"] = msg.reason[:500]
    row["result"] = msg.output.decode("utf-8", "replace")
    row["output_bytes"] = msg.output_bytes
    row["truncated"] = int(msg.truncated)
    row["run_user"] = msg.run_user[:64]
    row["uid"] = msg.uid
    row["gid"] = msg.gid
    return row
