"""What `ctl` prints, pure: aligned tables for people, one JSON document for scripts."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

# Pure: no I/O. The commands write these strings.

Column = tuple[str, Callable[[Mapping[str, Any]], Any]]
CELL_MAX = 48


def json_text(value: Any) -> str:
    return json.dumps(value, indent=2, sort_keys=True, ensure_ascii=False)


def cell(value: Any) -> str:
    """One line of at most CELL_MAX characters: newlines shown as ⏎, long text cut with …."""
    text = "—" if value is None or value == "" else str(value)
    text = text.replace("\r", "").replace("\n", "⏎").replace("\t", " ")
    return text if len(text) <= CELL_MAX else text[: CELL_MAX - 1] + "…"


def table(rows: Iterable[Mapping[str, Any]], columns: Sequence[Column]) -> str:
    """A header and one line per row, columns padded to their widest cell."""
    lines = [[name for name, _ in columns]]
    lines += [[cell(get(row)) for _, get in columns] for row in rows]
    widths = [max(len(line[i]) for line in lines) for i in range(len(columns))]
    return "\n".join(
        "  ".join(c.ljust(w) for c, w in zip(line, widths, strict=True)).rstrip() for line in lines
    )


def facts(pairs: Sequence[tuple[str, Any]]) -> str:
    """`name  value` lines, names aligned."""
    width = max((len(name) for name, _ in pairs), default=0)
    return "\n".join(f"{name.ljust(width)}  {cell(value)}".rstrip() for name, value in pairs)


def when(us: int | None) -> str:
    if not us:
        return "—"
    return datetime.fromtimestamp(us / 1e6, UTC).strftime("%Y-%m-%d %H:%M:%S")


def duration(start_us: int | None, end_us: int | None) -> str:
    if not start_us or not end_us or end_us < start_us:
        return "—"
    seconds = (end_us - start_us) / 1e6
    if seconds < 60:
        return f"{seconds:.1f}s"
    minutes, secs = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m" if hours else f"{minutes}m{secs:02d}s"


RULE_STATES = {1: "enabled", 0: "paused", -1: "deleted"}
AGENT_STATES = {1: "up", 2: "down", 0: "disabled", -1: "deleted"}


def rule_state(rule: Mapping[str, Any]) -> str:
    if rule.get("error"):
        return "error"
    return RULE_STATES.get(rule.get("status", 0), str(rule.get("status")))


def agent_state(agent: Mapping[str, Any]) -> str:
    if agent.get("gid") is None and agent.get("status") == 0:
        return "pending"
    if agent.get("drain"):
        return "draining"
    return AGENT_STATES.get(agent.get("status", 0), str(agent.get("status")))


def counts(values: Mapping[str, int], order: Sequence[str] = ()) -> str:
    """ "3 success, 1 failed" — the named keys first, then the rest by name; "none" if empty."""
    keys = [k for k in order if k in values] + sorted(set(values) - set(order))
    return ", ".join(f"{values[k]} {k}" for k in keys) or "none"
