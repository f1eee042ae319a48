"""API: rules, their preview, run now and kill."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, status

from admin.api.models import RuleIn, RulePatch, RunNowIn
from admin.api.responses import CommandOut, PlacementOut, PreviewOut, RuleOut
from admin.services import fleet, rules
from admin.timing_preview import PreviewAsk
from admin.web import ApiActor, Engine, Int32, Int64
from protocol.vocabulary import CommandKind

router = APIRouter(tags=["rules"])


@router.get("/rules", response_model=list[RuleOut], response_model_exclude_unset=True)
async def list_rules(
    actor: ApiActor,
    engine: Engine,
    gid: Int64 | None = None,
    name: str = "",
    status: Int64 | None = None,
) -> list[dict[str, Any]]:
    """Rules of your groups; `name` matches part of the name; status 1 enabled, 0 paused."""
    return await rules.list_rules(engine, actor, gid=gid, name=name, status=status)


@router.get("/rules/preview", response_model=PreviewOut, response_model_exclude_unset=True)
async def preview(
    *,
    actor: ApiActor,
    engine: Engine,
    rule: str,
    timezone: str = "UTC",
    calendar: str = "",
    calendar_mode: str = "only",
    calendar_fallback: str = "skip",
    jitter_s: Int32 = 0,
    start: Annotated[str, Query(alias="from", description="ISO time; naive: in timezone")] = "",
    count: Int32 = rules.PREVIEW_COUNT,
    task_id: Annotated[Int64 | None, Query(alias="id", description="seeds H and jitter")] = None,
    gid: Annotated[Int64 | None, Query(description="whose calendars to look in")] = None,
) -> dict[str, Any]:
    """The next `count` real fire times (after H, the calendar and jitter) from `from` (or now),
    as wall-clock times in the time zone, and the calendar's warning when its data runs out."""
    ask = PreviewAsk(
        rule,
        timezone,
        calendar,
        calendar_mode,
        calendar_fallback,
        jitter_s,
        start,
        count,
        task_id,
        gid,
    )
    return await rules.preview_times(engine, actor, ask)


@router.post(
    "/rules",
    status_code=status.HTTP_201_CREATED,
    response_model=RuleOut,
    response_model_exclude_unset=True,
)
async def create_rule(body: RuleIn, actor: ApiActor, engine: Engine) -> dict[str, Any]:
    """Needs the admin role in `gid`; every field is checked as the center would check it."""
    return await rules.create_rule(engine, actor, body.rule_changes())


@router.get("/rules/{task_id}", response_model=RuleOut, response_model_exclude_unset=True)
async def get_rule(task_id: Int64, actor: ApiActor, engine: Engine) -> dict[str, Any]:
    """The rule with `agents`, `error` (set by the center), daemon states and recent commands."""
    return await rules.get_rule(engine, actor, task_id)


@router.patch("/rules/{task_id}", response_model=RuleOut, response_model_exclude_unset=True)
async def update_rule(
    task_id: Int64, body: RulePatch, actor: ApiActor, engine: Engine
) -> dict[str, Any]:
    """Only `status` (pause 0 / enable 1): operator. Anything else: admin of the group."""
    return await rules.update_rule(engine, actor, task_id, body.rule_changes())


@router.delete("/rules/{task_id}", status_code=status.HTTP_204_NO_CONTENT)
async def delete_rule(task_id: Int64, actor: ApiActor, engine: Engine) -> None:
    """Soft delete: status -1; its runs stay in the history."""
    await rules.delete_rule(engine, actor, task_id)


@router.post(
    "/rules/{task_id}/run",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=CommandOut,
    response_model_exclude_unset=True,
)
async def run_now(
    task_id: Int64, actor: ApiActor, engine: Engine, body: RunNowIn | None = None
) -> dict[str, Any]:
    """Run the rule now on its agents (or once at `run_at`), with `params` appended to the
    command and `env` overrides if the rule has allow_params (422 naming the field if not);
    poll GET /commands/{id} for the center's answer."""
    extras = body.changes() if body is not None else {}
    return await rules.command(engine, actor, task_id, CommandKind.RUN, extras)


@router.post(
    "/rules/{task_id}/rebalance",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=CommandOut,
    response_model_exclude_unset=True,
)
async def rebalance(task_id: Int64, actor: ApiActor, engine: Engine) -> dict[str, Any]:
    """Move a fleet service's instances toward an even spread, one at a time (make-before-
    break); nothing moves on its own when an agent joins."""
    return await rules.command(engine, actor, task_id, CommandKind.REBALANCE)


@router.get("/rules/{task_id}/placement", response_model=list[PlacementOut])
async def placement(task_id: Int64, actor: ApiActor, engine: Engine) -> list[dict[str, Any]]:
    """Each instance of a fleet service: its agent, state (running, starting, crash_looping,
    unplaced with the reason) and since when."""
    return await fleet.placement(engine, actor, task_id)


@router.post(
    "/rules/{task_id}/kill",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=CommandOut,
    response_model_exclude_unset=True,
)
async def kill_rule(task_id: Int64, actor: ApiActor, engine: Engine) -> dict[str, Any]:
    """Stop every running run of the rule."""
    return await rules.command(engine, actor, task_id, CommandKind.KILL_RULE)
