"""API: rule history — the versions of a rule, one version, the diff of two, rollback."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query
from pydantic import Field

from admin.api.models import Body
from admin.api.responses import Out
from admin.services import history
from admin.web import ApiActor, Engine, Int32, Int64

router = APIRouter(tags=["rules"])


class VersionOut(Out):
    """A saved version of a rule: who (user_id 0 for a tool; `via` says how), when, what
    changed; `content` (every column of the rule and `agents`) when one version is asked for."""

    task_id: int
    version: int
    user_id: int
    username: str
    via: str
    at_us: int
    summary: str


class ChangeOut(Out):
    field: str
    old: Any = None
    new: Any = None


class DiffOut(Out):
    task_id: int
    changes: list[ChangeOut]


class RollbackIn(Body):
    version: Int32 = Field(description="The version to write back")


@router.get(
    "/rules/{task_id}/versions", response_model=list[VersionOut], response_model_exclude_unset=True
)
async def list_versions(
    task_id: Int64,
    actor: ApiActor,
    engine: Engine,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> list[dict[str, Any]]:
    """Every saved version of the rule, newest first (deleted rules keep theirs)."""
    return await history.list_versions(engine, actor, task_id, limit)


@router.get(
    "/rules/{task_id}/versions/{number}",
    response_model=VersionOut,
    response_model_exclude_unset=True,
)
async def get_version(
    task_id: Int64, number: Int64, actor: ApiActor, engine: Engine
) -> dict[str, Any]:
    """One version with its `content`."""
    return await history.get_version(engine, actor, task_id, number)


@router.get("/rules/{task_id}/diff", response_model=DiffOut, response_model_exclude_unset=True)
async def diff(
    task_id: Int64,
    actor: ApiActor,
    engine: Engine,
    old: Annotated[
        int | None, Query(alias="from", ge=0, le=2**31 - 1, description="Default: to - 1")
    ] = None,
    new: Annotated[
        int | None, Query(alias="to", ge=0, le=2**31 - 1, description="Default: the newest")
    ] = None,
) -> dict[str, Any]:
    """The fields that differ from one version to the other: `changes` [{field, old, new}].
    Without `to`, the newest version; without `from`, the one before `to`."""
    return await history.compare(engine, actor, task_id, old, new)


@router.post(
    "/rules/{task_id}/rollback", response_model=VersionOut, response_model_exclude_unset=True
)
async def rollback(
    task_id: Int64, body: RollbackIn, actor: ApiActor, engine: Engine
) -> dict[str, Any]:
    """Write a version back (admin role; checked like an edit, so a field no longer valid is a
    422 naming it); the answer is the new version, "rollback to vN"."""
    return await history.rollback(engine, actor, task_id, body.version)
