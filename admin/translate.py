"""The admin in the reader's language and time zone: a request's choice, and the Jinja gettext,
filters and error reasons that follow it."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import jinja2
from fastapi import Request

from i18n.catalogs import Catalog, catalog
from i18n.languages import Language, choose_language
from i18n.zones import known_zone, wall_clock


@dataclass(frozen=True, slots=True)
class Reader:
    """How one request is shown: in which language, with times in which zone."""

    language: Language
    timezone: str

    @property
    def words(self) -> Catalog:
        return catalog(self.language)


def reader_of(request: Request) -> Reader:
    """The user's own choice (set on the request once the session or token is known), else
    what the browser asks for, else the admin's defaults."""
    cfg = request.app.state.config
    state = request.state
    language = choose_language(
        getattr(state, "user_language", ""),
        request.headers.get("accept-language", ""),
        cfg.admin_language,
    )
    zone = getattr(state, "user_timezone", "")
    # "" (no choice made) is no zone of the user's own, though zones.zone reads it as UTC.
    return Reader(language, zone if zone and known_zone(zone) else cfg.admin_timezone)


def note_user(request: Request, language: str, timezone: str) -> None:
    """Remember the caller's choices for this request's pages and error reasons."""
    request.state.user_language = language
    request.state.user_timezone = timezone


def _reader(context: Any) -> Reader:
    found = context.get("reader")
    return found if isinstance(found, Reader) else Reader(Language.EN, "UTC")


@jinja2.pass_context
def _gettext(context: Any, text: str) -> str:
    return _reader(context).words.gettext(text)


@jinja2.pass_context
def _ngettext(context: Any, singular: str, plural: str, n: int) -> str:
    return _reader(context).words.ngettext(singular, plural, n)


@jinja2.pass_context
def _reason(context: Any, text: object) -> str:
    """A text made in English at run time (an error's reason, a run's reason)."""
    if text is None or text == "":
        return ""
    return _reader(context).words.reason(str(text))


@jinja2.pass_context
def _when(context: Any, us: int | None, empty: str = "—") -> str:
    if not us:
        return _reader(context).words.gettext(empty)
    return wall_clock(us, _reader(context).timezone)


@jinja2.pass_context
def _when_zoned(context: Any, us: int | None) -> str:
    return wall_clock(us, _reader(context).timezone, with_zone=True) if us else "—"


def install(env: jinja2.Environment) -> None:
    """Jinja's i18n extension over our catalogs, `tr` for run-time texts, and `ts`/`tsz` for
    instants in the reader's zone."""
    env.add_extension("jinja2.ext.i18n")
    env.policies["ext.i18n.trimmed"] = True
    env.install_gettext_callables(  # type: ignore[attr-defined]
        _gettext, _ngettext, newstyle=True
    )
    env.filters.update(tr=_reason, ts=_when, tsz=_when_zoned)
