"""Rule history: the versions of a rule, the diff of two, and rollback to one (a new version)."""

from __future__ import annotations

from typing import Any

from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from admin import rulefields
from admin.actor import Actor
from admin.errors import NotFound
from admin.permissions import Action
from admin.queries import rules, versions
from admin.services import audited
from admin.services import rules as rule_service
from center.rule_versions import change_rows, diff, rollback_values
from i18n.marks import N_
from protocol.clock import now_us


async def _rule(
    conn: AsyncConnection, actor: Actor, task_id: int, action: Action
) -> dict[str, Any]:
    """The rule, deleted ones too: their history stays readable, and a rollback restores one."""
    row = await rules.rule_by_id(conn, task_id)
    if row is None:
        raise NotFound("no such rule")
    actor.require(action, row["gid"], "rule")
    return row


async def _version(conn: AsyncConnection, task_id: int, number: int, field: str) -> dict[str, Any]:
    row = await versions.version(conn, task_id, number)
    if row is None:
        raise NotFound(f"no version {number} of rule {task_id}", field)
    return row


async def list_versions(
    engine: AsyncEngine, actor: Actor, task_id: int, limit: int = 100
) -> list[dict[str, Any]]:
    """Newest first: number, when, who (and how), summary."""
    async with engine.connect() as conn:
        await _rule(conn, actor, task_id, Action.VIEW)
        return await versions.list_versions(conn, task_id, limit)


async def overview(
    engine: AsyncEngine, actor: Actor, task_id: int, limit: int = 200
) -> dict[str, Any]:
    """The rule and its versions (the history page), and whether the actor may roll back."""
    async with engine.connect() as conn:
        rule = await _rule(conn, actor, task_id, Action.VIEW)
        rows = await versions.list_versions(conn, task_id, limit)
    return {"rule": rule, "versions": rows, "can_rollback": actor.can(Action.EDIT, rule["gid"])}


async def get_version(
    engine: AsyncEngine, actor: Actor, task_id: int, number: int
) -> dict[str, Any]:
    async with engine.connect() as conn:
        await _rule(conn, actor, task_id, Action.VIEW)
        return await _version(conn, task_id, number, "version")


async def compare(
    engine: AsyncEngine, actor: Actor, task_id: int, old: int | None, new: int | None
) -> dict[str, Any]:
    """The fields that differ from version `old` to version `new`, each with both values;
    without `to`, the newest version; without `from`, the one before `to` (the last change)."""
    async with engine.connect() as conn:
        await _rule(conn, actor, task_id, Action.VIEW)
        if new is None:
            latest = await versions.list_versions(conn, task_id, 1)
            if not latest:
                raise NotFound(f"rule {task_id} has no version yet", "to")
            new = int(latest[0]["version"])
        old = max(1, new - 1) if old is None else old
        a = await _version(conn, task_id, old, "from")
        b = await _version(conn, task_id, new, "to")
    return {
        "task_id": task_id,
        "from": old,
        "to": new,
        "changes": change_rows(diff(a["content"], b["content"])),
    }


async def rollback(engine: AsyncEngine, actor: Actor, task_id: int, number: int) -> dict[str, Any]:
    """Write version `number` back, checked exactly like an edit (a target deleted since is a
    field error); it becomes a new version "rollback to vN". Needs the admin role."""
    now = now_us()
    async with engine.begin() as conn:
        before = await _rule(conn, actor, task_id, Action.EDIT)
        old = await _version(conn, task_id, number, "version")
        changes = rollback_values(old["content"], rulefields.COLUMNS)
        summary = N_(f"rollback to v{number}")
        after = await rule_service.save(conn, actor, before, changes, now, summary=summary)
        target = ("rule", task_id, before["gid"])
        await audited(conn, actor, now, "rule.rollback", target, before=before, after=after)
        latest = (await versions.list_versions(conn, task_id, 1))[0]
        return await _version(conn, task_id, latest["version"], "version")
