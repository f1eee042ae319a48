"""`unitedcron import-united-cron`: the original swoole-crontab-process database into this one."""

from __future__ import annotations

import re
from collections.abc import Collection
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Table, delete, insert, inspect, select, text, update
from sqlalchemy.ext.asyncio import AsyncConnection

from center import _import_rows as rows
from center.cronexpr import parse_schedule
from center.errors import RuleError
from center.rule_versions import Author
from center.store._util import new_id as inserted_id
from center.store.db import create_engine, current_revision, head_revision, normalize_url, safe_url
from center.store.versions import record_version
from center.tables import (
    admin_grant,
    admin_user,
    agents,
    cron_group,
    crontab,
    crontab_agent,
    import_map,
)
from protocol.clock import now_us

ROLES = ("viewer", "operator", "admin")
_PREFIX_RE = re.compile(r"^[A-Za-z0-9_]{0,32}$")
REQUIRED = ("agents", "crontab")
UNITED_CRON = Author(0, "import", "import-united-cron")
OPTIONAL = ("crontab_agent", "auth_group", "auth_group_access", "ucenter_member", "member")


class ImportFailed(Exception):
    """The import cannot start or was rolled back; the message says why."""


@dataclass(frozen=True, slots=True)
class ImportOptions:
    source_url: str
    target_url: str
    timezone: str = "UTC"
    role: str = "operator"
    prefix: str = ""


@dataclass
class Original:
    """The original's rows, by table (absent optional tables are empty)."""

    tables: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    missing: list[str] = field(default_factory=list)

    def __getitem__(self, name: str) -> list[dict[str, Any]]:
        return self.tables.get(name, [])


async def read_original(url: str, prefix: str = "") -> Original:
    """Every row of the tables the import needs, read once."""
    engine = create_engine(url, pool_size=1)
    try:
        async with engine.connect() as conn:
            present = set(await conn.run_sync(lambda c: inspect(c).get_table_names()))
            original = Original()
            for name in (*REQUIRED, *OPTIONAL):
                table = prefix + name
                if table not in present:
                    if name in REQUIRED:
                        raise ImportFailed(f"{safe_url(url)} has no table {table!r}")
                    original.missing.append(table)
                    continue
                result = await conn.execute(text(f"SELECT * FROM `{table}`"))  # name checked
                original.tables[name] = [dict(r) for r in result.mappings()]
        return original
    finally:
        await engine.dispose()


async def import_united_cron(options: ImportOptions) -> rows.Report:
    """Read `agents`, `crontab` (with its CSV `agents` column), `crontab_agent` and onethink's
    `auth_group`, `auth_group_access`, `ucenter_member`, `member`; write groups, agents, rules,
    targets, users (disabled, no usable password) and roles in ONE transaction. `import_map`
    remembers which original row became which row here, with a hash of it: a second import of
    unchanged rows writes nothing."""
    if not _PREFIX_RE.match(options.prefix):
        raise ImportFailed(f"table prefix {options.prefix!r}: use letters, digits and '_'")
    try:
        parse_schedule("@hourly", options.timezone)
    except RuleError as exc:
        raise ImportFailed(f"--timezone: {exc.reason}") from None
    if options.role not in ROLES:
        raise ImportFailed(f"role {options.role!r} is not one of {', '.join(ROLES)}")
    if await current_revision(options.target_url) != head_revision():
        raise ImportFailed(f"{safe_url(options.target_url)}: run `unitedcron db upgrade` first")
    source = normalize_url(options.source_url)
    original = await read_original(options.source_url, options.prefix)
    engine = create_engine(options.target_url, pool_size=1)
    try:
        async with engine.begin() as conn:
            run = _Run(conn, options, f"{source.host}/{source.database}"[:64], now_us())
            await run.everything(original)
    finally:
        await engine.dispose()
    for table in original.missing:
        run.report.note(table, "-", "table not found in the original: nothing imported from it")
    return run.report


class _Run:
    """One import: the id maps built as it goes, the report, the target connection."""

    def __init__(self, conn: AsyncConnection, options: ImportOptions, source: str, now: int):
        self.conn, self.options, self.source, self.now = conn, options, source, now
        self.report = rows.Report()
        self.ids: dict[str, dict[int, int]] = {}
        self._known: dict[tuple[str, str], tuple[int, str]] = {}

    async def everything(self, original: Original) -> None:
        query = select(import_map).where(import_map.c.source == self.source)
        for r in (await self.conn.execute(query)).mappings():
            self._known[(r["orig_table"], r["orig_id"])] = (r["new_id"], r["orig_hash"])
        for row in original["auth_group"]:
            await self.group(row)
        agent_rows = {int(r["id"]): r for r in original["agents"]}
        for row in agent_rows.values():
            await self.agent(row)
        targets = _targets(original)
        for row in original["crontab"]:
            await self.rule(row, targets.get(int(row["id"]), set()), agent_rows)
        for row in _users(original):
            await self.user(row)
        for row in original["auth_group_access"]:
            await self.grant(row)

    # ------------------------------------------------------------ bookkeeping

    def _known_id(self, orig_table: str, orig_id: object) -> int | None:
        known = self._known.get((orig_table, str(orig_id)))
        return known[0] if known else None

    def _claimed(self, orig_table: str, new_id: int) -> bool:
        return any(t == orig_table and n == new_id for (t, _o), (n, _h) in self._known.items())

    async def _exists(self, table: Table, new_id: int) -> bool:
        found = await self.conn.scalar(select(table.c.id).where(table.c.id == new_id))
        return found is not None

    async def _named(
        self, table: Table, orig: tuple[str, int], mapped: rows.Mapped
    ) -> tuple[rows.Mapped, int | None]:
        """Settle a unique name: adopt an unclaimed row of that name (an agent that registered
        already, a group made by hand), or add `-<original id>` to a name taken here."""
        name, (orig_table, orig_id) = mapped.values["name"], orig
        found = await self.conn.scalar(select(table.c.id).where(table.c.name == name))
        mine = self._known_id(orig_table, orig_id)
        if found is None or found == mine:
            return mapped, None
        if mine is not None and await self._exists(table, mine):
            # Renamed in the original to a name taken here: keep the name it has.
            values = {k: v for k, v in mapped.values.items() if k != "name"}
            return rows.Mapped(values, (*mapped.notes, f"name {name!r} is taken here")), None
        if not self._claimed(orig_table, int(found)):
            return mapped, int(found)
        unique = f"{name[:50]}-{orig_id}"
        note = f"name {name!r} is taken by another original row: imported as {unique!r}"
        return rows.Mapped(mapped.values | {"name": unique}, (*mapped.notes, note)), None

    async def put(
        self,
        table: Table,
        orig: tuple[str, int | str],
        mapped: rows.Mapped | rows.Skip,
        digest: str,
        *,
        update_cols: Collection[str],
        adopt_id: int | None = None,
    ) -> tuple[int | None, str]:
        """Insert, update or leave one row; returns (new id, outcome)."""
        orig_table, orig_id = orig
        if isinstance(mapped, rows.Skip):
            self.report.count(orig_table, "skipped")
            self.report.note(orig_table, orig_id, mapped.reason)
            return None, "skipped"
        for remark in mapped.notes:
            self.report.note(orig_table, orig_id, remark)
        known = self._known.get((orig_table, str(orig_id)))
        some = {k: v for k, v in mapped.values.items() if k in update_cols}
        if known is not None and await self._exists(table, known[0]):
            new_id, outcome = known[0], "unchanged" if known[1] == digest else "updated"
        elif adopt_id is not None:
            new_id, outcome = adopt_id, "imported"
            self.report.note(orig_table, orig_id, f"matched the existing {table.name} {adopt_id}")
        else:
            new_id, outcome, some = 0, "imported", mapped.values
        if outcome != "unchanged":
            new_id = await self._write(table, new_id, some)
            await self._remember(orig_table, orig_id, new_id, digest)
        self.report.count(orig_table, outcome)
        if isinstance(orig_id, int):
            self.ids.setdefault(orig_table, {})[orig_id] = new_id
        return new_id, outcome

    async def _write(self, table: Table, new_id: int, values: dict[str, Any]) -> int:
        if not new_id:
            result = await self.conn.execute(insert(table).values(**values))
            return inserted_id(result)
        if values:
            await self.conn.execute(update(table).where(table.c.id == new_id).values(**values))
        return new_id

    async def _remember(self, orig_table: str, orig_id: object, new_id: int, digest: str) -> None:
        key = {"source": self.source, "orig_table": orig_table, "orig_id": str(orig_id)}
        await self.conn.execute(delete(import_map).filter_by(**key))
        values = key | {"new_id": new_id, "orig_hash": digest, "imported_us": self.now}
        await self.conn.execute(insert(import_map).values(**values))
        self._known[(orig_table, str(orig_id))] = (new_id, digest)

    def _gid(self, orig_gid: Any) -> int | None:
        return self.ids.get("auth_group", {}).get(int(orig_gid or 0))

    # ------------------------------------------------------------ tables

    async def group(self, row: dict[str, Any]) -> None:
        orig = ("auth_group", int(row["id"]))
        mapped, adopt_id = rows.map_group(row), None
        if isinstance(mapped, rows.Mapped):
            mapped, adopt_id = await self._named(cron_group, orig, mapped)
            mapped.values.update(create_time=self.now, update_time=self.now)
        await self.put(
            cron_group,
            orig,
            mapped,
            rows.row_hash(row),
            update_cols=("name", "description", "update_time"),
            adopt_id=adopt_id,
        )

    async def agent(self, row: dict[str, Any]) -> None:
        orig = ("agents", int(row["id"]))
        mapped, adopt_id = rows.map_agent(row, self._gid(row.get("gid")), self.now), None
        if isinstance(mapped, rows.Mapped):
            mapped, adopt_id = await self._named(agents, orig, mapped)
            mapped.values["update_time"] = self.now
        # An agent that registered already keeps its address; the original decides the rest.
        await self.put(
            agents,
            orig,
            mapped,
            rows.row_hash(row, self._gid(row.get("gid"))),
            update_cols=("name", "gid", "status", "update_time"),
            adopt_id=adopt_id,
        )

    async def rule(
        self, row: dict[str, Any], wanted: set[int], agent_rows: dict[int, dict[str, Any]]
    ) -> None:
        orig_id = int(row["id"])
        gid = self._gid(row.get("gid"))
        mapped = rows.map_rule(row, gid, self.options.timezone, self.now)
        digest = rows.row_hash(row, sorted(wanted), gid, self.options.timezone)
        cols = (
            [k for k in mapped.values if k != "create_time"]
            if isinstance(mapped, rows.Mapped)
            else []
        )
        for item in rows.csv_agent_ids(row.get("agents"))[1]:
            self.report.note("crontab", orig_id, f"agents column: {item[:40]!r} is not an id")
        task_id, outcome = await self.put(
            crontab, ("crontab", orig_id), mapped, digest, update_cols=cols
        )
        if task_id is None:
            return
        aids = self._target_ids(orig_id, wanted, agent_rows)
        if outcome == "unchanged":
            for _aid in aids:
                self.report.count("crontab_agent", "unchanged")
            return
        await self.conn.execute(delete(crontab_agent).where(crontab_agent.c.task_id == task_id))
        if aids:
            await self.conn.execute(
                insert(crontab_agent), [{"task_id": task_id, "aid": a} for a in sorted(aids)]
            )
        # The original's create_time is kept, so say plainly what this first version is.
        summary = "imported from the original" if outcome == "imported" else None
        await record_version(self.conn, task_id, UNITED_CRON, self.now, summary)
        for _ in aids:
            self.report.count("crontab_agent", "imported")

    def _target_ids(
        self, orig_id: int, wanted: set[int], agent_rows: dict[int, dict[str, Any]]
    ) -> set[int]:
        """The rule's agents here; each original id that cannot be mapped is reported."""
        out = set()
        for aid in sorted(wanted):
            new = self.ids.get("agents", {}).get(aid)
            if new is not None:
                out.add(new)
                continue
            why = (
                "does not exist in the original"
                if aid not in agent_rows
                else ("was not imported (deleted in the original)")
            )
            self.report.count("crontab_agent", "skipped")
            self.report.note("crontab_agent", f"{orig_id}:{aid}", f"agent {aid} {why}")
        return out

    async def user(self, row: dict[str, Any]) -> None:
        orig = ("ucenter_member", int(row["id"]))
        mapped, adopt_id = rows.map_user(row, self.now), None
        if isinstance(mapped, rows.Mapped):
            mapped, adopt_id = await self._named(admin_user, orig, mapped)
        # Never touch the password or the status of an account once it is here.
        await self.put(
            admin_user,
            orig,
            mapped,
            rows.row_hash(row),
            update_cols=("name",),
            adopt_id=adopt_id,
        )

    async def grant(self, row: dict[str, Any]) -> None:
        uid, orig_gid = int(row["uid"]), int(row["group_id"])
        orig = ("auth_group_access", f"{uid}:{orig_gid}")
        user_id, gid = self.ids.get("ucenter_member", {}).get(uid), self._gid(orig_gid)
        mapped: rows.Mapped | rows.Skip
        if user_id is None or gid is None:
            missing = f"user {uid}" if user_id is None else f"group {orig_gid}"
            mapped = rows.Skip(f"{missing} was not imported")
        else:
            mapped = rows.Mapped(
                {
                    "user_id": user_id,
                    "gid": gid,
                    "role": self.options.role,
                    "create_time": self.now,
                    "update_time": self.now,
                }
            )
        existing = (
            None
            if gid is None or user_id is None
            else await self.conn.scalar(
                select(admin_grant.c.id).where(
                    admin_grant.c.user_id == user_id, admin_grant.c.gid == gid
                )
            )
        )
        # A role given here already (perhaps a higher one) is kept as it is.
        await self.put(
            admin_grant,
            orig,
            mapped,
            rows.row_hash(row, self.options.role),
            update_cols=(),
            adopt_id=existing,
        )


def _targets(original: Original) -> dict[int, set[int]]:
    """Each rule's agent ids: the join table and the CSV column, together."""
    out: dict[int, set[int]] = {}
    for row in original["crontab_agent"]:
        out.setdefault(int(row["task_id"]), set()).add(int(row["aid"]))
    for row in original["crontab"]:
        ids, _bad = rows.csv_agent_ids(row.get("agents"))
        out.setdefault(int(row["id"]), set()).update(ids)
    return out


def _users(original: Original) -> list[dict[str, Any]]:
    """ucenter_member rows with their member row's nickname; member alone if that is all."""
    members = {int(m["uid"]): m for m in original["member"]}
    if original["ucenter_member"]:
        return [
            dict(u) | {"nickname": members.get(int(u["id"]), {}).get("nickname", "")}
            for u in original["ucenter_member"]
        ]
    return [{"id": m["uid"], "username": "", **m} for m in original["member"]]
