"""Helpers of the page routes: the CSRF-checked form, redirects, filters read from query strings."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

from fastapi import Depends, Request
from fastapi.responses import RedirectResponse
from starlette.datastructures import FormData

from admin.credentials import same
from admin.errors import Forbidden
from admin.web import PageSession
from i18n.marks import N_
from i18n.zones import zone

CSRF_FIELD = "csrf"
STALE_FORM = N_("the form is stale or came from another site (CSRF check failed): reload the page")


async def checked_form(request: Request, session: PageSession) -> FormData:
    """The posted form, if it carries this session's CSRF token; 403 otherwise."""
    form = await request.form()
    token = form.get(CSRF_FIELD)
    if not isinstance(token, str) or not same(token, session.csrf):
        raise Forbidden(STALE_FORM)
    return form


CsrfForm = Annotated[FormData, Depends(checked_form)]


def text(form: FormData, name: str, default: str = "") -> str:
    value = form.get(name)
    return value if isinstance(value, str) else default


def texts(form: FormData, name: str) -> list[str]:
    return [v for v in form.getlist(name) if isinstance(v, str)]


def redirect(url: str) -> RedirectResponse:
    """After a POST, send the browser to a page with GET (no re-post on reload)."""
    return RedirectResponse(url, status_code=303)


def safe_next(target: str | None) -> str:
    """Only paths of this site: never //host or a scheme (an open redirect)."""
    if not target or not target.startswith("/") or target.startswith("//") or "\\" in target:
        return "/"
    return target


def int_or_none(value: str | None) -> int | None:
    """A whole number from a query string or form; None when empty, not a number, or beyond
    a 64-bit column (SQLite's driver cannot even compare with one: a 500)."""
    try:
        number = int(value) if value not in (None, "") else None
    except ValueError:
        return None
    return number if number is not None and -(2**63) <= number < 2**63 else None


def us_from_local(value: str | None, timezone: str = "UTC") -> int | None:
    """A datetime-local field's value in µs, read as wall time in the reader's `timezone`
    (a value with its own offset keeps it); None when empty or not a date."""
    if not value:
        return None
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=zone(timezone) or UTC)
    return int(moment.timestamp() * 1_000_000)
