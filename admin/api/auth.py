"""API: tokens for a username and password, the caller's own account."""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from fastapi import APIRouter, status

from admin.api.models import LoginIn, PasswordIn, PreferencesIn
from admin.api.responses import PreferencesOut, TokenOut, UserOut
from admin.errors import Unauthorized
from admin.services import auth, login, preferences, users
from admin.web import ApiActor, Config, Engine, Int64, LoginGate

router = APIRouter(tags=["auth"])


@router.post(
    "/auth/token",
    status_code=status.HTTP_201_CREATED,
    response_model=TokenOut,
    response_model_exclude_unset=True,
)
async def create_token(
    body: LoginIn, gate: LoginGate, engine: Engine, cfg: Config
) -> dict[str, Any]:
    """Trade a username and password (and the TOTP code, for accounts that have one) for a
    bearer token (shown once; stored hashed)."""
    passed = await login.password_step(gate, body.username, body.password)
    actor = passed.actor
    if passed.stage == login.ENROL:
        raise Unauthorized("this account must first enrol a TOTP app: log in with a browser")
    if passed.stage == login.CODE:
        if not body.totp_code:
            raise Unauthorized("this account has a second factor: send totp_code too")
        actor = await login.code_step(gate, actor, body.totp_code)
    token, row = await auth.issue_token(engine, cfg, actor, body.name, body.expires_in_days)
    return row | {"token": token}


@router.get("/auth/tokens", response_model=list[TokenOut], response_model_exclude_unset=True)
async def list_tokens(actor: ApiActor, engine: Engine) -> list[dict[str, Any]]:
    """Your tokens (a superadmin sees everyone's): prefix, name, use and expiry, never the token."""
    return await auth.list_tokens(engine, actor)


@router.delete(
    "/auth/tokens/{token_id}", response_model=TokenOut, response_model_exclude_unset=True
)
async def revoke_token(token_id: Int64, actor: ApiActor, engine: Engine) -> dict[str, Any]:
    return await auth.revoke_token(engine, actor, token_id)


@router.get("/me", response_model=UserOut, response_model_exclude_unset=True)
@router.get("/auth/me", response_model=UserOut, response_model_exclude_unset=True)
async def me(actor: ApiActor, engine: Engine) -> dict[str, Any]:
    """Your account with your roles and preferences (`language`, `timezone`; "" = not chosen)."""
    return await users.get_user(engine, actor, actor.user.id)


@router.post("/me/password", status_code=status.HTTP_204_NO_CONTENT)
async def change_password(body: PasswordIn, actor: ApiActor, engine: Engine) -> None:
    """Change your password; your browser sessions end (tokens stay until revoked)."""
    await auth.change_password(engine, actor, body.current_password, body.new_password)


@router.put("/auth/me/preferences", response_model=PreferencesOut)
@router.put("/me/preferences", response_model=PreferencesOut)
async def put_preferences(body: PreferencesIn, actor: ApiActor, engine: Engine) -> dict[str, str]:
    """Your language ("" automatic, `en`, `zh-CN`) and time zone ("" the admin's default, or
    an IANA name) for pages and error reasons; both are replaced."""
    saved = await preferences.save(engine, actor, body.language, body.timezone)
    return asdict(saved)
