"""The SQL of rules as files: read rules as file entries, check names, apply a plan at once."""

from __future__ import annotations

import json
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import delete, insert, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from center.rule_versions import IMPORT
from center.rulefiles import (
    BOOLS,
    ORDER,
    Change,
    Key,
    Plan,
    RuleFile,
    RuleFileError,
    dump,
    file_entry,
    parse,
    plan,
)
from center.store._util import new_id
from center.store.db import create_engine
from center.store.versions import record_version
from center.tables import agents, audit_log, cron_group, crontab, crontab_agent
from protocol.clock import now_us

DELETED = -1
COLUMNS = [n for n in ORDER if n not in ("group", "agents", "depends_on", "env")]


@dataclass
class Stored:
    """The store's rules as file entries, and the names needed to resolve a file."""

    entries: dict[Key, dict[str, Any]] = field(default_factory=dict)
    ids: dict[Key, list[int]] = field(default_factory=lambda: defaultdict(list))
    gids: dict[str, int] = field(default_factory=dict)
    agent_ids: dict[tuple[int, str], int] = field(default_factory=dict)
    ungrouped: int = 0

    def duplicates(self) -> dict[Key, list[int]]:
        return {k: v for k, v in self.ids.items() if len(v) > 1}


async def load(conn: AsyncConnection, group: str | None = None) -> Stored:
    """Live rules (of one group, or all) as file entries, and the names a file may use."""
    out = Stored()
    rows = await conn.execute(select(cron_group.c.id, cron_group.c.name))
    out.gids = {name: int(gid) for gid, name in rows}
    names = {v: k for k, v in out.gids.items()}
    targets = await _target_names(conn, out)
    query = select(crontab).where(crontab.c.status != DELETED).order_by(crontab.c.id)
    rules = [dict(r) for r in (await conn.execute(query)).mappings()]
    rule_names = {r["id"]: r["name"] for r in rules}
    for r in rules:
        if r["gid"] not in names:
            out.ungrouped += 1
            continue
        if group is not None and names[r["gid"]] != group:
            continue
        key = (names[r["gid"]], r["name"])
        out.ids[key].append(r["id"])
        parent = rule_names.get(r["depends_on"]) if r["depends_on"] else None
        out.entries[key] = file_entry(
            r | {"group": key[0], "agents": targets[r["id"]], "depends_on": parent}
        )
    return out


async def _target_names(conn: AsyncConnection, out: Stored) -> dict[int, list[str]]:
    """Each rule's agents by name; fills `out.agent_ids` with the agents of each group."""
    query = select(agents.c.id, agents.c.gid, agents.c.name).where(agents.c.status != DELETED)
    agent_names = {}
    for aid, gid, name in await conn.execute(query):
        agent_names[aid] = name
        if gid is not None:
            out.agent_ids[(gid, name)] = aid
    targets: dict[int, list[str]] = defaultdict(list)
    for task_id, aid in await conn.execute(select(crontab_agent.c.task_id, crontab_agent.c.aid)):
        targets[task_id].append(agent_names.get(aid, f"#{aid}"))
    return targets


def resolve(rule_file: RuleFile, stored: Stored) -> None:
    """Every name in the file must exist here: groups, agents of the group, parent rules."""
    entries = rule_file.entries
    in_file = {(e["group"], e["name"]) for e in entries}
    duplicated = stored.duplicates()
    for e in entries:
        where, key = e["_where"], (e["group"], e["name"])
        gid = stored.gids.get(e["group"])
        if gid is None:
            raise RuleFileError(where, "group", f"no group named {e['group']!r} here")
        if key in duplicated:
            ids = ", ".join(map(str, duplicated[key]))
            raise RuleFileError(where, "name", f"rules {ids} here share this name: rename one")
        for name in e["agents"]:
            if (gid, name) not in stored.agent_ids:
                raise RuleFileError(where, "agents", f"no agent {name!r} in group {e['group']}")
        parent = e["depends_on"]
        if parent is not None and (e["group"], parent) not in in_file | set(stored.entries):
            raise RuleFileError(where, "depends_on", f"no rule {parent!r} in group {e['group']}")
    for name in sorted(rule_file.groups - set(stored.gids)):
        raise RuleFileError("groups", "group", f"no group named {name!r} here")


async def apply(conn: AsyncConnection, rule_file: RuleFile, stored: Stored, prune: bool) -> Plan:
    """Write the plan in the caller's transaction; every change bumps update_time."""
    resolve(rule_file, stored)
    todo = plan(rule_file, stored.entries, prune=prune)
    by_key = {(e["group"], e["name"]): e for e in rule_file.entries}
    writer = _Writer(conn, stored)
    for change in todo.changes:
        await writer.one(change, by_key.get(change.key))
    for change in todo.changes:  # parents may be new rules: link once every id is known
        wanted = by_key.get(change.key)
        if wanted is not None:
            await writer.link(change.key, wanted["depends_on"])
    for change in todo.changes:  # each rule as the file left it, parent links included
        await record_version(conn, writer.ids[change.key], IMPORT, writer.now)
    return todo


class _Writer:
    def __init__(self, conn: AsyncConnection, stored: Stored) -> None:
        self.conn, self.stored, self.now = conn, stored, now_us()
        self.ids = {k: v[0] for k, v in stored.ids.items()}

    async def one(self, change: Change, entry: dict[str, Any] | None) -> None:
        gid = self.stored.gids[change.key[0]]
        if entry is None:  # removed: a soft delete, as the admin does
            await self._write(self.ids[change.key], {"status": DELETED})
            await _audit(self.conn, "rule.delete", (self.ids[change.key], gid), self.now)
            return
        values = _columns(entry) | {"gid": gid}
        if change.kind == "add":
            result = await self.conn.execute(insert(crontab).values(**values, create_time=self.now))
            self.ids[change.key] = new_id(result)
        task_id = self.ids[change.key]
        await self._write(task_id, values)
        await _targets(
            self.conn, task_id, [self.stored.agent_ids[(gid, a)] for a in entry["agents"]]
        )
        action = "rule.create" if change.kind == "add" else "rule.update"
        await _audit(self.conn, action, (task_id, gid), self.now, entry)

    async def link(self, key: Key, parent: str | None) -> None:
        depends = self.ids[(key[0], parent)] if parent is not None else None
        stmt = update(crontab).where(crontab.c.id == self.ids[key]).values(depends_on=depends)
        await self.conn.execute(stmt)

    async def _write(self, task_id: int, values: dict[str, Any]) -> None:
        stmt = update(crontab).where(crontab.c.id == task_id)
        await self.conn.execute(stmt.values(**values, update_time=self.now))


def _columns(entry: dict[str, Any]) -> dict[str, Any]:
    values = {n: int(entry[n]) if n in BOOLS else entry[n] for n in COLUMNS}
    return values | {"env": json.dumps(entry["env"], sort_keys=True), "error": ""}


async def _targets(conn: AsyncConnection, task_id: int, aids: list[int]) -> None:
    await conn.execute(delete(crontab_agent).where(crontab_agent.c.task_id == task_id))
    if aids:
        rows = [{"task_id": task_id, "aid": a} for a in sorted(set(aids))]
        await conn.execute(insert(crontab_agent), rows)


async def _audit(
    conn: AsyncConnection, action: str, target: tuple[int, int], now: int, after: Any = None
) -> None:
    task_id, gid = target
    shown = {k: v for k, v in after.items() if k != "_where"} if after else None
    await conn.execute(
        insert(audit_log).values(
            at_us=now,
            user_id=0,
            username="(rules import)",
            action=action,
            object_type="rule",
            object_id=str(task_id),
            gid=gid,
            before_json="",
            after_json=json.dumps(shown, sort_keys=True) if shown else "",
            client="",
        )
    )


async def export_text(url: str, group: str | None) -> tuple[str, Stored]:
    """The rules (of one group, or all) as a YAML document, and what was read."""
    engine = create_engine(url, pool_size=1)
    try:
        async with engine.connect() as conn:
            stored = await load(conn, group)
    finally:
        await engine.dispose()
    if group is not None and group not in stored.gids:
        raise RuleFileError("--group", "group", f"no group named {group!r}")
    header = "UnitedCron rules. Apply with: unitedcron rules import FILE --apply"
    groups = [group] if group is not None else list(stored.gids)
    return dump(list(stored.entries.values()), groups, header), stored


async def import_text(url: str, text: str, source: str, *, write: bool, prune: bool) -> Plan:
    """Check the whole file, then (with `write`) apply it in ONE transaction."""
    rule_file = parse(text, source)
    engine = create_engine(url, pool_size=1)
    try:
        if not write:
            async with engine.connect() as conn:
                stored = await load(conn)
            resolve(rule_file, stored)
            return plan(rule_file, stored.entries, prune=prune)
        async with engine.begin() as conn:
            return await apply(conn, rule_file, await load(conn), prune)
    finally:
        await engine.dispose()
