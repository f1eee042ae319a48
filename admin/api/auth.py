"""API: tokens for a username and password, the caller's own account."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request, status

from admin.api.models import LoginIn, PasswordIn
from admin.api.responses import TokenOut, UserOut
from admin.services import auth, users
from admin.web import ApiActor, Config, Engine, Int64, client_of

router = APIRouter(tags=["auth"])


@router.post(
    "/auth/token",
    status_code=status.HTTP_201_CREATED,
    response_model=TokenOut,
    response_model_exclude_unset=True,
)
async def create_token(
    body: LoginIn, request: Request, engine: Engine, cfg: Config
) -> dict[str, Any]:
    """Trade a username and password for a bearer token (shown once; stored hashed)."""
    actor = await auth.login(engine, cfg, body.username, body.password, client_of(request))
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
async def me(actor: ApiActor, engine: Engine) -> dict[str, Any]:
    """Your account with your roles."""
    return await users.get_user(engine, actor, actor.user.id)


@router.post("/me/password", status_code=status.HTTP_204_NO_CONTENT)
async def change_password(body: PasswordIn, actor: ApiActor, engine: Engine) -> None:
    """Change your password; your browser sessions end (tokens stay until revoked)."""
    await auth.change_password(engine, actor, body.current_password, body.new_password)
