"""Rules as YAML files: export, parse with errors that name the place, diff against the store."""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import yaml

from center.calendars import builtin
from center.errors import RuleError
from center.rules import Rule, parse_env, validate_rule
from center.tables import crontab

FORMAT_VERSION = 1
# Every field of a rule, in the order files show them; `group`, `agents` and `depends_on` are
# names (the ids differ between databases), `env` a mapping.
TEXT = (
    "name",
    "description",
    "rule",
    "timezone",
    "execute",
    "run_user",
    "cwd",
    "overlap",
    "routing",
    "selector",
    "misfire",
    "depends_when",
    "retry_unknown",
    "calendar",
    "calendar_mode",
    "calendar_fallback",
    "concurrency_keys",
)
INTS = (
    "status",
    "process_num",
    "retries",
    "output_max_bytes",
    "shard_total",
    "misfire_window_s",
    "limit_mem_mb",
    "limit_cpu_s",
    "limit_nofile",
    "limit_nproc",
    "max_per_agent",
    "partition_stop_s",
    "jitter_s",
)
FLOATS = ("timeout_s", "kill_grace_s", "retry_backoff_s")
BOOLS = ("is_daemon", "shell", "failover", "allow_params")
ORDER = (
    "group",
    "name",
    "description",
    "status",
    "rule",
    "timezone",
    "execute",
    "shell",
    "run_user",
    "cwd",
    "env",
    "agents",
    "is_daemon",
    "process_num",
    "overlap",
    "timeout_s",
    "kill_grace_s",
    "retries",
    "retry_backoff_s",
    "output_max_bytes",
    "routing",
    "failover",
    "selector",
    "shard_total",
    "misfire",
    "misfire_window_s",
    "depends_on",
    "depends_when",
    "retry_unknown",
    "limit_mem_mb",
    "limit_cpu_s",
    "limit_nofile",
    "limit_nproc",
    "max_per_agent",
    "partition_stop_s",
    "calendar",
    "calendar_mode",
    "calendar_fallback",
    "jitter_s",
    "concurrency_keys",
    "allow_params",
)
_DEFAULT = Rule(id=0, rule="", execute="")
DEFAULTS: dict[str, Any] = {
    **{k: getattr(_DEFAULT, k, "") for k in (*TEXT, *INTS, *FLOATS, *BOOLS)},
    "env": {},
    "agents": [],
    "depends_on": None,
}


class RuleFileError(Exception):
    """A rule file is not valid: `where` is the rule's position, `field` and `reason` why."""

    def __init__(self, where: str, field: str, reason: str) -> None:
        super().__init__(f"{where}: {field}: {reason}")
        self.where, self.field, self.reason = where, field, reason


Key = tuple[str, str]  # (group name, rule name)


@dataclass(frozen=True, slots=True)
class Change:
    key: Key
    kind: str  # add, change, remove
    fields: tuple[tuple[str, Any, Any], ...] = ()


@dataclass
class Plan:
    """What an import would do; `unchanged` counts rules already as the file says."""

    changes: list[Change] = field(default_factory=list)
    unchanged: int = 0
    kept: list[Key] = field(default_factory=list)  # in the store, not in the file, no --prune

    def lines(self) -> list[str]:
        out = []
        for c in self.changes:
            label = "/".join(c.key)
            if c.kind == "add":
                out.append(f"+ {label} (new)")
            elif c.kind == "remove":
                out.append(f"- {label} (deleted)")
            else:
                out.append(f"~ {label}")
                out += [f"    {name}: {old!r} -> {new!r}" for name, old, new in c.fields]
        out += [f"  {'/'.join(k)}: not in the file, kept (--prune deletes it)" for k in self.kept]
        out.append(
            f"{sum(c.kind == 'add' for c in self.changes)} to add, "
            f"{sum(c.kind == 'change' for c in self.changes)} to change, "
            f"{sum(c.kind == 'remove' for c in self.changes)} to delete, {self.unchanged} unchanged"
        )
        return out


# ---------------------------------------------------------------- export


def file_entry(values: Mapping[str, Any]) -> dict[str, Any]:
    """One rule as a file shows it: every field, in ORDER, normalized."""
    return {name: _normal(name, values.get(name, DEFAULTS.get(name))) for name in ORDER}


def _normal(name: str, value: Any) -> Any:
    if name in BOOLS:
        return bool(value)
    if name in FLOATS:
        return float(value)
    if name == "env":
        return dict(sorted(value.items())) if isinstance(value, dict) else parse_env(value or "{}")
    if name == "agents":
        return sorted(value)
    return value


def dump(entries: list[dict[str, Any]], groups: list[str], header: str = "") -> str:
    """The YAML text: rules sorted by group and name, so that diffs in git stay small.
    `groups` are the groups the file speaks for: what --prune may delete from."""
    ordered = sorted(entries, key=lambda e: (e["group"], e["name"]))
    document = {"version": FORMAT_VERSION, "groups": sorted(groups), "rules": ordered}
    text = yaml.safe_dump(document, sort_keys=False, allow_unicode=True, width=1000)
    return (f"# {header}\n" if header else "") + text


# ---------------------------------------------------------------- parse and check


@dataclass(frozen=True, slots=True)
class RuleFile:
    """A parsed file: its rules, and the groups it speaks for (listed, or its rules')."""

    entries: list[dict[str, Any]]
    groups: frozenset[str]


def parse(text: str, source: str = "rules") -> RuleFile:
    """The entries of a rule file, each complete and checked as the center checks rules."""
    try:
        document = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise RuleFileError(source, "yaml", str(exc).replace("\n", " ")) from None
    if not isinstance(document, dict) or not isinstance(document.get("rules"), list):
        raise RuleFileError(source, "rules", "the file must be a mapping with a `rules:` list")
    if document.get("version", FORMAT_VERSION) != FORMAT_VERSION:
        raise RuleFileError(source, "version", f"only version {FORMAT_VERSION} is known")
    entries, seen = [], set()
    for i, raw in enumerate(document["rules"]):
        where = f"{source}: rules[{i}]"
        entry = checked_entry(raw, where)
        key = (entry["group"], entry["name"])
        if key in seen:
            raise RuleFileError(where, "name", f"{'/'.join(key)} is in the file twice")
        seen.add(key)
        entries.append(entry | {"_where": f"{where} ({key[0]}/{key[1]})"})
    groups = document.get("groups", [])
    if not isinstance(groups, list) or not all(isinstance(g, str) for g in groups):
        raise RuleFileError(source, "groups", "must be a list of group names")
    return RuleFile(entries, frozenset(groups) | {e["group"] for e in entries})


def checked_entry(raw: Any, where: str) -> dict[str, Any]:
    """Defaults filled in, types checked, then validate_rule: RuleFileError names the field."""
    if not isinstance(raw, dict):
        raise RuleFileError(where, "-", "each rule must be a mapping of field: value")
    unknown = sorted(set(raw) - set(ORDER))
    if unknown:
        raise RuleFileError(where, str(unknown[0]), f"unknown field (known: {', '.join(ORDER)})")
    for required in ("group", "name", "execute"):
        if not raw.get(required):
            raise RuleFileError(where, required, "is required")
    where = f"{where} ({raw['group']}/{raw['name']})"
    entry = {name: raw.get(name, DEFAULTS.get(name)) for name in ORDER}
    for name in ORDER:
        entry[name] = _typed(where, name, entry[name])
    _validate(where, entry)
    return entry


def _typed(where: str, name: str, value: Any) -> Any:
    """One field's value with its type checked (and ints accepted where floats are)."""
    if not _type_ok(name, value):
        raise RuleFileError(where, name, f"{value!r} has the wrong type")
    if name in FLOATS and not math.isfinite(value):
        raise RuleFileError(where, name, "must be a finite number")
    if name in TEXT:
        limit = crontab.c[name].type.length  # type: ignore[attr-defined]
        if limit and len(value) > limit:
            raise RuleFileError(where, name, f"is longer than {limit} characters")
        return value if name == "execute" else value.strip()
    return _normal(name, value)


def _type_ok(name: str, value: Any) -> bool:
    if name in (*TEXT, "group"):
        return isinstance(value, str)
    if name in (*INTS, *FLOATS):
        number = int if name in INTS else (int, float)
        return isinstance(value, number) and not isinstance(value, bool)
    if name in BOOLS:
        return isinstance(value, bool) or value in (0, 1)
    if name == "env":
        return isinstance(value, dict)
    if name == "agents":
        return isinstance(value, list) and all(isinstance(a, str) for a in value)
    return value is None or isinstance(value, str)  # depends_on


def _validate(where: str, entry: dict[str, Any]) -> None:
    if entry["status"] not in (0, 1):
        raise RuleFileError(where, "status", "must be 1 (enabled) or 0 (paused)")
    if not entry["is_daemon"] and not entry["rule"] and entry["depends_on"] is None:
        raise RuleFileError(where, "rule", "is empty: give a cron expression")
    fields = {k: v for k, v in entry.items() if k in Rule.__dataclass_fields__}
    fields |= {"env": json.dumps(entry["env"]), "timezone": entry["timezone"] or "UTC"}
    fields["depends_on"] = -1 if entry["depends_on"] is not None else None
    if builtin(entry["calendar"]) is None:
        # a group's own calendar lives in the database: the center checks the name there
        fields["calendar"] = ""
    try:
        validate_rule(Rule(id=0, **{k: v for k, v in fields.items() if k not in ("agents",)}))
    except RuleError as exc:
        raise RuleFileError(where, exc.field, exc.reason) from None


# ---------------------------------------------------------------- diff


def plan(rule_file: RuleFile, stored: dict[Key, dict[str, Any]], *, prune: bool) -> Plan:
    """Compare the file's entries with the stored rules (as file entries), field by field."""
    out, wanted = Plan(), rule_file.entries
    for entry in sorted(wanted, key=lambda e: (e["group"], e["name"])):
        key = (entry["group"], entry["name"])
        old = stored.get(key)
        if old is None:
            out.changes.append(Change(key, "add"))
            continue
        diff = tuple((n, old[n], entry[n]) for n in ORDER if old[n] != entry[n])
        if diff:
            out.changes.append(Change(key, "change", diff))
        else:
            out.unchanged += 1
    groups = rule_file.groups
    wanted_keys = {(e["group"], e["name"]) for e in wanted}
    for key in sorted(stored):
        if key[0] in groups and key not in wanted_keys:
            if prune:
                out.changes.append(Change(key, "remove"))
            else:
                out.kept.append(key)
    return out
