"""Pages: the steps of a login after the password (TOTP code, TOTP enrolment) and through OIDC."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from admin import totp
from admin.credentials import same
from admin.errors import AdminError, Forbidden
from admin.pages._common import CSRF_FIELD, STALE_FORM, redirect, safe_next, text
from admin.pages.auth import login_page, signed_in
from admin.services import auth, login, oidc_login
from admin.sso.oidc import OidcProvider, OidcRefused, PendingLogin
from admin.web import SESSION_COOKIE, Config, Engine, LoginGate, client_of, render

router = APIRouter()
OIDC_COOKIE = "uc_oidc"  # the pending sign-in: state, nonce, PKCE verifier, where to go after
OIDC_COOKIE_MAX_S = 600


async def _staged(request: Request, engine: Engine, stage: str) -> auth.Session | None:
    session_id = request.cookies.get(SESSION_COOKIE, "")
    if not session_id:
        return None
    return await auth.staged_session(engine, session_id, stage, client_of(request))


def _step_page(
    request: Request, session: auth.Session, stage: str, error: AdminError | None = None
) -> HTMLResponse:
    secret = totp.new_secret() if stage == login.ENROL else ""
    issuer = request.app.state.config.admin_totp_issuer
    uri = totp.provisioning_uri(secret, session.actor.user.name, issuer) if secret else ""
    context = {
        "stage_csrf": session.csrf,
        "next": safe_next(request.query_params.get("next")),
        "error": error,
        "secret": secret,
        "otpauth_uri": uri,
        "user_name": session.actor.user.name,
    }
    return render(request, "login_totp.html", None, context, error.status if error else 200)


@router.get("/login/totp")
async def code_form(request: Request, engine: Engine) -> Response:
    """The TOTP code form, after a right password."""
    return await _step_form(request, engine, login.CODE)


@router.get("/login/enrol")
async def enrol_form(request: Request, engine: Engine) -> Response:
    """The enrolment form with a new secret, for an account that must have TOTP."""
    return await _step_form(request, engine, login.ENROL)


@router.post("/login/totp")
async def code_post(request: Request, engine: Engine, gate: LoginGate) -> Response:
    return await _step_post(request, engine, gate, login.CODE)


@router.post("/login/enrol")
async def enrol_post(request: Request, engine: Engine, gate: LoginGate) -> Response:
    return await _step_post(request, engine, gate, login.ENROL)


async def _step_form(request: Request, engine: Engine, stage: str) -> Response:
    session = await _staged(request, engine, stage)
    if session is None:
        return redirect("/login")
    return _step_page(request, session, stage)


async def _step_post(request: Request, engine: Engine, gate: LoginGate, stage: str) -> Response:
    """Only a session at this stage may post here, with that session's CSRF token (the
    staged session is no full one, so checked_form cannot be used)."""
    session = await _staged(request, engine, stage)
    if session is None:
        return redirect("/login")
    form = await request.form()
    if not same(text(form, CSRF_FIELD), session.csrf):
        return _step_page(request, session, stage, Forbidden(STALE_FORM))
    try:
        if stage == login.CODE:
            actor = await login.code_step(gate, session.actor, text(form, "code"))
        else:
            secret, code = text(form, "secret"), text(form, "code")
            actor = await login.enrol_step(gate, session.actor, secret, code)
    except AdminError as exc:
        return _step_page(request, session, stage, exc)
    return await signed_in(request, engine, gate.cfg, actor, next_url=text(form, "next"))


# ---------------------------------------------------------------- OpenID Connect


def _provider(request: Request) -> OidcProvider | None:
    provider: OidcProvider | None = request.app.state.oidc
    return provider


def _redirect_uri(request: Request) -> str:
    return str(request.url_for("oidc_callback"))


@router.get("/auth/oidc/start")
async def oidc_start(request: Request, cfg: Config) -> Response:
    """Off to the provider, with a fresh state, nonce and PKCE verifier kept in a cookie."""
    provider = _provider(request)
    if provider is None:
        return redirect("/login")
    next_url = safe_next(request.query_params.get("next"))
    try:
        url, pending = await provider.start(_redirect_uri(request), next_url)
    except OidcRefused as exc:
        error = AdminError(f"the identity provider cannot be reached ({exc.reason})")
        error.status = 502
        return _oidc_error(request, cfg, error)
    response = RedirectResponse(url, status_code=303)
    response.set_cookie(
        OIDC_COOKIE,
        pending.encode(),
        max_age=OIDC_COOKIE_MAX_S,
        httponly=True,
        samesite="lax",  # sent on the provider's top-level redirect back to us
        secure=cfg.admin_cookie_secure,
    )
    return response


def _oidc_error(request: Request, cfg: Config, error: AdminError) -> HTMLResponse:
    """The login form with the error; the pending sign-in is forgotten."""
    response = login_page(request, cfg, error)
    response.delete_cookie(OIDC_COOKIE)
    return response


@router.get("/auth/oidc/callback", name="oidc_callback")
async def oidc_callback(request: Request, engine: Engine, gate: LoginGate) -> Response:
    """The provider sends the browser back here with a code and the state."""
    provider = _provider(request)
    if provider is None:
        return redirect("/login")
    pending = PendingLogin.decode(request.cookies.get(OIDC_COOKIE, ""))
    params = dict(request.query_params)
    try:
        actor = await oidc_login.finish(gate, provider, pending, params, _redirect_uri(request))
    except AdminError as exc:
        return _oidc_error(request, gate.cfg, exc)
    response = await signed_in(
        request, engine, gate.cfg, actor, next_url=pending.next if pending else "/"
    )
    response.delete_cookie(OIDC_COOKIE)
    return response
