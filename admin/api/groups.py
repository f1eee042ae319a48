"""API: groups."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, status

from admin.api.models import GroupIn, GroupPatch
from admin.api.responses import GroupOut
from admin.services import groups
from admin.web import ApiActor, Engine, Int64

router = APIRouter(tags=["groups"])


@router.get("/groups", response_model=list[GroupOut], response_model_exclude_unset=True)
async def list_groups(actor: ApiActor, engine: Engine) -> list[dict[str, Any]]:
    """The groups you have a role in (all for a superadmin), with counts and your role."""
    return await groups.list_groups(engine, actor)


@router.post(
    "/groups",
    status_code=status.HTTP_201_CREATED,
    response_model=GroupOut,
    response_model_exclude_unset=True,
)
async def create_group(body: GroupIn, actor: ApiActor, engine: Engine) -> dict[str, Any]:
    """Superadmins only."""
    return await groups.create_group(engine, actor, body.changes())


@router.get("/groups/{gid}", response_model=GroupOut, response_model_exclude_unset=True)
async def get_group(gid: Int64, actor: ApiActor, engine: Engine) -> dict[str, Any]:
    return await groups.get_group(engine, actor, gid)


@router.patch("/groups/{gid}", response_model=GroupOut, response_model_exclude_unset=True)
async def update_group(
    gid: Int64, body: GroupPatch, actor: ApiActor, engine: Engine
) -> dict[str, Any]:
    """Rename or describe a group: its admins and superadmins."""
    return await groups.update_group(engine, actor, gid, body.changes())


@router.delete("/groups/{gid}", status_code=status.HTTP_204_NO_CONTENT)
async def delete_group(gid: Int64, actor: ApiActor, engine: Engine) -> None:
    """Superadmins only; 409 while the group has rules or agents."""
    await groups.delete_group(engine, actor, gid)
