"""How rows of the original swoole-crontab-process database map onto UnitedCron's (pure)."""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from center.errors import RuleError
from center.rules import Rule, validate_rule

_US = 1_000_000
# admin/services/users.py's rule for user names (lower case).
_USER_NAME_RE = re.compile(r"^[a-z0-9][a-z0-9_.@-]{0,63}$")
# The original's agents.status: -1 deleted, 0 paused, 1 normal, 2 connection failed.
# UnitedCron's center sets "unreachable" (2) itself, so 2 comes in as enabled.
_AGENT_STATUS = {0: 0, 1: 1, 2: 1}
UNUSABLE_PASSWORD = "!imported-from-united-cron: set a new password"


@dataclass(frozen=True, slots=True)
class Skip:
    """A row that is not imported, and why."""

    reason: str


@dataclass(frozen=True, slots=True)
class Mapped:
    """The columns to write for one original row, with remarks for the report."""

    values: dict[str, Any]
    notes: tuple[str, ...] = ()


@dataclass
class TableCount:
    imported: int = 0
    updated: int = 0
    unchanged: int = 0
    skipped: int = 0


@dataclass
class Report:
    """What an import did: counts per table and each row it could not map (or mapped with a
    caveat), with the reason."""

    counts: dict[str, TableCount] = field(default_factory=dict)
    notes: list[tuple[str, str, str]] = field(default_factory=list)

    def count(self, table: str, outcome: str) -> None:
        entry = self.counts.setdefault(table, TableCount())
        setattr(entry, outcome, getattr(entry, outcome) + 1)

    def note(self, table: str, orig_id: object, reason: str) -> None:
        self.notes.append((table, str(orig_id), reason))

    def lines(self) -> list[str]:
        out = [f"{'table':<20} {'imported':>8} {'updated':>8} {'unchanged':>9} {'skipped':>8}"]
        for table, c in self.counts.items():
            out.append(
                f"{table:<20} {c.imported:>8} {c.updated:>8} {c.unchanged:>9} {c.skipped:>8}"
            )
        if self.notes:
            out += ["", "rows not mapped, or mapped with a caveat:"]
            out += [f"  {table} {orig_id}: {reason}" for table, orig_id, reason in self.notes]
        return out


def row_hash(row: Mapping[str, Any], *extra: object) -> str:
    """What a re-import compares: the original row (and what else it depends on)."""
    text = json.dumps([dict(row), *extra], sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()


def us(seconds: Any, default_us: int = 0) -> int:
    """The original's int(10) seconds as µs (NULL or 0: the default)."""
    try:
        value = int(seconds or 0)
    except (TypeError, ValueError):
        return default_us
    return value * _US if value > 0 else default_us


def map_group(row: Mapping[str, Any]) -> Mapped | Skip:
    """onethink's auth_group → cron_group (its `title` is the name)."""
    if int(row.get("status") or 0) == -1:
        return Skip("deleted in the original (status -1)")
    name = str(row.get("title") or "").strip() or f"group-{row['id']}"
    description = str(row.get("description") or "").strip()[:255]
    return Mapped({"name": name[:64], "description": description})


def map_agent(row: Mapping[str, Any], gid: int | None, now_us: int) -> Mapped | Skip:
    status = int(row.get("status") or 0)
    if status == -1:
        return Skip("deleted in the original (status -1)")
    name = str(row.get("name") or "").strip() or f"agent-{row['id']}"
    notes = (
        []
        if gid is not None or not row.get("gid")
        else [f"its group {row['gid']} is not in the original's auth_group: imported without one"]
    )
    values = {
        "name": name[:128],
        "gid": gid,
        "ip": str(row.get("ip") or "")[:64],
        "port": int(row.get("port") or 0),
        # Without a group it waits for approval, as a new agent would.
        "status": _AGENT_STATUS.get(status, 0) if gid is not None else 0,
        "heart_beat_time": us(row.get("heart_beat_time")),
        "create_time": us(row.get("create_time"), now_us),
    }
    return Mapped(values, tuple(notes))


def convert_rule(text: str, is_daemon: bool) -> tuple[str, str]:
    """(UnitedCron rule text, why it cannot be used or ""). The original parsed rules with
    mtdowling/cron-expression: 5 fields minute first, an optional 6th field is the YEAR."""
    text = " ".join(text.split())
    if is_daemon:
        return "", ""  # the original ignored the rule of a daemon (it wrote "#")
    if text == "#":
        return text, "'#' was the original's rule for daemons, but this rule is not a daemon"
    fields = text.split(" ")
    if len(fields) == 6 and not text.startswith("@"):
        if fields[5] in ("*", "?"):
            return " ".join(fields[:5]), ""
        return text, (
            f"the original's 6th field is a year ({fields[5]}); UnitedCron has no year field "
            "and reads 6 fields as seconds first: rewrite the rule"
        )
    return text, ""


def _rule_status(status: int, error: str) -> int:
    if error:
        return 0
    return {1: 1, 0: 0, 2: 0}.get(status, 0)


def map_rule(row: Mapping[str, Any], gid: int | None, timezone: str, now_us: int) -> Mapped | Skip:
    """crontab → crontab. A rule that fails validation is imported paused, with the reason
    in `error`: nothing is lost."""
    status = int(row.get("status") or 0)
    if status == -1:
        return Skip("deleted in the original (status -1)")
    is_daemon = bool(int(row.get("is_daemon") or 0))
    rule_text, error = convert_rule(str(row.get("rule") or ""), is_daemon)
    values: dict[str, Any] = {
        "gid": gid,
        "name": (str(row.get("name") or "").strip() or f"rule-{row['id']}")[:128],
        "rule": rule_text[:128],
        "execute": str(row.get("execute") or ""),
        "run_user": str(row.get("run_user") or "").strip()[:64],
        "process_num": int(row.get("process_num") or 0),
        "is_daemon": int(is_daemon),
        "timezone": timezone,
        "create_time": us(row.get("create_time"), now_us),
        "update_time": now_us,  # so that the center picks the rule up
    }
    error = error or _validation_error(values)
    if status == 2 and not error:
        error = "was in the error state (2) in the original: check it, then enable it"
    values["status"] = _rule_status(status, error)
    values["error"] = f"imported: {error}"[:500] if error else ""
    # The center rewrites `error` with its own check (or clears it for a valid paused rule):
    # the description keeps the import's reason for the operator.
    values["description"] = f"import: {error}"[:500] if error else ""
    notes = _rule_notes(values, gid, row)
    if error:
        notes.insert(0, f"imported paused: {error}")
    return Mapped(values, tuple(notes))


def _validation_error(values: dict[str, Any]) -> str:
    fields = {k: v for k, v in values.items() if k not in ("gid", "create_time", "update_time")}
    try:
        validate_rule(Rule(id=0, **fields))
    except RuleError as exc:
        return f"{exc.field}: {exc.reason}"
    return ""


def _rule_notes(values: dict[str, Any], gid: int | None, row: Mapping[str, Any]) -> list[str]:
    notes = []
    if gid is None:
        notes.append(f"its group {row.get('gid')} is not in the original's auth_group")
    if any(c in values["execute"] for c in "'\"\\"):
        notes.append(
            "execute has quotes or backslashes: the original split it on spaces only, "
            "UnitedCron splits it like a shell would; check the arguments"
        )
    return notes


def csv_agent_ids(text: Any) -> tuple[set[int], list[str]]:
    """crontab.agents, "1,3,7": the ids, and the items that are not ids."""
    ids, bad = set(), []
    for raw in str(text or "").split(","):
        item = raw.strip()
        if item.isdigit():
            ids.add(int(item))
        elif item:
            bad.append(item)
    return ids, bad


def map_user(row: Mapping[str, Any], now_us: int) -> Mapped | Skip:
    """ucenter_member (+ member) → admin_user, disabled with no usable password: a superadmin
    sets a new password and enables the account (the original's hashes are salted MD5)."""
    if int(row.get("status") or 0) == -1:
        return Skip("deleted in the original (status -1)")
    for candidate in (row.get("username"), row.get("nickname")):
        name = str(candidate or "").strip().lower()
        if _USER_NAME_RE.match(name):
            break
    else:
        return Skip(
            f"no usable user name ({row.get('username')!r}): use 1-64 lower-case letters, "
            "digits, '_', '.', '@' or '-'; add the user by hand"
        )
    values = {
        "name": name,
        "password_hash": UNUSABLE_PASSWORD,
        "superadmin": 0,
        "status": 0,
        "create_time": us(row.get("reg_time"), now_us),
        "update_time": now_us,
    }
    return Mapped(values)
