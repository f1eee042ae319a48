"""The words of alerts (pure): one table of phrases, and the neutral message that every chat
platform then lays out in its own format.

This is the one place an alert's words live. The English table's phrases are msgids of the
catalogs (i18n/zh_CN/alerts.po): `phrases_in` makes the table of another language from its
catalog's lookup, and the summary (made in English by the checks, stored in the payload) is
translated by the catalog's placeholder patterns (`reason`). The platform builders in
`center.alerts.chat` add no words of their own, only layout.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

from i18n.marks import N_

Translate = Callable[[str], str]
# Keys: `state.<alert|recovery|test>`, `event.<event name>`, `fact.<what>`, and the sentences.
ENGLISH: Mapping[str, str] = MappingProxyType(
    {
        "lang": "en",  # which language this table is (a platform may label its message so)
        "product": "UnitedCron",
        "state.alert": N_("ALERT"),
        "state.recovery": N_("RECOVERED"),
        "state.test": N_("TEST"),
        "event.run_failed": N_("run failed"),
        "event.run_timeout": N_("run timed out"),
        "event.crash_looping": N_("daemon crash looping"),
        "event.agent_offline": N_("agent offline"),
        "event.did_not_start": N_("rule did not start"),
        "event.calendar_ending": N_("calendar data ending"),
        "event.test": N_("test notification"),
        "fact.group": N_("group"),
        "fact.rule": N_("rule"),
        "fact.workflow": N_("workflow"),
        "fact.agent": N_("agent"),
        "fact.run": N_("run"),
        "fact.at": N_("at"),
        "suppressed": N_("{count} more like it were not sent (throttled)."),
        "recovered": N_("RECOVERED: {summary}"),  # a recovery's summary (webhook, email)
    }
)
_NOT_WORDS = frozenset({"lang", "product"})  # a language tag and a name: never translated
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


def phrases_in(language: str, gettext: Translate) -> Mapping[str, str]:
    """The phrase table of `language`, each English phrase looked up in its catalog."""
    return MappingProxyType(
        {
            key: language if key == "lang" else value if key in _NOT_WORDS else gettext(value)
            for key, value in ENGLISH.items()
        }
    )


def _same(text: str) -> str:
    return text


def _english_summary(data: Mapping[str, Any]) -> str:
    """The payload's summary without the recovery prefix the payload puts before it."""
    summary = str(data.get("summary", ""))
    if data.get("state") == "recovery" and summary.startswith(_RECOVERY_PREFIX):
        return summary[len(_RECOVERY_PREFIX) :]
    return summary


def summary_in(
    data: Mapping[str, Any], phrases: Mapping[str, str] = ENGLISH, reason: Translate = _same
) -> str:
    """The payload's summary in the table's language, with its recovery prefix (the webhook's
    and the email's wording): the English one as it is, for English."""
    english = _english_summary(data)
    summary = reason(english)
    if english != str(data.get("summary", "")):  # a recovery's, without its prefix
        return _phrase(phrases, "recovered", "").replace("{summary}", summary)
    return summary


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
        ("workflow", _named(data["workflow"]) if data.get("workflow") else ""),
        ("agent", _named(data["agent"]) if data.get("agent") else ""),
        ("run", str(run.get("runid") or "") if isinstance(run, Mapping) else ""),
        ("at", str(data.get("at") or "")),
    )
    return tuple((_phrase(phrases, f"fact.{k}", k), v) for k, v in values if v)


def chat_text(
    data: Mapping[str, Any], phrases: Mapping[str, str] = ENGLISH, reason: Translate = _same
) -> ChatText:
    """The message for one notification's payload (`center.alerts.model.payload`), in the
    language of `phrases`; `reason` translates the summary made in English."""
    state, event = str(data.get("state", "")), str(data.get("event", ""))
    summary = reason(_english_summary(data))
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
