"""What `ctl` prints, pure: aligned tables for people, one JSON document for scripts."""

from __future__ import annotations

import json
import unicodedata
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from ctl.words import say
from i18n.marks import N_

# Pure: no I/O. The commands write these strings, in the reader's language (`say`); the
# headers and state words are English msgids, translated when a table is drawn.

Column = tuple[str, Callable[[Mapping[str, Any]], Any]]
CELL_MAX = 48


def json_text(value: Any) -> str:
    return json.dumps(value, indent=2, sort_keys=True, ensure_ascii=False)


def cell(value: Any) -> str:
    """One line of at most CELL_MAX characters: newlines shown as ⏎, long text cut with …."""
    text = "—" if value is None or value == "" else str(value)
    text = text.replace("\r", "").replace("\n", "⏎").replace("\t", " ")
    return text if len(text) <= CELL_MAX else text[: CELL_MAX - 1] + "…"


def width(text: str) -> int:
    """Columns a terminal gives `text`: a Chinese character takes two."""
    return sum(2 if unicodedata.east_asian_width(ch) in "WF" else 1 for ch in text)


def pad(text: str, columns: int) -> str:
    return text + " " * max(columns - width(text), 0)


def table(rows: Iterable[Mapping[str, Any]], columns: Sequence[Column]) -> str:
    """A header (in the reader's language) and one line per row, columns padded to their
    widest cell."""
    lines = [[say(name) for name, _ in columns]]
    lines += [[cell(get(row)) for _, get in columns] for row in rows]
    widths = [max(width(line[i]) for line in lines) for i in range(len(columns))]
    return "\n".join(
        "  ".join(pad(c, w) for c, w in zip(line, widths, strict=True)).rstrip() for line in lines
    )


def facts(pairs: Sequence[tuple[str, Any]]) -> str:
    """`name  value` lines, names aligned (the caller says them: a rule's field names are
    shown as the API spells them, a run's labels in the reader's language)."""
    most = max((width(name) for name, _ in pairs), default=0)
    return "\n".join(f"{pad(name, most)}  {cell(value)}".rstrip() for name, value in pairs)


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


RULE_STATES = {1: N_("enabled"), 0: N_("paused"), -1: N_("deleted")}
AGENT_STATES = {1: N_("up"), 2: N_("down"), 0: N_("disabled"), -1: N_("deleted")}


def rule_state(rule: Mapping[str, Any]) -> str:
    """The rule's state word, in English (`say` it to show it)."""
    if rule.get("error"):
        return N_("error")
    return RULE_STATES.get(rule.get("status", 0), str(rule.get("status")))


def agent_state(agent: Mapping[str, Any]) -> str:
    """The agent's state word, in English (`say` it to show it)."""
    if agent.get("gid") is None and agent.get("status") == 0:
        return N_("pending")
    if agent.get("drain"):
        return N_("draining")
    return AGENT_STATES.get(agent.get("status", 0), str(agent.get("status")))


def counts(values: Mapping[str, int], order: Sequence[str] = ()) -> str:
    """ "3 success, 1 failed" — the named keys first, then the rest by name; "none" if empty."""
    keys = [k for k in order if k in values] + sorted(set(values) - set(order))
    return say(", ").join(f"{values[k]} {say(k)}" for k in keys) or say("none")
