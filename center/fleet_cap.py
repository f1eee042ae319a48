"""One-shot rules with a strategy: `process_num` caps their runs across the fleet, not per
agent. The leader counts each such rule's runs from sent to finished and decides, at the run's
instant, by the rule's overlap policy (skip, queue, replace, parallel)."""

from __future__ import annotations

from dataclasses import dataclass

from center.rules import Rule
from protocol.vocabulary import Overlap

Key = tuple[int, int]  # (task_id, shard): each shard of a sharded rule has its own cap
GO, WAIT = "", "wait"  # admission answers; anything else is the reason a run is skipped
FORGET_AFTER_S = 60.0  # beyond a run's time limit and grace: its end was missed (lost)


def fleet_capped(rule: Rule | None) -> bool:
    """Whether the rule's process_num counts across the fleet: a one-shot rule that a strategy
    places (a `listed` rule's cap stays per agent, where its agent enforces it)."""
    return rule is not None and not rule.is_daemon and rule.routing != "listed"


@dataclass(frozen=True, slots=True)
class Admission:
    verdict: str  # GO, WAIT, or why the run is skipped
    replace: str = ""  # the run to stop first (overlap `replace`)


def admit(rule: Rule, running: list[str]) -> Admission:
    """Pure: what a due run of `rule` may do while `running` (oldest first) are in flight."""
    if len(running) < rule.process_num or rule.overlap == Overlap.PARALLEL:
        return Admission(GO)
    if rule.overlap == Overlap.QUEUE:
        return Admission(WAIT)
    if rule.overlap == Overlap.REPLACE:
        return Admission(GO, replace=running[0])
    return Admission(
        f"{len(running)} runs of rule {rule.id} already running across the fleet "
        f"(process_num={rule.process_num})"
    )


class FleetCap:
    """Runs in flight of the fleet-capped rules: (task_id, shard) -> runid -> (sent at, its
    agent)."""

    def __init__(self, forget_after_s: float) -> None:
        self._forget_after_us = int(forget_after_s * 1e6)
        self._runs: dict[Key, dict[str, tuple[int, int]]] = {}

    def running(self, rule: Rule, key: Key, now_us: int) -> list[str]:
        """Its runs in flight (of one shard), oldest first; ones older than any end they
        could have are dropped (their end was lost with their agent)."""
        runs = self._runs.get(key, {})
        limit_us = int((rule.timeout_s + rule.kill_grace_s + FORGET_AFTER_S) * 1e6)
        horizon_us = now_us - (limit_us if rule.timeout_s else self._forget_after_us)
        for runid in [r for r, (sent_us, _) in runs.items() if sent_us < horizon_us]:
            del runs[runid]
        return sorted(runs, key=runs.__getitem__)

    def agent_of(self, key: Key, runid: str) -> int:
        return self._runs.get(key, {}).get(runid, (0, 0))[1]

    def sent(self, key: Key, runid: str, aid: int, now_us: int) -> None:
        self._runs.setdefault(key, {})[runid] = (now_us, aid)

    def ended(self, key: Key, runid: str) -> None:
        runs = self._runs.get(key)
        if runs is not None:
            runs.pop(runid, None)
