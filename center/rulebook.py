"""The rules in memory, kept in step with the store: what to (re)plan, unplan, or mark broken."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field

from center.calendars import Calendar
from center.errors import RuleError
from center.rules import Rule, validate_rule
from center.timing import FireTimes
from protocol.vocabulary import RuleStatus

ENABLED = RuleStatus.ENABLED


@dataclass(slots=True)
class RuleChanges:
    """The result of one poll: the planner and the store act on it."""

    plan: list[tuple[int, FireTimes]] = field(default_factory=list)
    unplan: list[int] = field(default_factory=list)
    errors: dict[int, str] = field(default_factory=dict)  # task_id -> error to store ("" clears)
    daemons: list[int] = field(default_factory=list)  # daemon rules whose wish changed

    def __bool__(self) -> bool:
        return bool(self.plan or self.unplan or self.errors or self.daemons)


class RuleBook:
    """Rules by id with their schedules; `update` is pure bookkeeping, no I/O."""

    def __init__(self) -> None:
        self.rules: dict[int, Rule] = {}
        self.schedules: dict[int, FireTimes] = {}
        self.children: dict[int, set[int]] = {}  # parent task_id -> rules that depend on it
        # Kept as rules come and go, so that the loops that care (daemons, fleet services,
        # the error gauge) read a handful of rules, not a scan of a million every tick.
        self.daemons: dict[int, Rule] = {}
        self.in_error: set[int] = set()
        self.max_update_us = 0
        self.calendars: Mapping[tuple[int, str], Calendar] = {}  # groups' own, by (gid, name)

    def update(self, rows: list[Rule], *, complete: bool) -> RuleChanges:
        """Apply fresh rows; with `complete`, a rule missing from them was deleted."""
        changes = RuleChanges()
        if complete:
            seen = {r.id for r in rows}
            for task_id in [t for t in self.rules if t not in seen]:
                self._forget(task_id, changes)
        for rule in rows:
            self.max_update_us = max(self.max_update_us, rule.update_time)
            if self.rules.get(rule.id) != rule:
                self._apply(rule, changes)
        return changes

    def update_calendars(self, calendars: Mapping[tuple[int, str], Calendar]) -> RuleChanges:
        """New group calendars: the rules using one that changed, came or went are re-planned."""
        changes = RuleChanges()
        old, self.calendars = self.calendars, dict(calendars)
        moved = {
            k for k in old.keys() | self.calendars.keys() if old.get(k) != self.calendars.get(k)
        }
        for rule in list(self.rules.values()):
            if rule.calendar and (rule.gid, rule.calendar) in moved:
                self._apply(rule, changes)
        return changes

    def plannable(self) -> Iterator[tuple[int, FireTimes]]:
        """Every rule the planner should hold (after a leadership change)."""
        rules = self.rules
        return ((t, s) for t, s in self.schedules.items() if rules[t].status == ENABLED)

    def dependents(self, task_id: int) -> list[Rule]:
        return [self.rules[c] for c in sorted(self.children.get(task_id, ())) if c in self.rules]

    def _link(self, old: Rule | None, new: Rule | None) -> None:
        if old is not None and old.depends_on is not None:
            self.children.get(old.depends_on, set()).discard(old.id)
        if new is not None and new.depends_on is not None:
            self.children.setdefault(new.depends_on, set()).add(new.id)

    def _forget(self, task_id: int, changes: RuleChanges) -> None:
        self._link(self.rules.get(task_id), None)
        rule = self.rules.pop(task_id)
        self.schedules.pop(task_id, None)
        self.daemons.pop(task_id, None)
        self.in_error.discard(task_id)
        changes.unplan.append(task_id)
        if rule.is_daemon:
            changes.daemons.append(task_id)

    def _apply(self, rule: Rule, changes: RuleChanges) -> None:
        old = self.rules.get(rule.id)
        self.schedules.pop(rule.id, None)
        try:
            deleted = rule.status == RuleStatus.DELETED
            schedule = None if deleted else validate_rule(rule, self.calendars)
            error = ""
        except RuleError as exc:
            schedule, error = None, f"{exc.field}: {exc.reason}"
        if error != rule.error:
            changes.errors[rule.id] = error
        rule = _with_error(rule, error)
        self._link(old, rule)
        self.rules[rule.id] = rule
        self._index(rule)
        if schedule is not None and rule.enabled:
            self.schedules[rule.id] = schedule
            changes.plan.append((rule.id, schedule))
        else:
            changes.unplan.append(rule.id)
        if rule.is_daemon or (old is not None and old.is_daemon):
            changes.daemons.append(rule.id)

    def _index(self, rule: Rule) -> None:
        if rule.is_daemon:
            self.daemons[rule.id] = rule
        else:
            self.daemons.pop(rule.id, None)
        if rule.error:
            self.in_error.add(rule.id)
        else:
            self.in_error.discard(rule.id)


def _with_error(rule: Rule, error: str) -> Rule:
    if rule.error == error:
        return rule
    from dataclasses import replace

    return replace(rule, error=error)
