"""API: the fleet at a glance."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from admin.api.responses import Out
from admin.services import status
from admin.web import ApiActor, Engine

router = APIRouter(tags=["status"])


class StatusOut(Out):
    """agents {up, down, disabled, pending}, rules {enabled, paused, in_error},
    runs_last_hour {status: n}, leader {holder, epoch, expires_us, alive}."""

    agents: dict[str, int]
    rules: dict[str, int]
    runs_last_hour: dict[str, int]
    leader: dict[str, Any]


@router.get("/status", response_model=StatusOut)
async def fleet_status(actor: ApiActor, engine: Engine) -> dict[str, Any]:
    """Agents up and down, rules, runs of the last hour by status, and the leader center, within
    the groups you see."""
    return await status.fleet_status(engine, actor)
