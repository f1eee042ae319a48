"""The words of chat alerts (pure): one table of phrases, and the neutral message that every
chat platform then lays out in its own format.

This is the one place a chat alert's words live: a translation is another table with the same
keys (`PHRASES`), handed to `chat_text`; the platform builders in `center.alerts.chat` add no
words of their own, only layout.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

# Keys: `state.<alert|recovery|test>`, `event.<event name>`, `fact.<what>`, and the sentences.
ENGLISH: Mapping[str, str] = MappingProxyType(
    {
        "lang": "en",  # which language this table is (a platform may label its message so)
        "product": "UnitedCron",
        "state.alert": "ALERT",
        "state.recovery": "RECOVERED",
        "state.test": "TEST",
        "event.run_failed": "run failed",
        "event.run_timeout": "run timed out",
        "event.crash_looping": "daemon crash looping",
        "event.agent_offline": "agent offline",
        "event.did_not_start": "rule did not start",
        "event.test": "test notification",
        "fact.group": "group",
        "fact.rule": "rule",
        "fact.agent": "agent",
        "fact.run": "run",
        "fact.at": "at",
        "suppressed": "{count} more like it were not sent (throttled).",
    }
)
PHRASES: Mapping[str, Mapping[str, str]] = MappingProxyType({"en": ENGLISH})
MAX_SUMMARY_CHARS = 1000  # a run's reason can be long; chat messages have size limits
# The alert payload's summary of a recovery starts with this (the webhook's and the email's
# wording); the chat title says it in the phrase table's words instead.
_RECOVERY_PREFIX = "RECOVERED: "


@dataclass(frozen=True, slots=True)
class ChatText:
    """What one chat alert says, before a platform lays it out."""

    state: str  # alert, recovery or test: a platform may pick a colour or an emoji by it
    title: str  # "[UnitedCron] ALERT · run failed"
    summary: str
    facts: tuple[tuple[str, str], ...]  # (label, value), in the order shown
    note: str = ""  # how many were throttled since the last one sent, or ""
    lang: str = "en"


def _phrase(phrases: Mapping[str, str], key: str, fallback: str) -> str:
    """A missing key shows the English phrase (or the raw name): never a KeyError at 3 a.m."""
    return phrases.get(key) or ENGLISH.get(key) or fallback


def _named(item: Any) -> str:
    """A `{"id": .., "name": ..}` detail as `name (#id)`, or what there is of it."""
    if not isinstance(item, Mapping):
        return str(item)
    name, ident = str(item.get("name") or ""), item.get("id")
    if name and ident is not None:
        return f"{name} (#{ident})"
    return name or (f"#{ident}" if ident is not None else "")


def _facts(data: Mapping[str, Any], phrases: Mapping[str, str]) -> tuple[tuple[str, str], ...]:
    run = data.get("run")
    values = (
        ("group", _named(data.get("group", {}))),
        ("rule", _named(data["rule"]) if data.get("rule") else ""),
        ("agent", _named(data["agent"]) if data.get("agent") else ""),
        ("run", str(run.get("runid") or "") if isinstance(run, Mapping) else ""),
        ("at", str(data.get("at") or "")),
    )
    return tuple((_phrase(phrases, f"fact.{k}", k), v) for k, v in values if v)


def chat_text(data: Mapping[str, Any], phrases: Mapping[str, str] = ENGLISH) -> ChatText:
    """The message for one notification's payload (`center.alerts.model.payload`)."""
    state, event = str(data.get("state", "")), str(data.get("event", ""))
    summary = str(data.get("summary", ""))
    if state == "recovery" and summary.startswith(_RECOVERY_PREFIX):
        summary = summary[len(_RECOVERY_PREFIX) :]
    if len(summary) > MAX_SUMMARY_CHARS:
        summary = summary[: MAX_SUMMARY_CHARS - 1] + "…"
    title = (
        f"[{_phrase(phrases, 'product', 'UnitedCron')}] "
        f"{_phrase(phrases, f'state.{state}', state.upper())} · "
        f"{_phrase(phrases, f'event.{event}', event)}"
    )
    count = data.get("suppressed") or 0
    note = _phrase(phrases, "suppressed", "").format(count=count) if count else ""
    lang = _phrase(phrases, "lang", "en")
    return ChatText(state, title, summary, _facts(data, phrases), note, lang)


def plain_lines(text: ChatText) -> list[str]:
    """The message as lines of plain text: title, summary, `label: value` facts, the note."""
    lines = [text.title, text.summary, *(f"{label}: {value}" for label, value in text.facts)]
    return lines + ([text.note] if text.note else [])
