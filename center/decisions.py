"""Pure decisions: retrying a finished run, and catching up fires missed with no leader."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

from center.routing import AgentInfo, choose
from center.rulebook import RuleBook
from center.rules import Rule
from center.runs import PlannedRun, plan_run
from center.timing import FireTimes
from protocol import statuses
from protocol.messages import RunFinished, RunRef
from protocol.vocabulary import RetryUnknown, Trigger

RETRIED = frozenset({statuses.FAILED, statuses.TIMEOUT, statuses.LOST})
MAX_BACKOFF_US = 86_400 * 1_000_000


def retry_backoff_us(rule: Rule, attempt: int) -> int:
    """Exponential: retry_backoff_s, doubled per attempt already made, capped at a day."""
    return int(min(rule.retry_backoff_s * 1e6 * 2**attempt, MAX_BACKOFF_US))


def plan_retry(
    ref: RunRef, status: str, aid: int, rule: Rule | None, now_us: int, *, unknown: bool = False
) -> PlannedRun | None:
    """The next attempt of a run that failed, timed out or was lost, if its rule allows one.
    A run whose outcome is `unknown` (it may have run) is retried only if its rule asks for at
    least once (`retry_unknown = retry`); by default such a fire runs at most once."""
    if rule is None or not rule.enabled or rule.is_daemon or status not in RETRIED:
        return None
    if unknown and rule.retry_unknown != RetryUnknown.RETRY:
        return None
    if ref.attempt >= rule.retries or ref.trigger == Trigger.DAEMON:
        return None
    return plan_run(
        ref.task_id,
        ref.sched_us,
        aid,
        attempt=ref.attempt + 1,
        instance=ref.instance,
        trigger=Trigger.RETRY,
        first_runid=ref.first_runid or ref.runid,
        parent_runid=ref.parent_runid,
        flow_runid=ref.flow_runid,
        due_us=now_us + retry_backoff_us(rule, ref.attempt),
    )


MISFIRE_RECORD_CAP = 100  # rows per rule per takeover; a longer outage is counted in the log


@dataclass(frozen=True, slots=True)
class MisfirePlan:
    """For one rule after a gap with no leader: fires to run now, fires recorded as missed."""

    run: tuple[int, ...] = ()
    missed: tuple[int, ...] = ()
    more: bool = False  # fires beyond the cap were neither run nor recorded


def misfire_plan(
    schedule: FireTimes,
    policy: str,
    window_s: int,
    *,
    gap_from_us: int,
    now_us: int,
    cap: int = MISFIRE_RECORD_CAP,
) -> MisfirePlan:
    """Fires in (gap_from, now], oldest first: `skip` records them missed, `once` runs the
    newest and records the rest, `all` runs them; none older than the window is looked at."""
    start_us = max(gap_from_us, now_us - window_s * 1_000_000 - 1)
    fires, more = _first_fires(schedule, start_us, now_us, cap)
    if policy == "all":
        return MisfirePlan(run=tuple(fires), more=more)
    if policy == "once" and fires:
        newest = _newest_fire(schedule, start_us, now_us) if more else fires[-1]
        return MisfirePlan(run=(newest,), missed=tuple(f for f in fires if f != newest), more=more)
    return MisfirePlan(missed=tuple(fires), more=more)


def _first_fires(
    schedule: FireTimes, after_us: int, until_us: int, cap: int
) -> tuple[list[int], bool]:
    """Up to `cap` fires in (after, until], and whether there are more."""
    fires: list[int] = []
    nxt = schedule.next_fire_us(after_us)
    while nxt is not None and nxt <= until_us:
        if len(fires) == cap:
            return fires, True
        fires.append(nxt)
        nxt = schedule.next_fire_us(nxt)
    return fires, False


def _newest_fire(schedule: FireTimes, after_us: int, until_us: int) -> int:
    """The last fire in (after, until], probing backwards from `until` in doubling steps."""
    step_us = 1_000_000
    while True:
        probe = max(until_us - step_us, after_us)
        fire = schedule.next_fire_us(probe)
        if fire is not None and fire <= until_us:
            while (nxt := schedule.next_fire_us(fire)) is not None and nxt <= until_us:
                fire = nxt
            return fire
        if probe == after_us:
            return until_us  # unreachable when a fire is known to exist in the range
        step_us *= 2


def wanted_by(when: str, status: str) -> bool:
    """Whether a parent run that ended with `status` starts a rule with `depends_when`."""
    success = status == statuses.SUCCESS
    failure = status in (statuses.FAILED, statuses.TIMEOUT, statuses.LOST)
    return success if when == "success" else failure if when == "failure" else success or failure


def plan_dependents(
    finished: list[tuple[int, RunFinished]],
    rulebook: RuleBook,
    agents: Mapping[int, AgentInfo],
    online: Callable[[int], bool],
    now_us: int,
) -> list[PlannedRun]:
    """Rules that wait for a parent run to end as they asked: one run per parent fire (the
    child's run id comes from the parent's fire, so a broadcast parent starts it once)."""
    runs: list[PlannedRun] = []
    for _aid, msg in finished:
        if msg.ref.trigger == Trigger.DAEMON:
            continue
        for child in rulebook.dependents(msg.ref.task_id):
            if child.enabled and not child.error and wanted_by(child.depends_when, msg.status):
                runs += [
                    plan_run(
                        child.id,
                        msg.ref.sched_us,
                        aid,
                        instance=shard,
                        trigger=Trigger.DEPENDENCY,
                        parent_runid=msg.ref.runid,
                        shard_total=child.shard_total,
                        due_us=now_us,
                    )
                    for shard, aid in choose(child, agents, online)
                ]
    return runs
