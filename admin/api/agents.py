"""API: agents, pending ones, approval."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, status

from admin.api.models import AgentPatch, ApproveIn, DrainIn
from admin.api.responses import AgentOut, DrainOut
from admin.services import agents, fleet
from admin.web import ApiActor, Engine, Int64

router = APIRouter(tags=["agents"])


@router.get("/agents", response_model=list[AgentOut], response_model_exclude_unset=True)
async def list_agents(
    actor: ApiActor, engine: Engine, gid: Int64 | None = None, status: Int64 | None = None
) -> list[dict[str, Any]]:
    """Approved agents of your groups. status: 1 enabled, 0 disabled, 2 unreachable."""
    return await agents.list_agents(engine, actor, gid, status)


@router.get("/agents/pending", response_model=list[AgentOut], response_model_exclude_unset=True)
async def list_pending(actor: ApiActor, engine: Engine) -> list[dict[str, Any]]:
    """Agents that registered and wait for approval (superadmins and group admins)."""
    return await agents.list_pending(engine, actor)


@router.get("/agents/{aid}", response_model=AgentOut, response_model_exclude_unset=True)
async def get_agent(aid: Int64, actor: ApiActor, engine: Engine) -> dict[str, Any]:
    """The agent, with what runs on it now (`runs`) and the rules that list it (`rules`)."""
    return await agents.get_agent(engine, actor, aid)


@router.post("/agents/{aid}/approve", response_model=AgentOut, response_model_exclude_unset=True)
async def approve_agent(
    aid: Int64, body: ApproveIn, actor: ApiActor, engine: Engine
) -> dict[str, Any]:
    """Enable a pending agent in a group you administer."""
    return await agents.approve_agent(engine, actor, aid, body.gid)


@router.patch("/agents/{aid}", response_model=AgentOut, response_model_exclude_unset=True)
async def update_agent(
    aid: Int64, body: AgentPatch, actor: ApiActor, engine: Engine
) -> dict[str, Any]:
    """Enable or disable, move to another group (it leaves its rules), set labels."""
    return await agents.update_agent(engine, actor, aid, body.changes())


@router.delete("/agents/{aid}", status_code=status.HTTP_204_NO_CONTENT)
async def delete_agent(aid: Int64, actor: ApiActor, engine: Engine) -> None:
    """Forget the agent; if it registers again it is pending again."""
    await agents.delete_agent(engine, actor, aid)


@router.post("/agents/{aid}/drain", status_code=status.HTTP_202_ACCEPTED, response_model=DrainOut)
async def drain_agent(aid: Int64, body: DrainIn, actor: ApiActor, engine: Engine) -> dict[str, Any]:
    """No new work for the agent; its fleet services' instances move (make-before-break), its
    runs end, then it is disabled (status 0). 409 when a service would be left without an
    agent, unless `confirm`."""
    return await fleet.drain_agent(engine, actor, aid, confirm=body.confirm)
