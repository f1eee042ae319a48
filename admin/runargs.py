"""A "run now" request's extras, checked as the center checks them (pure): `params` and `env`
overrides for a rule with allow_params, and `run_at` (a one-off run at a later time)."""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from admin.errors import Invalid
from center.errors import RuleError
from center.rules import check_env_override, check_params

MAX_AHEAD_US = 366 * 86400 * 1_000_000  # run-at: at most a year (and a day) ahead


def run_args(rule: Mapping[str, Any], values: Mapping[str, Any], now_us: int) -> dict[str, Any]:
    """The `args` of the run command (center_command.args): only what was given; Invalid
    naming the field otherwise."""
    params, env = values.get("params") or "", values.get("env") or {}
    out: dict[str, Any] = {}
    if (params or env) and not rule.get("allow_params"):
        field = "params" if params else "env"
        raise Invalid(field, "this rule does not take parameters: set its allow_params first")
    try:
        if params:
            if not isinstance(params, str):
                raise RuleError("params", "must be text")
            check_params(params)
            out["params"] = params
        if env:
            out["env"] = check_env_override(env)
    except RuleError as exc:
        raise Invalid(exc.field, exc.reason) from None
    if values.get("run_at"):
        out["run_at_us"] = parse_run_at(values["run_at"], now_us)
    return out


def parse_run_at(value: Any, now_us: int) -> int:
    """An ISO time with an offset, in the future, at most a year ahead: µs since the epoch."""
    if not isinstance(value, str):
        raise Invalid("run_at", "must be an ISO time such as 2026-05-01T09:30:00+08:00")
    try:
        when = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
    except ValueError:
        raise Invalid("run_at", f"{value[:40]!r} is not an ISO time") from None
    if when.tzinfo is None:
        raise Invalid("run_at", "give the offset too (Z, +08:00): a time alone is ambiguous")
    at_us = int(when.timestamp() * 1_000_000)
    if at_us <= now_us:
        raise Invalid("run_at", "is not in the future")
    if at_us - now_us > MAX_AHEAD_US:
        raise Invalid("run_at", "is more than a year ahead")
    return at_us


def args_json(args: Mapping[str, Any]) -> str:
    return json.dumps(dict(args), sort_keys=True, ensure_ascii=False)
