"""Rules: list, create and edit with the center's own checks, pause, delete, run now, kill."""

from __future__ import annotations

from typing import Any

from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from admin import rulefields, timing_preview
from admin.actor import Actor
from admin.errors import Conflict, Forbidden, Invalid, NotFound
from admin.permissions import Action, action_for_changes
from admin.queries import agents, groups, rules, runs
from admin.runargs import args_json, run_args
from admin.services import audited, keys
from center.errors import RuleError
from center.rules import rule_from_row, validate_rule
from center.store.calendars import load_calendars
from center.store.versions import record_version
from center.timing import timing_warning
from i18n.marks import N_
from protocol.clock import now_us
from protocol.vocabulary import CommandKind, CommandStatus, RuleStatus

ENABLED, PAUSED, DELETED = RuleStatus.ENABLED, RuleStatus.PAUSED, RuleStatus.DELETED
PREVIEW_COUNT = 10


async def list_rules(
    engine: AsyncEngine,
    actor: Actor,
    *,
    gid: int | None = None,
    name: str = "",
    status: int | None = None,
) -> list[dict[str, Any]]:
    async with engine.connect() as conn:
        return await rules.list_rules(conn, actor.scope, gid=gid, name=name, status=status)


async def _visible(
    conn: AsyncConnection, actor: Actor, task_id: int, action: Action
) -> dict[str, Any]:
    row = await rules.rule_by_id(conn, task_id)
    if row is None or row["status"] == DELETED:
        raise NotFound("no such rule")
    actor.require(action, row["gid"], N_("rule"))
    return row


async def get_rule(engine: AsyncEngine, actor: Actor, task_id: int) -> dict[str, Any]:
    """The rule with its daemon states, recent commands and how many runs go on now."""
    async with engine.connect() as conn:
        row = await _visible(conn, actor, task_id, Action.VIEW)
        row["warning"] = warning_of(row, await load_calendars(conn, row["gid"]))
        row["daemons"] = await rules.daemon_states(conn, task_id)
        row["commands"] = await runs.commands_for(conn, task_id=task_id, limit=10)
        row["active_runs"] = await rules.active_runs(conn, task_id)
    return row


def preview(expr: str, tz: str, now: int | None = None) -> list[str]:
    """The next fire times of a bare expression, or Invalid naming `rule` or `timezone`."""
    try:
        return rulefields.preview(expr, tz, now if now is not None else now_us(), PREVIEW_COUNT)
    except RuleError as exc:
        raise Invalid(exc.field, exc.reason) from None


async def preview_times(
    engine: AsyncEngine, actor: Actor, ask: timing_preview.PreviewAsk
) -> dict[str, Any]:
    """The real fire times (H, calendar, jitter) and the calendar's warning; a rule id given
    seeds H and jitter, and its group's calendars are looked up (else those of `gid`)."""
    gid = ask.gid
    async with engine.connect() as conn:
        if ask.task_id is not None:
            gid = (await _visible(conn, actor, ask.task_id, Action.VIEW))["gid"]
        elif gid is not None and not actor.can(Action.VIEW, gid):
            raise Invalid("gid", f"no such group: {gid}")
        calendars = await load_calendars(conn, gid) if gid is not None else {}
    return timing_preview.preview(ask, gid, calendars, now_us())


def warning_of(row: dict[str, Any], calendars: dict[tuple[int, str], Any]) -> str:
    """The rule's calendar warning ("cn-workdays has no data after …"), "" if none."""
    try:
        times = validate_rule(
            rule_from_row({k: v for k, v in row.items() if k != "agents"}), calendars
        )
    except RuleError:
        return ""
    return "" if times is None else timing_warning(times, now_us())


async def _group_for_rule(conn: AsyncConnection, actor: Actor, gid: Any) -> int:
    if gid is None:
        raise Invalid("gid", "is required: the group the rule belongs to")
    if not isinstance(gid, int) or isinstance(gid, bool):
        raise Invalid("gid", "give the id of a group")
    if not actor.can(Action.VIEW, gid) or await groups.group_by_id(conn, gid) is None:
        raise Invalid("gid", f"no such group: {gid}")
    if not actor.can(Action.EDIT, gid):
        raise Forbidden("you are not an admin of that group")
    return gid


async def _check_targets(conn: AsyncConnection, gid: int, aids: Any) -> list[int]:
    """Every target must be an approved agent of the rule's own group."""
    if not isinstance(aids, list) or not all(
        isinstance(a, int) and not isinstance(a, bool) for a in aids
    ):
        raise Invalid("agents", "must be a list of agent ids")
    found = await agents.agents_by_ids(conn, aids)
    for aid in aids:
        row = found.get(aid)
        if row is None or row["status"] == agents.DELETED or row["gid"] != gid:
            raise Invalid("agents", f"no agent {aid} in this rule's group")
    return sorted(set(aids))


async def _check_dependency(
    conn: AsyncConnection, gid: int, depends_on: int | None, task_id: int | None
) -> None:
    if depends_on is None:
        return
    if depends_on == task_id:
        raise Invalid("depends_on", "a rule cannot depend on itself")
    row = await rules.rule_by_id(conn, depends_on)
    if row is None or row["status"] == DELETED or row["gid"] != gid:
        raise Invalid("depends_on", f"no rule {depends_on} in this rule's group")


async def _checked(
    conn: AsyncConnection, actor: Actor, values: dict[str, Any], task_id: int | None
) -> tuple[dict[str, Any], list[int]]:
    gid = await _group_for_rule(conn, actor, values.get("gid"))
    calendars = await load_calendars(conn, gid)
    columns = rulefields.checked(values, calendars, task_id or 0)
    targets = await _check_targets(conn, gid, values.get("agents", []))
    await _check_dependency(conn, gid, columns["depends_on"], task_id)
    if missing := await keys.missing_keys(conn, gid, columns["concurrency_keys"]):
        raise Invalid("concurrency_keys", f"no key {', '.join(missing)} in this rule's group")
    return columns | {"gid": gid}, targets


async def create_rule(engine: AsyncEngine, actor: Actor, values: dict[str, Any]) -> dict[str, Any]:
    now = now_us()
    async with engine.begin() as conn:
        columns, targets = await _checked(conn, actor, values, None)
        task_id = await rules.insert_rule(conn, columns | {"error": ""}, now)
        await rules.set_targets(conn, task_id, targets)
        await record_version(conn, task_id, actor.author, now)
        after = await rules.rule_by_id(conn, task_id)
        target = ("rule", task_id, columns["gid"])
        await audited(conn, actor, now, "rule.create", target, after=after)
    return after or {}


async def update_rule(
    engine: AsyncEngine, actor: Actor, task_id: int, changes: dict[str, Any]
) -> dict[str, Any]:
    """Change some fields; the whole rule is checked again as the center would check it."""
    now = now_us()
    async with engine.begin() as conn:
        before = await _visible(conn, actor, task_id, action_for_changes(changes))
        after = await save(conn, actor, before, changes, now)
        target = ("rule", task_id, before["gid"])
        await audited(conn, actor, now, "rule.update", target, before=before, after=after)
    return after


async def save(
    conn: AsyncConnection,
    actor: Actor,
    before: dict[str, Any],
    changes: dict[str, Any],
    now: int,
    *,
    summary: str | None = None,
) -> dict[str, Any]:
    """Write `changes` over the stored rule `before` (checked like any edit) and record the
    version; `summary` overrides the one made from the diff (a rollback)."""
    task_id = before["id"]
    merged = before | changes
    if action_for_changes(changes) is Action.TOGGLE:
        if merged["status"] not in (ENABLED, PAUSED):
            raise Invalid("status", "must be 1 (enabled) or 0 (paused)")
        columns, targets = {"status": merged["status"]}, before["agents"]
    else:
        columns, targets = await _checked(conn, actor, merged, task_id)
    await rules.update_rule(conn, task_id, columns, now)
    if targets != before["agents"]:
        await rules.set_targets(conn, task_id, targets)
    await record_version(conn, task_id, actor.author, now, summary)
    return await rules.rule_by_id(conn, task_id) or {}


async def delete_rule(engine: AsyncEngine, actor: Actor, task_id: int) -> None:
    """Soft delete (status -1): the center stops planning it; its runs stay in the history."""
    now = now_us()
    async with engine.begin() as conn:
        before = await _visible(conn, actor, task_id, Action.EDIT)
        await rules.update_rule(conn, task_id, {"status": DELETED}, now)
        await record_version(conn, task_id, actor.author, now)
        target = ("rule", task_id, before["gid"])
        await audited(conn, actor, now, "rule.delete", target, before=before)


async def command(
    engine: AsyncEngine,
    actor: Actor,
    task_id: int,
    kind: CommandKind,
    extras: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Ask the leader center to run the rule now ("run", with `extras`: params, env, run_at)
    or stop its runs ("kill_rule"). The command row, params and env included, is audited."""
    now = now_us()
    async with engine.begin() as conn:
        rule = await _visible(conn, actor, task_id, Action.RUN)
        args = run_args(rule, extras or {}, now) if kind == CommandKind.RUN else {}
        if kind == "run" and rule["is_daemon"]:
            raise Conflict("a daemon rule runs all the time: enable it instead of running it now")
        if kind == CommandKind.REBALANCE and not (
            rule["is_daemon"] and rule["routing"] != "listed"
        ):
            raise Conflict("rebalance moves a fleet service: a daemon rule with a strategy")
        values = {"kind": kind, "task_id": task_id, "user_id": actor.user.id, "created_us": now}
        values["args"] = args_json(args)
        command_id = await runs.insert_command(conn, values | {"status": CommandStatus.PENDING})
        row = await runs.command_by_id(conn, command_id)
        action = {"run": "rule.run", "rebalance": "rule.rebalance"}.get(kind, "rule.kill")
        target = ("rule", task_id, rule["gid"])
        await audited(conn, actor, now, action, target, after=row)
    return row or {}
