"""API: users (superadmins), grants of roles per group (group admins), the audit log."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, status
from pydantic import BaseModel, Field
from sqlalchemy.ext.asyncio import AsyncEngine

from admin.api.models import GrantIn, UserIn, UserPatch
from admin.api.responses import AuditOut, GrantOut, UserOut
from admin.errors import Invalid
from admin.queries import users as user_rows
from admin.services import users
from admin.web import ApiActor, Engine, Int64

router = APIRouter(tags=["users"])


@router.get("/users", response_model=list[UserOut], response_model_exclude_unset=True)
async def list_users(actor: ApiActor, engine: Engine) -> list[dict[str, Any]]:
    """Everyone for superadmins and group admins; yourself for the others."""
    return await users.list_users(engine, actor)


@router.post(
    "/users",
    status_code=status.HTTP_201_CREATED,
    response_model=UserOut,
    response_model_exclude_unset=True,
)
async def create_user(body: UserIn, actor: ApiActor, engine: Engine) -> dict[str, Any]:
    """Superadmins only. Names are stored in lower case."""
    return await users.create_user(engine, actor, body.name, body.password, body.superadmin)


@router.get("/users/{user_id}", response_model=UserOut, response_model_exclude_unset=True)
async def get_user(user_id: Int64, actor: ApiActor, engine: Engine) -> dict[str, Any]:
    return await users.get_user(engine, actor, user_id)


@router.patch("/users/{user_id}", response_model=UserOut, response_model_exclude_unset=True)
async def update_user(
    user_id: Int64, body: UserPatch, actor: ApiActor, engine: Engine
) -> dict[str, Any]:
    """Superadmins only: superadmin flag, disable (status 0), reset the password, require or
    reset TOTP."""
    return await users.update_user(engine, actor, user_id, body.changes())


@router.delete("/users/{user_id}", status_code=status.HTTP_204_NO_CONTENT)
async def delete_user(user_id: Int64, actor: ApiActor, engine: Engine) -> None:
    await users.delete_user(engine, actor, user_id)


@router.get("/grants", response_model=list[GrantOut], response_model_exclude_unset=True)
async def list_grants(
    actor: ApiActor, engine: Engine, gid: Int64 | None = None, user_id: Int64 | None = None
) -> list[dict[str, Any]]:
    """Roles in the groups you administer, and your own."""
    return await users.list_grants(engine, actor, gid=gid, user_id=user_id)


async def _user_id(engine: AsyncEngine, body: GrantIn) -> int:
    if body.user_id is not None:
        return body.user_id
    if not body.username:
        raise Invalid("user_id", "give user_id or username")
    async with engine.connect() as conn:
        row = await user_rows.user_by_name(conn, body.username.strip().lower())
    if row is None:
        raise Invalid("username", f"no such user: {body.username[:64]}")
    return int(row["id"])


@router.post(
    "/grants",
    status_code=status.HTTP_201_CREATED,
    response_model=GrantOut,
    response_model_exclude_unset=True,
)
async def put_grant(body: GrantIn, actor: ApiActor, engine: Engine) -> dict[str, Any]:
    """Give a user a role in a group (replacing their role there): admins of the group."""
    return await users.put_grant(engine, actor, await _user_id(engine, body), body.gid, body.role)


@router.get("/grants/{grant_id}", response_model=GrantOut, response_model_exclude_unset=True)
async def get_grant(grant_id: Int64, actor: ApiActor, engine: Engine) -> dict[str, Any]:
    return await users.get_grant(engine, actor, grant_id)


@router.delete("/grants/{grant_id}", status_code=status.HTTP_204_NO_CONTENT)
async def delete_grant(grant_id: Int64, actor: ApiActor, engine: Engine) -> None:
    await users.delete_grant(engine, actor, grant_id)


class AuditQuery(BaseModel):
    object_type: str = Field(default="", description="rule, agent, group, user, grant, run, token")
    object_id: str = ""
    before_id: Int64 | None = Field(default=None, description="The next page after this entry id")
    limit: int = Field(default=100, ge=1, le=1000)


@router.get("/audit", response_model=list[AuditOut], response_model_exclude_unset=True)
async def list_audit(
    actor: ApiActor, engine: Engine, q: Annotated[AuditQuery, Query()]
) -> list[dict[str, Any]]:
    """Newest first: everything for superadmins, the entries of your groups for group admins."""
    return await users.list_audit(
        engine,
        actor,
        before_id=q.before_id,
        limit=q.limit,
        object_type=q.object_type,
        object_id=q.object_id,
    )
