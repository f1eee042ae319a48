"""Pure admission of a run whose rule is limited across the fleet, decided at the run's
instant from counts the leader keeps: a one-shot strategy rule's own `process_num` (its runs
on every agent), and the group's concurrency keys the rule holds (runs of every rule that
holds the key, on every agent). The rule's overlap policy decides what a run without room does."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from center.errors import RuleError
from center.rules import Rule, parse_keys
from protocol.vocabulary import Overlap

GO, WAIT = "", "wait"  # admission answers; anything else is the reason a run is skipped
FORGET_AFTER_S = 60.0  # beyond a run's time limit and grace: its end was missed (lost)
SHOWN_HOLDERS = 5  # holders named in a skip reason


@dataclass(frozen=True, slots=True)
class Admission:
    verdict: str  # GO, WAIT, or why the run is skipped
    replace: str = ""  # the run to stop first (overlap `replace` of a fleet-wide cap)
    replace_aid: int = 0  # its agent


@dataclass(frozen=True, slots=True)
class KeyLoad:
    """One concurrency key as a due run finds it."""

    key: str
    limit: int | None  # None: no such key in the rule's group
    holders: tuple[tuple[str, int], ...] = ()  # (runid, aid), oldest first
    ahead: int = 0  # runs waiting for this key that came before this one (FIFO)


def fleet_capped(rule: Rule | None) -> bool:
    """Whether the rule's process_num counts across the fleet: a one-shot rule that a strategy
    places (a `listed` rule's cap stays per agent, where its agent enforces it)."""
    return rule is not None and not rule.is_daemon and rule.routing != "listed"


def rule_keys(rule: Rule | None) -> tuple[str, ...]:
    """The concurrency keys a rule's runs hold (none for a rule whose list is malformed: such
    a rule is broken and never dispatched)."""
    if rule is None or not rule.concurrency_keys or rule.is_daemon:
        return ()
    try:
        return parse_keys(rule.concurrency_keys)
    except RuleError:
        return ()


def at_instant(rule: Rule | None) -> bool:
    """Whether the rule's runs are admitted at their instant (never sent ahead to wait at an
    agent): a count across the fleet can only be decided then."""
    return fleet_capped(rule) or bool(rule_keys(rule))


def admit(rule: Rule, running: Sequence[str]) -> Admission:
    """A fleet-capped rule's due run while `running` (oldest first) are in flight."""
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


def admit_keys(rule: Rule, loads: Sequence[KeyLoad]) -> Admission:
    """A due run that holds these keys: it goes when every key has room. Otherwise `skip`
    records why; every other policy waits for room (a key is never pre-empted, and a
    `parallel` rule may not exceed a limit other rules share)."""
    for load in loads:
        why = key_full(load)
        if why:
            return Admission(why if rule.overlap == Overlap.SKIP else WAIT)
    return Admission(GO)


def key_full(load: KeyLoad) -> str:
    """Why a key has no room for one more run ("" when it has)."""
    if load.limit is None:
        return f"concurrency key {load.key} does not exist in the rule's group"
    used = len(load.holders)
    if used + load.ahead < load.limit:
        return ""
    shown = ", ".join(f"{runid} (agent {aid})" for runid, aid in load.holders[:SHOWN_HOLDERS])
    more = f" and {used - SHOWN_HOLDERS} more" if used > SHOWN_HOLDERS else ""
    queued = f"; {load.ahead} queued before this run" if load.ahead else ""
    holders = f"runs {shown}{more}" if used else "no run"
    return f"concurrency key {load.key} full: {used}/{load.limit} held by {holders}{queued}"
