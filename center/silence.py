"""Pure: which runs in flight on agents silent past the bound are lost, and their retries."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass

from center.decisions import plan_retry
from center.rules import Rule
from center.runs import PlannedRun
from protocol import statuses

IN_FLIGHT = frozenset({statuses.DISPATCHED, statuses.RUNNING})


@dataclass(frozen=True, slots=True)
class InFlight:
    """A `dispatched` or `running` run as the store has it, and when its agent last spoke."""

    run: PlannedRun
    status: str
    updated_us: int  # the row's last change: its agent was connected then
    heard_us: int  # the agent's last heartbeat or registration (0: never, or the agent is gone)

    @property
    def silent_since_us(self) -> int:
        return max(self.updated_us, self.heard_us)


@dataclass(frozen=True, slots=True)
class Lost:
    """A run to record as lost, why, and its next attempt if its rule asks for one."""

    run: PlannedRun
    agent: str
    reason: str
    retry: PlannedRun | None


def silence_reason(agent: str, bound_us: int) -> str:
    return f"agent {agent} silent for {bound_us / 1e6:g} s"


def lose_silent(
    rows: Iterable[InFlight],
    *,
    connected: Callable[[int], bool],
    names: Callable[[int], str],
    rules: Mapping[int, Rule],
    now_us: int,
    bound_us: int,
) -> list[Lost]:
    """Runs whose agent is not connected and has not been heard from for `bound_us` are lost.

    Whether such a run ran is unknown (the agent may be cut off yet alive, holding or running
    it), so it is retried only if its rule asks for at least once (`retry_unknown = retry`),
    as an attempt of its own. An agent that comes back within the bound reconciles instead."""
    out: list[Lost] = []
    for row in rows:
        run = row.run
        if row.status not in IN_FLIGHT or connected(run.aid):
            continue
        if now_us - row.silent_since_us < bound_us:
            continue
        retry = plan_retry(
            run.ref, statuses.LOST, run.aid, rules.get(run.task_id), now_us, unknown=True
        )
        agent = names(run.aid)
        out.append(Lost(run, agent, silence_reason(agent, bound_us), retry))
    return out
