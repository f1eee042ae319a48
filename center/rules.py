"""Rules as the center sees them: built from rows, validated field by field, made into run specs."""

from __future__ import annotations

import json
import re
import shlex
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import Field, dataclass, fields
from functools import lru_cache
from operator import attrgetter
from typing import Any, ClassVar

from center.calendars import Calendar, find_calendar
from center.errors import RuleError
from center.timing import FireTimes, build_timing
from i18n.marks import N_
from protocol.messages import RunSpec
from protocol.rlimits import LIMIT_MAX, LIMIT_MIN, is_loader_variable, limit_problem
from protocol.vocabulary import DependsWhen, Misfire, Overlap, RetryUnknown, Routing, RuleStatus

OVERLAP_POLICIES = tuple(Overlap)
ROUTINGS = tuple(Routing)
MISFIRE_POLICIES = tuple(Misfire)
DEPENDS_WHEN = tuple(DependsWhen)
RETRY_UNKNOWN = tuple(RetryUnknown)
# One rule may not flood the database every group shares: runs it may make per minute
# (fires in its busiest minute × shards), and instances or shards per fire.
MAX_RUNS_PER_MINUTE = 600
MAX_FAN_OUT = 256
FAN_OUT_PROBE_US = 1_767_225_600_000_000  # 2026-01-01T00:00Z: any fixed start will do
_USER_RE = re.compile(r"^[a-z_][a-z0-9_.-]{0,31}\$?$", re.IGNORECASE)
NOT_UNICODE = N_("must be valid Unicode text (a lone surrogate such as \\ud800 is not)")
_ENV_NAME_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")

ENABLED, PAUSED, DELETED = RuleStatus.ENABLED, RuleStatus.PAUSED, RuleStatus.DELETED


@dataclass(frozen=True, slots=True, kw_only=True)
class Rule:
    """One `crontab` row plus its `crontab_agent` targets."""

    id: int
    gid: int | None = None
    name: str = ""
    rule: str
    execute: str
    run_user: str = ""
    process_num: int = 1
    is_daemon: bool = False
    status: int = ENABLED
    timezone: str = "UTC"
    shell: bool = False
    env: str = "{}"
    cwd: str = ""
    timeout_s: float = 0.0
    kill_grace_s: float = 5.0
    retries: int = 0
    retry_backoff_s: float = 10.0
    overlap: str = "skip"
    output_max_bytes: int = 256 * 1024
    routing: str = "listed"
    failover: bool = True
    selector: str = ""
    shard_total: int = 0
    misfire: str = "skip"
    misfire_window_s: int = 3600
    depends_on: int | None = None
    depends_when: str = "success"
    retry_unknown: str = "never"
    limit_mem_mb: int = 0
    limit_cpu_s: int = 0
    limit_nofile: int = 0
    limit_nproc: int = 0
    max_per_agent: int = 0
    partition_stop_s: int = 0
    # Calendars and spread (center/timing.py): a calendar by name ("" = none) used `only` or
    # `except`, what a date past its data does, and a deterministic offset per fire.
    calendar: str = ""
    calendar_mode: str = "only"
    calendar_fallback: str = "skip"
    jitter_s: int = 0
    concurrency_keys: str = ""  # the group's keys each run holds (comma-separated)
    allow_params: bool = False  # run now may append params and override env
    error: str = ""
    update_time: int = 0
    agents: tuple[int, ...] = ()

    @property
    def enabled(self) -> bool:
        return self.status == ENABLED

    @property
    def is_service(self) -> bool:
        """A fleet service: a daemon rule whose strategy keeps process_num instances in total
        over its eligible agents (a `listed` daemon runs process_num on each listed agent)."""
        return self.is_daemon and self.routing != "listed"


_BOOL_FIELDS = frozenset({"is_daemon", "shell", "failover", "allow_params"})
_FIELDS = frozenset(Rule.__dataclass_fields__)


def rule_from_row(row: Mapping[str, Any], agents: tuple[int, ...] = ()) -> Rule:
    """Build a Rule from a `crontab` row mapping (unknown columns ignored)."""
    values = {k: v for k, v in row.items() if k in _FIELDS}
    for key in _BOOL_FIELDS & values.keys():
        values[key] = bool(values[key])
    return Rule(**values, agents=tuple(sorted(agents)))


class RuleFactory:
    """Rules from rows of the given columns, a million at a start: texts and floats that
    repeat across rules (a command, a rule text, a zone, defaults) are shared, not held once
    per rule. Each field is set through its slot: `Rule(**values)` costs 20 µs a rule."""

    FIELDS: ClassVar[frozenset[str]] = _FIELDS - {"agents"}

    def __init__(self, columns: Sequence[str]) -> None:
        if columns[0] != "id" or not self.FIELDS.issuperset(columns):
            raise ValueError(f"rule columns must start with id and be Rule fields: {columns}")
        slots = {name: getattr(Rule, name).__set__ for name in _FIELDS}
        kinds = {f.name: f for f in fields(Rule)}
        at = list(enumerate(columns))
        self._plain = tuple((slots[c], i) for i, c in at if not _shared(c, kinds[c]))
        self._shared: tuple[tuple[Any, dict[Any, Any], int], ...] = tuple(
            (slots[c], {}, i) for i, c in at if _shared(c, kinds[c])
        )
        self._bools = tuple((slots[c], i) for i, c in at if c in _BOOL_FIELDS)
        self._defaults = tuple(
            (slots[f.name], f.default)
            for f in fields(Rule)
            if f.name not in columns and f.name != "agents"
        )
        self._set_agents = slots["agents"]
        self._targets: dict[tuple[int, ...], tuple[int, ...]] = {}

    def __call__(self, row: Sequence[Any], agents: Iterable[int] = ()) -> Rule:
        rule = object.__new__(Rule)
        for setter, i in self._plain:
            setter(rule, row[i])
        for setter, seen, i in self._shared:
            value = row[i]
            setter(rule, seen.setdefault(value, value))
        for setter, i in self._bools:
            setter(rule, bool(row[i]))
        for setter, default in self._defaults:
            setter(rule, default)
        self.set_targets(rule, agents)
        return rule

    def set_targets(self, rule: Rule, agents: Iterable[int]) -> None:
        """Give a rule it made its targets (sorted, one tuple shared by equal sets)."""
        targets = tuple(sorted(agents))
        self._set_agents(rule, self._targets.setdefault(targets, targets))


def _shared(name: str, spec: Field[Any]) -> bool:
    """Texts, floats and large ints (small ints are shared by Python itself), but not the
    values each rule has its own of."""
    if name in ("name", "update_time"):
        return False
    return spec.type in ("str", "float") or (type(spec.default) is int and spec.default > 256)


# A group's calendars by (gid, name); the built-in ones are always there.
NO_CALENDARS: Mapping[tuple[int, str], Calendar] = {}


def validate_rule(
    rule: Rule, calendars: Mapping[tuple[int, str], Calendar] = NO_CALENDARS
) -> FireTimes | None:
    """Check every field: the fire times (None for a daemon or a dependent-only rule), or
    RuleError naming the field. `calendars` are the groups' own, loaded by the caller."""
    schedule = _schedule(rule, calendars)
    key = _checked_fields(rule)
    problem = _verdicts.get(key, _UNKNOWN)
    if problem is _UNKNOWN:
        if len(_verdicts) >= MAX_VERDICTS:
            _verdicts.clear()
        problem = _verdicts[key] = _field_problem(rule)
    if problem is not None:
        raise RuleError(*problem)
    if schedule is not None:
        _check_fan_out(rule, schedule)
    return schedule


# Every field the checks after the schedule read: rules alike in these share one verdict, so
# a million rules with a handful of distinct commands and settings are checked a handful of
# times at a start (all the checks take ~15 µs a rule).
_CHECKED = (
    "execute", "shell", "run_user", "env", "selector", "overlap", "routing", "misfire",
    "depends_when", "retry_unknown", "process_num", "timeout_s", "kill_grace_s", "retries",
    "retry_backoff_s", "output_max_bytes", "shard_total", "misfire_window_s", "max_per_agent",
    "partition_stop_s", "limit_mem_mb", "limit_cpu_s", "limit_nofile", "limit_nproc",
    "is_daemon", "concurrency_keys",
)  # fmt: skip
_checked_fields = attrgetter(*_CHECKED)
MAX_VERDICTS = 4096
_UNKNOWN = ("", "")
_verdicts: dict[tuple[Any, ...], tuple[str, str] | None] = {}


def _field_problem(rule: Rule) -> tuple[str, str] | None:
    """(field, reason) of the first check that fails (reading only _CHECKED), or None."""
    try:
        _check_command(rule)
        _check_user(rule.run_user)
        parse_env(rule.env)
        _check_choices(rule)
        _check_numbers(rule)
        _check_limits(rule)
        _check_fleet(rule)
        _check_keys(rule)
    except RuleError as exc:
        return exc.field, exc.reason
    return None


def _schedule(rule: Rule, calendars: Mapping[tuple[int, str], Calendar]) -> FireTimes | None:
    if rule.depends_on is not None:
        if rule.depends_on == rule.id:
            raise RuleError("depends_on", "a rule cannot depend on itself")
        if rule.is_daemon:
            raise RuleError("depends_on", "a daemon rule runs all the time; it cannot depend")
    if rule.is_daemon or not rule.rule.strip():
        return None  # no schedule: runs by hand, after its parent, or as a workflow's step
    calendar = find_calendar(rule.calendar, rule.gid, calendars) if rule.calendar else None
    return build_timing(
        rule.rule,
        rule.timezone or "UTC",
        seed=rule.id,
        jitter_s=rule.jitter_s,
        calendar=calendar,
        mode=rule.calendar_mode,
        fallback=rule.calendar_fallback,
    )


def _check_command(rule: Rule) -> None:
    if not rule.execute.strip():
        raise RuleError("execute", "is empty: give the command to run")
    if "\x00" in rule.execute:
        raise RuleError("execute", "contains a NUL byte")
    if not rule.shell:
        try:
            shlex.split(rule.execute)
        except ValueError as exc:
            raise RuleError("execute", f"cannot be split like a shell would: {exc}") from None


def _check_user(run_user: str) -> None:
    if run_user and not _USER_RE.match(run_user):
        raise RuleError("run_user", f"{run_user[:40]!r} is not a valid Unix user name")


def parse_env(text: str) -> dict[str, str]:
    """The `env` column: a JSON object of string names to string values."""
    if text in ("", "{}"):  # nearly every rule: no JSON decoding for each run's spec
        return {}
    try:
        env = json.loads(text or "{}")
    except ValueError as exc:
        raise RuleError("env", f"is not valid JSON: {exc}") from None
    if not isinstance(env, dict):
        raise RuleError("env", "must be a JSON object of NAME: value")
    for key, value in env.items():
        if not _ENV_NAME_RE.match(key):
            raise RuleError("env", f"{key[:40]!r} is not a valid variable name")
        if not isinstance(value, str):
            raise RuleError("env", f"value of {key} must be a string")
        if not is_unicode(value):
            raise RuleError("env", f"value of {key} {NOT_UNICODE}")
        if key.startswith("UNITEDCRON_"):
            raise RuleError("env", f"{key} is reserved for UnitedCron's own variables")
        if is_loader_variable(key):
            raise RuleError(
                "env",
                f"{key} is read by the dynamic loader and is not allowed in a rule's env; "
                f"set it in the command itself (env {key}=… program)",
            )
    return env


def is_unicode(value: Any) -> bool:
    """Whether every text in a JSON value can be stored and sent: JSON's `\\ud800` escapes
    make lone surrogates, which neither a UTF-8 column, a UTF-8 page nor msgpack can carry."""
    try:
        json.dumps(value, ensure_ascii=False, default=str).encode()
    except UnicodeEncodeError:
        return False
    return True


def parse_selector(selector: str) -> dict[str, str]:
    """`k=v,k2=v2`: an agent matches when it has every one of these labels."""
    out = {}
    for item in selector.split(","):
        key, sep, value = item.partition("=")
        if item.strip():
            if not sep or not key.strip():
                raise ValueError(N_(f"selector item {item.strip()!r} is not key=value"))
            out[key.strip()] = value.strip()
    return out


def _check_choices(rule: Rule) -> None:
    try:
        parse_selector(rule.selector)
    except ValueError as exc:
        raise RuleError("selector", str(exc)) from None
    for field, value, allowed in (
        ("overlap", rule.overlap, OVERLAP_POLICIES),
        ("routing", rule.routing, ROUTINGS),
        ("misfire", rule.misfire, MISFIRE_POLICIES),
        ("depends_when", rule.depends_when, DEPENDS_WHEN),
        ("retry_unknown", rule.retry_unknown, RETRY_UNKNOWN),
    ):
        if value not in allowed:
            raise RuleError(field, f"{value!r} is not one of {', '.join(allowed)}")


def _check_numbers(rule: Rule) -> None:
    for field, value, low, high in (
        ("process_num", rule.process_num, 1, MAX_FAN_OUT),
        ("timeout_s", rule.timeout_s, 0, 30 * 86400),
        ("kill_grace_s", rule.kill_grace_s, 0, 3600),
        ("retries", rule.retries, 0, 100),
        ("retry_backoff_s", rule.retry_backoff_s, 0, 86400),
        ("output_max_bytes", rule.output_max_bytes, 0, 64 << 20),
        ("shard_total", rule.shard_total, 0, MAX_FAN_OUT),
        ("misfire_window_s", rule.misfire_window_s, 0, 30 * 86400),
        ("max_per_agent", rule.max_per_agent, 0, MAX_FAN_OUT),
        ("partition_stop_s", rule.partition_stop_s, 0, 86400),
    ):
        if not low <= value <= high:
            raise RuleError(field, f"{value} is out of range {low}-{high}")


def _check_limits(rule: Rule) -> None:
    for name in ("mem_mb", "cpu_s", "nofile", "nproc"):
        field = f"limit_{name}"
        value = getattr(rule, field)
        if limit_problem(name, value) is not None:
            # the sentence made here, not protocol's: it is extracted for the catalogs
            low, high = LIMIT_MIN[name], LIMIT_MAX[name]
            raise RuleError(field, f"{value} must be 0 (no limit) or between {low} and {high}")


def _check_fleet(rule: Rule) -> None:
    if rule.partition_stop_s and not rule.is_daemon:
        raise RuleError("partition_stop_s", "applies to daemon rules only (it stops instances)")
    if rule.is_service and rule.shard_total:
        raise RuleError(
            "shard_total", f"a daemon rule placed by {rule.routing} keeps instances, not shards"
        )


# ---------------------------------------------------------------- shared limits and params

MAX_KEYS = 8
_KEY_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,63}$")
MAX_PARAMS_CHARS = 1000


def parse_keys(text: str) -> tuple[str, ...]:
    """The `concurrency_keys` column: key names, comma-separated (RuleError if malformed)."""
    keys = tuple(k.strip() for k in text.split(",") if k.strip())
    for key in keys:
        if not _KEY_RE.match(key):
            raise RuleError(
                "concurrency_keys", f"{key[:40]!r} is not a key name (letters, digits, _ . : -)"
            )
    if len(set(keys)) != len(keys):
        raise RuleError("concurrency_keys", "names a key twice")
    if len(keys) > MAX_KEYS:
        raise RuleError("concurrency_keys", f"at most {MAX_KEYS} keys per rule")
    return keys


def _check_keys(rule: Rule) -> None:
    if parse_keys(rule.concurrency_keys) and rule.is_daemon:
        raise RuleError("concurrency_keys", "applies to one-shot rules only (not daemons)")


def check_params(params: str) -> tuple[str, ...]:
    """A manual run's `params`: split like a command (RuleError naming `params` if not)."""
    if len(params) > MAX_PARAMS_CHARS:
        raise RuleError("params", f"is longer than {MAX_PARAMS_CHARS} characters")
    if "\x00" in params or not is_unicode(params):
        raise RuleError("params", "contains a NUL byte or invalid text")
    try:
        return tuple(shlex.split(params))
    except ValueError as exc:
        raise RuleError("params", f"cannot be split like a shell would: {exc}") from None


def check_env_override(value: Any) -> dict[str, str]:
    """A manual run's `env` overrides, checked like a rule's env (RuleError naming `env`)."""
    if isinstance(value, Mapping):
        value = json.dumps(dict(value))
    if not isinstance(value, str):
        raise RuleError("env", "must be a JSON object of NAME: value")
    return parse_env(value)


def fires_in_busiest_minute(schedule: FireTimes) -> int:
    """Pure: how many times the schedule fires in the 60 s from its first fire after a fixed
    instant (the minute a per-second field makes busiest); capped at 61."""
    at = schedule.next_fire_us(FAN_OUT_PROBE_US)
    until_us = (at or 0) + 60_000_000
    count = 0
    while at is not None and at < until_us and count <= 60:
        count += 1
        at = schedule.next_fire_us(at)
    return count


@lru_cache(maxsize=1 << 17)
def _busiest_minute(schedule: FireTimes) -> int:
    return fires_in_busiest_minute(schedule)  # up to 61 next fires: once per schedule


def _check_fan_out(rule: Rule, schedule: FireTimes) -> None:
    shards = max(rule.shard_total, 1)
    runs = shards * _busiest_minute(schedule)
    if runs > MAX_RUNS_PER_MINUTE:
        field = "shard_total" if rule.shard_total > 1 else "rule"
        raise RuleError(
            field,
            f"{shards} shard(s) × up to {runs // shards} fires a minute = {runs} runs a minute; "
            f"one rule may make at most {MAX_RUNS_PER_MINUTE}",
        )


def run_spec(rule: Rule) -> RunSpec:
    """What the agent needs to run this rule (validated rules only)."""
    return RunSpec(
        task_id=rule.id,
        command=rule.execute,
        shell=rule.shell,
        run_user=rule.run_user,
        env=parse_env(rule.env),
        cwd=rule.cwd,
        timeout_s=rule.timeout_s,
        kill_grace_s=rule.kill_grace_s,
        output_max_bytes=rule.output_max_bytes,
        process_num=rule.process_num,
        overlap=rule.overlap,
        updated_us=rule.update_time,
        limit_mem_mb=rule.limit_mem_mb,
        limit_cpu_s=rule.limit_cpu_s,
        limit_nofile=rule.limit_nofile,
        limit_nproc=rule.limit_nproc,
        partition_stop_s=rule.partition_stop_s,
    )
