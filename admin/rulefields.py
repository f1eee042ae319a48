"""A rule's editable fields, parsed from a form or the API and checked as the center would."""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

from admin.errors import Invalid
from center.calendars import Calendar
from center.cronexpr import parse_schedule
from center.errors import RuleError
from center.rules import NO_CALENDARS, Rule, parse_env, parse_keys, validate_rule

# Pure: no I/O. Whether the agents and the group exist is checked by services/rules.py.

# Columns of `crontab` an operator edits, by kind; `gid` and `agents` are handled apart.
TEXT_LIMITS = {
    "name": 128,
    "rule": 128,
    "execute": 65535,
    "run_user": 64,
    "timezone": 64,
    "env": 65535,
    "cwd": 255,
    "overlap": 16,
    "routing": 16,
    "selector": 255,
    "misfire": 8,
    "depends_when": 8,
    "retry_unknown": 8,
    "description": 500,
    # calendars and spread
    "calendar": 64,
    "calendar_mode": 8,
    "calendar_fallback": 8,
    "concurrency_keys": 500,  # shared limits: the group's keys, comma-separated
}
INT_FIELDS = (
    "process_num",
    "status",
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
FLOAT_FIELDS = ("timeout_s", "kill_grace_s", "retry_backoff_s")
BOOL_FIELDS = ("is_daemon", "shell", "failover", "allow_params")
OPTIONAL_INT_FIELDS = ("depends_on",)
COLUMNS = (*TEXT_LIMITS, *INT_FIELDS, *FLOAT_FIELDS, *BOOL_FIELDS, *OPTIONAL_INT_FIELDS)
_DEFAULTS = Rule(id=0, rule="", execute="")
_RULE_FIELDS = frozenset(Rule.__dataclass_fields__) - {"id", "gid", "agents"}
# `description` is the admin's alone: the center's Rule does not carry it.
DEFAULTS: dict[str, Any] = {name: getattr(_DEFAULTS, name, "") for name in COLUMNS}
_MAX_INT = 2**31 - 1


def _whole(field: str, text: str) -> int:
    try:
        value = int(text.strip())
    except ValueError:
        raise Invalid(field, f"{text[:40]!r} is not a whole number") from None
    if abs(value) > _MAX_INT:
        raise Invalid(field, f"{value} is too large")
    return value


def _number(field: str, text: str) -> float:
    try:
        value = float(text.strip())
    except ValueError:
        raise Invalid(field, f"{text[:40]!r} is not a number") from None
    if not math.isfinite(value):
        raise Invalid(field, "must be a finite number")
    return value


def _optional(field: str, text: str) -> int | None:
    return _whole(field, text) if text.strip() else None


_FORM_PARSERS: dict[str, Callable[[str, str], Any]] = {
    **dict.fromkeys(INT_FIELDS, _whole),
    **dict.fromkeys(FLOAT_FIELDS, _number),
    **dict.fromkeys(OPTIONAL_INT_FIELDS, _optional),
}


def from_form(form: Mapping[str, str], agents: list[str]) -> dict[str, Any]:
    """The values of an HTML form: text as given, numbers parsed, absent checkboxes false."""
    values: dict[str, Any] = {}
    for name in COLUMNS:
        if name in BOOL_FIELDS:
            values[name] = form.get(name) in ("1", "on", "true")
        elif name in form:
            parse = _FORM_PARSERS.get(name)
            values[name] = parse(name, form[name]) if parse else form[name]
    if form.get("gid", "").strip():
        values["gid"] = _whole("gid", form["gid"])
    values["agents"] = [_whole("agents", a) for a in agents if a.strip()]
    return values


def normalized_env(value: Any) -> str:
    """The `env` column from a JSON object or its text; RuleError names `env` if bad."""
    if isinstance(value, Mapping):
        value = json.dumps(dict(value))
    if not isinstance(value, str):
        raise RuleError("env", "must be a JSON object of NAME: value")
    return json.dumps(parse_env(value), sort_keys=True)


def checked(
    values: Mapping[str, Any],
    calendars: Mapping[tuple[int, str], Calendar] = NO_CALENDARS,
    task_id: int = 0,
) -> dict[str, Any]:
    """The column values to store, after every check the center makes; Invalid names the field.
    `calendars`: the rule's group's own; `task_id` (0 for a new rule) seeds H and jitter."""
    out = {name: values.get(name, DEFAULTS[name]) for name in COLUMNS}
    try:
        out["env"] = normalized_env(out["env"])
        _check_text(out)
        for name in FLOAT_FIELDS:
            if not math.isfinite(out[name]):
                raise RuleError(name, "must be a finite number")
        fields = {k: v for k, v in out.items() if k in _RULE_FIELDS}
        rule = Rule(id=task_id, gid=values.get("gid"), **fields)
        validate_rule(rule, calendars)
        out["concurrency_keys"] = ",".join(parse_keys(rule.concurrency_keys))
        if rule.is_daemon:
            parse_schedule("@hourly", rule.timezone or "UTC")  # the zone must exist all the same
    except RuleError as exc:
        raise Invalid(exc.field, exc.reason) from None
    if out["status"] not in (0, 1):
        raise Invalid("status", "must be 1 (enabled) or 0 (paused)")
    for name in BOOL_FIELDS:
        out[name] = int(bool(out[name]))
    return out


def _check_text(values: dict[str, Any]) -> None:
    for name, limit in TEXT_LIMITS.items():
        value = values[name]
        if not isinstance(value, str):
            raise RuleError(name, "must be text")
        if len(value.encode()) > limit:
            raise RuleError(name, f"is longer than {limit} bytes")
        values[name] = value if name in ("execute", "env") else value.strip()
    if not values["name"]:
        raise RuleError("name", "is empty: give the rule a name")
    # An empty schedule is allowed: the rule runs by hand, after its parent or in a workflow.
    values["timezone"] = values["timezone"] or "UTC"


def preview(expr: str, tz: str, after_us: int, count: int = 10) -> list[str]:
    """The next `count` fire times as local wall-clock text in `tz`; RuleError if it won't parse."""
    fires = parse_schedule(expr, tz or "UTC").preview_us(after_us, count)  # checks tz first
    return wall_times(fires, tz)


def wall_times(fires: list[int], tz: str) -> list[str]:
    """Instants as local wall-clock text in `tz` (milliseconds shown when a jitter made them)."""
    zone = ZoneInfo(tz or "UTC")
    out = []
    for us in fires:
        local = datetime.fromtimestamp(us // 1_000_000, UTC).astimezone(zone)
        millis = f".{us // 1000 % 1000:03d}" if us % 1_000_000 else ""
        out.append(local.strftime(f"%Y-%m-%d %H:%M:%S{millis} %Z (%z)"))
    return out
