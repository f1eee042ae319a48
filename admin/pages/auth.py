"""Pages: log in (a password, then a TOTP step when due), log out, one's account."""

from __future__ import annotations

from typing import Annotated, Any
from urllib.parse import quote
from zoneinfo import available_timezones

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from admin import totp
from admin.actor import Actor
from admin.config import AdminConfig
from admin.credentials import new_secret, same
from admin.errors import AdminError, Conflict, Invalid, Throttled
from admin.pages._common import CsrfForm, redirect, safe_next, text
from admin.queries import users as user_rows
from admin.services import auth, login, preferences, totp_account
from admin.translate import note_user
from admin.web import (
    LOGIN_COOKIE,
    SESSION_COOKIE,
    Config,
    Engine,
    Int64,
    LoginGate,
    LoginRequired,
    PageSession,
    page_session,
    render,
)
from i18n.marks import N_

router = APIRouter()
# The names a time zone field offers (any IANA name is accepted).
_ZONES = sorted(available_timezones())


async def _maybe_session(request: Request, engine: Engine, cfg: Config) -> auth.Session | None:
    try:
        return await page_session(request, engine, cfg)
    except LoginRequired:
        return None


MaybeSession = Annotated[auth.Session | None, Depends(_maybe_session)]


def login_page(
    request: Request, cfg: Config, error: AdminError | None = None, username: str = ""
) -> HTMLResponse:
    token = request.cookies.get(LOGIN_COOKIE) or new_secret()
    context = {
        "login_csrf": token,
        "error": error,
        "username": username,
        "next": safe_next(request.query_params.get("next")),
        "oidc_name": cfg.admin_oidc_provider_name if cfg.oidc_enabled else "",
        "ldap": cfg.ldap_enabled,
    }
    response = render(request, "login.html", None, context, error.status if error else 200)
    response.set_cookie(
        LOGIN_COOKIE, token, httponly=True, samesite="lax", secure=cfg.admin_cookie_secure
    )
    if isinstance(error, Throttled):
        response.headers["Retry-After"] = str(error.retry_after_s)
    return response


@router.get("/login")
async def login_form(request: Request, cfg: Config, session: MaybeSession) -> Response:
    if session is not None:
        return redirect(safe_next(request.query_params.get("next")))
    return login_page(request, cfg)


async def signed_in(
    request: Request,
    engine: Engine,
    cfg: AdminConfig,
    actor: Actor,
    *,
    next_url: str,
    stage: str = "",
) -> RedirectResponse:
    """A new session (any old one ends: no session fixation), then on to `next_url`; with a
    `stage` the session only finishes the login, on the TOTP page of that stage."""
    old = request.cookies.get(SESSION_COOKIE)
    session_id = await auth.start_session(engine, actor, cfg, old, stage)
    target = safe_next(next_url)
    if stage:
        target = f"/login/{stage}?next={quote(target, safe='')}"
    response = redirect(target)
    response.set_cookie(
        SESSION_COOKIE, session_id, httponly=True, samesite="lax", secure=cfg.admin_cookie_secure
    )
    response.delete_cookie(LOGIN_COOKIE)
    return response


@router.post("/login")
async def login_post(request: Request, engine: Engine, gate: LoginGate) -> Response:
    """Check the password (locally, or with LDAP for names that are no local account)."""
    cfg = gate.cfg
    form = await request.form()
    username = text(form, "username")
    cookie = request.cookies.get(LOGIN_COOKIE, "")
    if not cookie or not same(cookie, text(form, "login_csrf")):
        error = Invalid("login_csrf", "the login form expired: please try again")
        return login_page(request, cfg, error, username)
    try:
        passed = await login.password_step(gate, username, text(form, "password"))
    except AdminError as exc:
        return login_page(request, cfg, exc, username)
    next_url = text(form, "next")
    return await signed_in(
        request, engine, cfg, passed.actor, next_url=next_url, stage=passed.stage
    )


@router.post("/logout")
async def logout(session: PageSession, engine: Engine, _form: CsrfForm) -> RedirectResponse:
    await auth.end_session(engine, session)
    response = redirect("/login")
    response.delete_cookie(SESSION_COOKIE)
    return response


async def _account(
    request: Request,
    session: auth.Session,
    engine: Engine,
    *,
    error: AdminError | None = None,
    message: str = "",
    new_token: str = "",
    prefs: dict[str, str] | None = None,
) -> HTMLResponse:
    """The account page; `message` is English (translated where shown), `prefs` the posted
    preferences to show again when they are refused."""
    async with engine.connect() as conn:
        me_row = await user_rows.user_by_id(conn, session.actor.user.id) or {}
    secret = totp.new_secret()
    cfg = request.app.state.config
    issuer = cfg.admin_totp_issuer
    context: dict[str, Any] = {
        "me_row": me_row,
        "totp_secret": secret,
        "otpauth_uri": totp.provisioning_uri(secret, session.actor.user.name, issuer),
        "tokens": await auth.list_tokens(engine, session.actor),
        "error": error,
        "message": message,
        "new_token": new_token,
        "prefs": prefs or {k: me_row.get(k, "") for k in ("language", "timezone")},
        "zones": _ZONES,
        "default_zone": cfg.admin_timezone,
    }
    return render(request, "account.html", session, context, error.status if error else 200)


@router.get("/account")
async def account(request: Request, session: PageSession, engine: Engine) -> HTMLResponse:
    return await _account(request, session, engine)


@router.post("/account/password")
async def change_password(
    request: Request, session: PageSession, engine: Engine, form: CsrfForm
) -> HTMLResponse:
    if text(form, "new_password") != text(form, "new_password2"):
        error = Invalid("new_password2", "the two new passwords differ")
        return await _account(request, session, engine, error=error)
    try:
        await auth.change_password(
            engine,
            session.actor,
            text(form, "current_password"),
            text(form, "new_password"),
            session.id_hash,
        )
    except Invalid as exc:
        return await _account(request, session, engine, error=exc)
    message = N_("Password changed; your other sessions have ended.")
    return await _account(request, session, engine, message=message)


@router.post("/account/totp")
async def enrol_totp(
    request: Request, session: PageSession, engine: Engine, cfg: Config, form: CsrfForm
) -> HTMLResponse:
    secret, code = text(form, "secret"), text(form, "code")
    try:
        await totp_account.enrol(engine, login.totp_keys(cfg), session.actor, secret, code)
    except (Invalid, Conflict) as exc:
        return await _account(request, session, engine, error=exc)
    return await _account(request, session, engine, message=N_("TOTP enrolled."))


@router.post("/account/totp/remove")
async def remove_totp(
    request: Request, session: PageSession, engine: Engine, _form: CsrfForm
) -> HTMLResponse:
    try:
        await totp_account.remove(engine, session.actor)
    except Conflict as exc:
        return await _account(request, session, engine, error=exc)
    return await _account(request, session, engine, message=N_("TOTP removed."))


@router.post("/account/preferences")
async def save_preferences(
    request: Request, session: PageSession, engine: Engine, form: CsrfForm
) -> HTMLResponse:
    """The language and time zone of one's pages; the answer already follows them."""
    posted = {"language": text(form, "language"), "timezone": text(form, "timezone")}
    try:
        saved = await preferences.save(engine, session.actor, **posted)
    except Invalid as exc:
        return await _account(request, session, engine, error=exc, prefs=posted)
    note_user(request, saved.language, saved.timezone)
    return await _account(request, session, engine, message=N_("Preferences saved."))


@router.post("/account/tokens")
async def create_token(
    request: Request, session: PageSession, engine: Engine, cfg: Config, form: CsrfForm
) -> HTMLResponse:
    token, _row = await auth.issue_token(engine, cfg, session.actor, text(form, "name"), None)
    return await _account(request, session, engine, new_token=token)


@router.post("/account/tokens/{token_id}/revoke")
async def revoke_token(
    token_id: Int64, session: PageSession, engine: Engine, _form: CsrfForm
) -> RedirectResponse:
    await auth.revoke_token(engine, session.actor, token_id)
    return redirect("/account")
