"""API: a group's concurrency keys."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, status

from admin.api.models import KeyIn, KeyPatch
from admin.api.responses import KeyOut
from admin.services import keys
from admin.web import ApiActor, Engine, Int64

router = APIRouter(tags=["groups"])


@router.get("/groups/{gid}/keys", response_model=list[KeyOut])
async def list_keys(gid: Int64, actor: ApiActor, engine: Engine) -> list[dict[str, Any]]:
    """Each key with its limit, its holders (runs dispatched or running, on any agent), its
    queue (runs past their instant waiting for room) and the rules that hold it."""
    return await keys.list_keys(engine, actor, gid)


@router.post("/groups/{gid}/keys", status_code=status.HTTP_201_CREATED, response_model=KeyOut)
async def create_key(gid: Int64, body: KeyIn, actor: ApiActor, engine: Engine) -> dict[str, Any]:
    """Group admins; 409 if the group has a key of that name."""
    return await keys.create_key(engine, actor, gid, body.changes())


@router.patch("/groups/{gid}/keys/{key_id}", response_model=KeyOut)
async def update_key(
    gid: Int64, key_id: Int64, body: KeyPatch, actor: ApiActor, engine: Engine
) -> dict[str, Any]:
    """Change the limit (applied by the leader within a second) or the description."""
    return await keys.update_key(engine, actor, gid, key_id, body.changes())


@router.delete("/groups/{gid}/keys/{key_id}", status_code=status.HTTP_204_NO_CONTENT)
async def delete_key(gid: Int64, key_id: Int64, actor: ApiActor, engine: Engine) -> None:
    """409 while a rule holds the key."""
    await keys.delete_key(engine, actor, gid, key_id)
