"""The leader's limits across the fleet: a fleet-capped rule's own cap and the groups'
concurrency keys, admitted at each run's instant (center.admission) from the holders it keeps
(center.holders), rebuilt from the store when it starts leading and checked against it since."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping

import structlog
from sqlalchemy.ext.asyncio import AsyncEngine

from center import store
from center.admission import (
    FORGET_AFTER_S,
    GO,
    WAIT,
    Admission,
    KeyLoad,
    admit,
    admit_keys,
    at_instant,
    fleet_capped,
    rule_keys,
)
from center.holders import Holder, HolderBook, fleet_slot, key_slot
from center.rules import Rule
from center.runs import PlannedRun
from protocol.messages import RunRef

log = structlog.get_logger("center.fleet_limits")


class Limits:
    """Holders of every limited slot, the keys' limits, and the admission of due runs."""

    def __init__(self, lost_after_s: float) -> None:
        self._lost_after_us = int(lost_after_s * 1e6)
        self.book = HolderBook()
        self.keys: dict[tuple[int, str], int] = {}  # (gid, key) -> limit

    def admit(self, run: PlannedRun, rule: Rule, now_us: int) -> Admission:
        """Go (and hold its slots), wait for room, or be skipped, as the rule's policy says."""
        keys = {key_slot(rule.gid, k): k for k in rule_keys(rule)}
        capped = fleet_capped(rule)
        if (not keys and not capped) or self.book.holds(run.runid):
            return Admission(GO)  # unlimited, or sent before (the agent dedupes a resend)
        loads = [self._load(slot, key, rule, run.runid, now_us) for slot, key in keys.items()]
        decision = admit_keys(rule, loads)
        if decision.verdict == GO and capped:
            slot = fleet_slot(rule.id, run.instance)
            decision = admit(rule, [r for r, _ in self.book.holders(slot, now_us)])
            keys[slot] = ""
        if decision.verdict == WAIT:
            self.book.wait(keys, run.runid, now_us)
        elif decision.verdict != GO:
            self.book.unwait(run.runid)
        else:
            if decision.replace:
                aid = self.book.agent_of(decision.replace)
                decision = dataclasses.replace(decision, replace_aid=aid)
                self.book.release(decision.replace)
            self.book.hold(keys, run.runid, self._holder(run.aid, rule, now_us))
        return decision

    def _load(self, slot: str, key: str, rule: Rule, runid: str, now_us: int) -> KeyLoad:
        limit = self.keys.get((rule.gid, key)) if rule.gid is not None else None
        holders = tuple(self.book.holders(slot, now_us))
        return KeyLoad(key, limit, holders, self.book.ahead(slot, runid, now_us))

    def _holder(self, aid: int, rule: Rule, now_us: int) -> Holder:
        if rule.timeout_s:
            bound_us = int((rule.timeout_s + rule.kill_grace_s + FORGET_AFTER_S) * 1e6)
        else:
            bound_us = self._lost_after_us
        return Holder(aid, now_us, now_us + bound_us)

    def started(self, ref: RunRef, aid: int, rule: Rule | None, now_us: int) -> None:
        """A run reported started that this leader did not send (the last leader did, and
        died before the store said so): it holds its slots all the same."""
        if rule is not None and at_instant(rule) and not self.book.holds(ref.runid):
            holder = self._holder(aid, rule, now_us)
            self.book.hold(_slots(rule, ref.instance), ref.runid, holder)

    def ended(self, runid: str) -> None:
        self.book.release(runid)

    async def load(self, engine: AsyncEngine, rules: Mapping[int, Rule], now_us: int) -> None:
        """At the start of a term: the keys, and every limited rule's runs in flight."""
        self.keys = await store.load_keys(engine)
        limited = [task_id for task_id, rule in rules.items() if at_instant(rule)]
        for run in await store.runs_holding(engine, limited):
            rule = rules[run.task_id]
            holder = self._holder(run.aid, rule, now_us)
            self.book.hold(_slots(rule, run.instance), run.runid, holder)
        log.info("limits.loaded", keys=len(self.keys), holders=len(self.book))

    async def refresh(self, engine: AsyncEngine) -> None:
        """The keys as operators last set them; holders the store knows ended (lost, killed
        before they started, a finish this leader never heard) are released."""
        self.keys = await store.load_keys(engine)
        held = self.book.runids()
        if not held:
            return  # nothing held: no read
        for runid in await store.runs_ended(engine, held):
            self.book.release(runid)


def _slots(rule: Rule, instance: int) -> list[str]:
    slots = [key_slot(rule.gid, k) for k in rule_keys(rule)]
    if fleet_capped(rule):
        slots.append(fleet_slot(rule.id, instance))
    return slots
