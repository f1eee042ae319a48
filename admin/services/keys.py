"""Concurrency keys of a group: list with holders and queue, create, edit, delete (audited)."""

from __future__ import annotations

from typing import Any

from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from admin.actor import Actor
from admin.errors import Conflict, Invalid, NotFound
from admin.permissions import Action
from admin.queries import groups
from admin.queries import keys as key_rows
from admin.services import audited
from center.errors import RuleError
from center.rules import parse_keys
from i18n.marks import N_
from protocol import statuses
from protocol.clock import now_us

MAX_LIMIT = 10_000
DESCRIPTION_CHARS = 255


def _checked(values: dict[str, Any], *, new: bool) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if "key" in values or new:
        out["key"] = _name(values.get("key"))
    if "limit" in values or new:
        limit = values.get("limit", 1)
        if not isinstance(limit, int) or isinstance(limit, bool) or not 1 <= limit <= MAX_LIMIT:
            raise Invalid("limit", f"must be a whole number, 1-{MAX_LIMIT}")
        out["limit"] = limit
    if "description" in values:
        description = str(values["description"] or "").strip()
        if len(description) > DESCRIPTION_CHARS:
            raise Invalid("description", f"is longer than {DESCRIPTION_CHARS} characters")
        out["description"] = description
    return out


def _name(value: Any) -> str:
    if not isinstance(value, str) or not value.strip():
        raise Invalid("key", "is empty: give the key a name such as db-heavy")
    try:
        names = parse_keys(value)
    except RuleError:
        names = ()
    if len(names) != 1 or "," in value:
        raise Invalid("key", f"{value[:40]!r} is not a key name (letters, digits, _ . : -)")
    return names[0]


async def _group(conn: AsyncConnection, actor: Actor, gid: int, action: Action) -> None:
    actor.require(action, gid, N_("group"))
    if await groups.group_by_id(conn, gid) is None:
        raise NotFound("no such group")


async def _key(conn: AsyncConnection, gid: int, key_id: int) -> dict[str, Any]:
    row = await key_rows.key_by_id(conn, key_id)
    if row is None or row["gid"] != gid:
        raise NotFound("no such concurrency key in this group")
    return row


async def list_keys(engine: AsyncEngine, actor: Actor, gid: int) -> list[dict[str, Any]]:
    """Each key with its limit, the runs holding it (on any agent) and the runs waiting."""
    async with engine.connect() as conn:
        await _group(conn, actor, gid, Action.VIEW)
        keys = await key_rows.list_keys(conn, gid)
        rules = await key_rows.keyed_rules(conn, gid)
        holders_of = {r["id"]: _keys_of(r["concurrency_keys"]) for r in rules}
        runs = await key_rows.active_runs(conn, list(holders_of), now_us())
    names = {r["id"]: r["name"] for r in rules}
    for key in keys:
        mine = [
            run | {"rule": names[run["task_id"]]}
            for run in runs
            if key["key"] in holders_of[run["task_id"]]
        ]
        key["holders"] = [r for r in mine if r["status"] != statuses.PLANNED]
        key["queue"] = [r for r in mine if r["status"] == statuses.PLANNED]
        key["rules"] = [
            {"id": t, "name": names[t]} for t, ks in holders_of.items() if key["key"] in ks
        ]
    return keys


def _keys_of(text: str) -> tuple[str, ...]:
    try:
        return parse_keys(text)
    except RuleError:
        return ()


async def create_key(
    engine: AsyncEngine, actor: Actor, gid: int, values: dict[str, Any]
) -> dict[str, Any]:
    checked = _checked(values, new=True)
    now = now_us()
    async with engine.begin() as conn:
        await _group(conn, actor, gid, Action.EDIT)
        if await key_rows.key_by_name(conn, gid, checked["key"]) is not None:
            raise Conflict(f"the group has a key named {checked['key']!r} already", "key")
        key_id = await key_rows.insert_key(conn, checked | {"gid": gid}, now)
        row = await key_rows.key_by_id(conn, key_id)
        await audited(conn, actor, now, "key.create", ("key", key_id, gid), after=row)
    return row or {}


async def update_key(
    engine: AsyncEngine, actor: Actor, gid: int, key_id: int, values: dict[str, Any]
) -> dict[str, Any]:
    """Change the limit or the description; a key is renamed by making a new one (the rules
    that hold it name it)."""
    if "key" in values:
        raise Invalid("key", "cannot be renamed: create a key and change the rules to it")
    checked = _checked(values, new=False)
    now = now_us()
    async with engine.begin() as conn:
        await _group(conn, actor, gid, Action.EDIT)
        before = await _key(conn, gid, key_id)
        await key_rows.update_key(conn, key_id, checked, now)
        after = await key_rows.key_by_id(conn, key_id)
        target = ("key", key_id, gid)
        await audited(conn, actor, now, "key.update", target, before=before, after=after)
    return after or {}


async def delete_key(engine: AsyncEngine, actor: Actor, gid: int, key_id: int) -> None:
    """Refused while a rule holds it: its runs would wait for a key that no longer exists."""
    now = now_us()
    async with engine.begin() as conn:
        await _group(conn, actor, gid, Action.EDIT)
        before = await _key(conn, gid, key_id)
        holders = [
            r["id"]
            for r in await key_rows.keyed_rules(conn, gid)
            if before["key"] in _keys_of(r["concurrency_keys"])
        ]
        if holders:
            raise Conflict(f"rules {holders} hold this key: change them first", "key")
        await key_rows.delete_key(conn, key_id)
        await audited(conn, actor, now, "key.delete", ("key", key_id, gid), before=before)


async def missing_keys(conn: AsyncConnection, gid: int, text: str) -> list[str]:
    """The keys a rule lists that its group does not have."""
    known = {k["key"] for k in await key_rows.list_keys(conn, gid)}
    return [k for k in _keys_of(text) if k not in known]
