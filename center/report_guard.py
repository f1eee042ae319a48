"""Which agent may speak for which run (pure): a run id names the agent that runs it, and a
rule names the agents it may use; a report from any other agent is refused."""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass

from center.routing import AgentInfo
from center.rules import Rule
from protocol.messages import (
    DaemonStatus,
    Message,
    RunFinished,
    RunOutput,
    RunRef,
    RunStarted,
    make_runid,
)
from protocol.vocabulary import Trigger


class Verdict(enum.Enum):
    ACCEPT = "accept"
    REFUSE = "refuse"
    CHECK = "check"  # accepted only if the store has this run for this agent


@dataclass(frozen=True, slots=True)
class Judgement:
    verdict: Verdict
    reason: str = ""


ACCEPTED = Judgement(Verdict.ACCEPT)


def parse_runid(runid: str) -> tuple[int, int, int, int, int] | None:
    """(task_id, sched_us, aid, attempt, instance) of a run id the center or an agent made."""
    parts = runid.split("-")
    if len(parts) != 5 or not all(p.isdigit() for p in parts):
        return None
    task_id, sched_us, aid, attempt, instance = (int(p) for p in parts)
    return task_id, sched_us, aid, attempt, instance


def names_run(runid: str, ids: tuple[int, int, int, int, int]) -> bool:
    """`parse_runid(runid) == ids`, most often without parsing: an id as `make_runid` writes
    it (four dashes: no sign) is compared as text (once per report)."""
    if runid == make_runid(*ids) and runid.count("-") == 4:
        return True
    return parse_runid(runid) == ids  # another spelling of the same numbers, or not its own


def may_use(rule: Rule, aid: int, agents: Mapping[int, AgentInfo]) -> bool:
    """Whether `rule` may run on agent `aid`: listed for it (or, for a strategy without a
    list, in its group), approved, and its policy accepts the rule's user."""
    info = agents.get(aid)
    if info is None or not info.approved or not info.permits(rule.run_user):
        return False
    if rule.agents or rule.routing == "listed":
        return aid in rule.agents
    return info.gid == rule.gid


def judge_report(
    message: Message, aid: int, rules: Mapping[int, Rule], agents: Mapping[int, AgentInfo]
) -> Judgement:
    """Pure: may agent `aid` report this? Output and results only for a run whose id names the
    agent; a daemon's only for a rule that runs on it; a one-shot's of a rule that no longer
    lists the agent only if the center planned it there (CHECK)."""
    if isinstance(message, RunOutput):
        ids = parse_runid(message.runid)
        if ids is None or ids[2] != aid:
            return Judgement(Verdict.REFUSE, f"output of run {message.runid[:80]!r}, not its own")
        return ACCEPTED
    if isinstance(message, DaemonStatus):
        rule = rules.get(message.task_id)
        if rule is None or not may_use(rule, aid, agents):
            return Judgement(Verdict.REFUSE, f"daemon state of rule {message.task_id}")
        return ACCEPTED
    if isinstance(message, RunStarted | RunFinished):
        return _judge_run(message.ref, aid, rules.get(message.ref.task_id), agents)
    return ACCEPTED


def _judge_run(
    ref: RunRef, aid: int, rule: Rule | None, agents: Mapping[int, AgentInfo]
) -> Judgement:
    if not names_run(ref.runid, (ref.task_id, ref.sched_us, aid, ref.attempt, ref.instance)):
        return Judgement(Verdict.REFUSE, f"run {ref.runid[:80]!r} is not one sent to it")
    if rule is not None and may_use(rule, aid, agents):
        return ACCEPTED
    if ref.trigger == Trigger.DAEMON:
        return Judgement(Verdict.REFUSE, f"rule {ref.task_id} runs no daemon on it")
    return Judgement(Verdict.CHECK, f"rule {ref.task_id} does not (or no longer) use it")
