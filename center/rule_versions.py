"""Rule history, pure: a rule's version as JSON, the field-by-field diff of two, a summary."""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from i18n.marks import N_

# Pure: no I/O. center/store/versions.py reads and writes the `crontab_version` rows.

# Columns the system writes, not whoever saved the rule: kept in a version (it holds every
# column), left out of diffs and never written back by a rollback.
BOOKKEEPING = frozenset({"id", "create_time", "update_time", "error", "notice"})
SUMMARY_MAX = 255
_NAMED_MAX = 6  # fields named in a summary before "+N more"
# Summaries are stored in English and shown in the reader's language (marked for the catalogs).
_STATUS_WORDS: dict[tuple[Any, Any], str] = {(1, 0): N_("paused"), (0, 1): N_("resumed")}
DELETED = -1


@dataclass(frozen=True, slots=True)
class Author:
    """Who saved a version: an admin user (and how: "" a page, "api token <prefix>"), or a tool
    (user_id 0: "import", "migration", "demo")."""

    user_id: int
    name: str
    via: str = ""


IMPORT = Author(0, "import", "rules import")
MIGRATION = Author(0, "migration", "history starts here")


@dataclass(frozen=True, slots=True)
class FieldChange:
    """One field that differs between two versions; None where a version lacks the field."""

    field: str
    old: Any
    new: Any


def snapshot(row: Mapping[str, Any], agents: Iterable[int]) -> dict[str, Any]:
    """What a version keeps: every column of the `crontab` row as it is, and `agents`, the
    sorted ids of its targets. Columns added later are kept without a change here."""
    out = {str(name): _plain(value) for name, value in row.items()}
    out["agents"] = sorted({int(a) for a in agents})
    return out


def _plain(value: Any) -> Any:
    """A JSON value: numbers, text, null as they are; anything else (never in crontab) as text."""
    if value is None or isinstance(value, bool | int | float | str):
        return value
    return str(value)


def encode(content: Mapping[str, Any]) -> str:
    return json.dumps(dict(content), sort_keys=True, separators=(",", ":"))


def decode(text: str) -> dict[str, Any]:
    value = json.loads(text or "{}")
    return value if isinstance(value, dict) else {}


def diff(old: Mapping[str, Any], new: Mapping[str, Any]) -> list[FieldChange]:
    """Every field (bookkeeping aside) whose value differs, by name; a field only one version
    has counts as changed from or to None."""
    names = sorted((set(old) | set(new)) - BOOKKEEPING)
    return [
        FieldChange(name, old.get(name), new.get(name))
        for name in names
        if not _same(old.get(name), new.get(name))
    ]


def _same(a: Any, b: Any) -> bool:
    # 1 and 1.0 are one value (a float column read back from JSON); True is not 1 here.
    if isinstance(a, bool) or isinstance(b, bool):
        return type(a) is type(b) and a == b
    return bool(a == b)


def summarize(old: Mapping[str, Any] | None, new: Mapping[str, Any]) -> str:
    """A short line for the history list: created, deleted, paused, resumed, or the fields."""
    if old is None:
        return N_("created")
    changes = diff(old, new)
    if not changes:
        return N_("no change")
    names = [c.field for c in changes]
    if names == ["status"]:
        before, after = old.get("status"), new.get("status")
        if after == DELETED:
            return N_("deleted")
        if before == DELETED:
            return N_("restored")
        return _STATUS_WORDS.get((before, after), N_(f"status {before} → {after}"))
    return _changed(names)[:SUMMARY_MAX]


def _changed(names: list[str]) -> str:
    shown = ", ".join(names[:_NAMED_MAX])
    if len(names) > _NAMED_MAX:
        extra = len(names) - _NAMED_MAX
        return N_(f"changed {shown} (+{extra} more)")
    return N_(f"changed {shown}")


def rollback_values(content: Mapping[str, Any], editable: Iterable[str]) -> dict[str, Any]:
    """The fields of a version an edit takes (`editable`, plus gid and agents): what a rollback
    writes back. Bookkeeping and fields the admin no longer edits are left out."""
    wanted = (set(editable) | {"gid", "agents"}) - BOOKKEEPING
    return {name: content[name] for name in sorted(wanted) if name in content}


def change_rows(changes: Iterable[FieldChange]) -> list[dict[str, Any]]:
    """The diff as JSON rows {field, old, new} (for the API and the page)."""
    return [{"field": c.field, "old": c.old, "new": c.new} for c in changes]
