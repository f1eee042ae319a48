"""Request plumbing shared by pages and API: the engine, the caller, templates and their filters."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import jinja2
from fastapi import Depends, Request
from fastapi.responses import HTMLResponse
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from fastapi.templating import Jinja2Templates
from pydantic import Field
from sqlalchemy.ext.asyncio import AsyncEngine

from admin import translate
from admin.actor import Actor
from admin.config import AdminConfig
from admin.errors import Unauthorized
from admin.services import auth
from admin.services.refusals import Gate
from admin.translate import reader_of
from admin.trend_chart import format_ms, format_rate

SESSION_COOKIE = "uc_session"
LOGIN_COOKIE = "uc_login"  # the login form's own CSRF value, before any session exists
# Every number a request gives that reaches SQL must fit a signed 64-bit column: past that,
# SQLite's driver raises OverflowError (a 500). So a larger id in a path is unknown (404), and a
# larger filter or field is invalid (422), before any query runs.
Int64 = Annotated[int, Field(ge=-(2**63), le=2**63 - 1)]
# What an INTEGER column holds: a larger value in a body is a 422 naming the field, not a 500
# from the database.
Int32 = Annotated[int, Field(ge=-(2**31), le=2**31 - 1)]
_HERE = Path(__file__).parent
# Pages load scripts and styles from this origin only: an injected <script> would not run.
CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "object-src 'none'; base-uri 'none'; frame-ancestors 'none'; form-action 'self'"
)


class LoginRequired(Exception):
    """A page was asked for without a valid session: send the browser to the login form."""


def get_engine(request: Request) -> AsyncEngine:
    engine: AsyncEngine = request.app.state.engine
    return engine


def get_config(request: Request) -> AdminConfig:
    cfg: AdminConfig = request.app.state.config
    return cfg


def client_of(request: Request) -> str:
    return request.client.host if request.client else ""


Engine = Annotated[AsyncEngine, Depends(get_engine)]
Config = Annotated[AdminConfig, Depends(get_config)]


def get_gate(request: Request, engine: Engine, cfg: Config) -> Gate:
    """What a login step needs: the store, the settings, the metrics, the client's address."""
    return Gate(engine, cfg, request.app.state.metrics, client_of(request))


LoginGate = Annotated[Gate, Depends(get_gate)]
_bearer = HTTPBearer(auto_error=False, description="A token from POST /api/v1/auth/token")


async def api_actor(
    request: Request,
    engine: Engine,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> Actor:
    """The user a request's bearer token stands for; 401 without a good one."""
    if credentials is None:
        raise Unauthorized("send Authorization: Bearer <token> (POST /api/v1/auth/token)")
    actor = await auth.token_actor(engine, credentials.credentials, client_of(request))
    if actor is None:
        raise Unauthorized("the token is unknown, revoked or expired")
    translate.note_user(request, actor.language, actor.timezone)
    return actor


ApiActor = Annotated[Actor, Depends(api_actor)]


async def page_session(request: Request, engine: Engine, cfg: Config) -> auth.Session:
    session_id = request.cookies.get(SESSION_COOKIE)
    session = (
        await auth.session_of(engine, cfg, session_id, client_of(request)) if session_id else None
    )
    if session is None:
        raise LoginRequired
    translate.note_user(request, session.actor.language, session.actor.timezone)
    return session


PageSession = Annotated[auth.Session, Depends(page_session)]


# ---------------------------------------------------------------- templates


def format_duration(start: int | None, end: int | None) -> str:
    if not start or not end or end < start:
        return "—"
    seconds = (end - start) / 1e6
    if seconds < 60:
        return f"{seconds:.3f} s"
    minutes, secs = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h {minutes:02d}m {secs:02d}s" if hours else f"{minutes}m {secs:02d}s"


def format_bytes(n: int | None) -> str:
    value = float(n or 0)
    for unit in ("B", "KiB", "MiB"):
        if value < 1024:
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{value:.1f} GiB"


def _environment() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(_HERE / "templates"),
        autoescape=True,  # every value is escaped unless a template says otherwise (none do)
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters.update(duration=format_duration, size=format_bytes)
    translate.install(env)
    env.filters.update(ms=format_ms, pct=format_rate)
    return env


templates = Jinja2Templates(env=_environment())


def render(
    request: Request,
    name: str,
    session: auth.Session | None,
    context: dict[str, Any] | None = None,
    status_code: int = 200,
) -> HTMLResponse:
    """A page with the user, the CSRF token and the navigation filled in."""
    values = {
        "session": session,
        "me": session.actor.user if session else None,
        "csrf": session.csrf if session else "",
        "path": request.url.path,
        "reader": reader_of(request),
    }
    return templates.TemplateResponse(
        request, name, values | (context or {}), status_code=status_code
    )
