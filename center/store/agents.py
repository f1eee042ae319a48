"""Agents: registration, what the center knows of them, heartbeats and reachability."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from sqlalchemy import bindparam, case, insert, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine

from center.errors import AgentKeyMismatch
from center.routing import AGENT_DELETED, AGENT_PENDING, AgentInfo
from center.store._util import _json, new_id
from center.tables import (
    agents,
)
from protocol import auth
from protocol.messages import Register, Resources


@dataclass(frozen=True, slots=True)
class Heartbeat:
    aid: int
    at_us: int
    resources: Resources


def _agent_info(row: Any) -> AgentInfo:
    users = _json(row["users"], {})  # [] from agents that registered before allow_root existed
    return AgentInfo(
        id=row["id"],
        name=row["name"],
        ip=row["ip"],
        port=row["port"],
        status=row["status"],
        gid=row["gid"],
        labels=_json(row["agent_labels"], {}) | _json(row["labels"], {}),
        cpu_pct=row["cpu_pct"],
        mem_pct=row["mem_pct"],
        load1=row["load1"],
        allowed_users=tuple(str(u) for u in users.get("allowed", ())),
        allow_root=bool(users.get("allow_root", False)),
        key_hash=row["key_hash"],
        drain=bool(row["drain"]),
        refusing=row["refusing"],
    )


# Built once: read every second by every center.
_LIVE_AGENTS = select(agents).where(agents.c.status != AGENT_DELETED)


async def load_agents(engine: AsyncEngine) -> dict[int, AgentInfo]:
    async with engine.connect() as conn:
        rows = (await conn.execute(_LIVE_AGENTS)).mappings()
        return {r["id"]: _agent_info(r) for r in rows}


async def register_agent(
    engine: AsyncEngine, reg: Register, ip: str, now_us: int
) -> tuple[int, int]:
    """Insert an unknown agent as pending, refresh a known one; returns (id, status)."""
    try:
        return await _register_once(engine, reg, ip, now_us)
    except IntegrityError:
        # Two centers registered the same new agent at once: the other insert won; update it.
        return await _register_once(engine, reg, ip, now_us)


async def _register_once(
    engine: AsyncEngine, reg: Register, ip: str, now_us: int
) -> tuple[int, int]:
    key_hash = auth.key_hash(reg.agent_key) if reg.agent_key else ""
    values = _registered_values(reg, ip, now_us)
    async with engine.begin() as conn:
        row = (await conn.execute(select(agents.c.id).where(agents.c.name == reg.name))).first()
        if row is None:
            result = await conn.execute(
                insert(agents).values(
                    name=reg.name,
                    status=AGENT_PENDING,
                    create_time=now_us,
                    key_hash=key_hash,
                    **values,
                )
            )
            return new_id(result), AGENT_PENDING
        # One statement, not read-then-write: an operator may approve or disable the agent
        # between our read and this write, and that decision must survive. The key is taken
        # on first use, and after that must match: the name is bound to the host that has it.
        undeleted = case((agents.c.status == AGENT_DELETED, AGENT_PENDING), else_=agents.c.status)
        result = await conn.execute(
            update(agents)
            .where(agents.c.id == row.id, agents.c.key_hash.in_(("", key_hash)))
            .values(status=undeleted, key_hash=key_hash, **values)
        )
        if result.rowcount == 0:
            raise AgentKeyMismatch(int(row.id), reg.name)
        status = (await conn.execute(select(agents.c.status).where(agents.c.id == row.id))).scalar()
        return int(row.id), int(status or 0)


def _registered_values(reg: Register, ip: str, now_us: int) -> dict[str, Any]:
    return {
        "ip": ip,
        "port": reg.port,
        "version": reg.version[:32],
        "agent_labels": json.dumps(reg.labels, sort_keys=True),
        "users": json.dumps({"allowed": reg.users, "allow_root": reg.allow_root}),
        "cpu_pct": reg.resources.cpu_pct,
        "mem_pct": reg.resources.mem_pct,
        "load1": reg.resources.load1,
        "procs": reg.resources.procs,
        "outbox": reg.resources.outbox,
        "heart_beat_time": now_us,
        "update_time": now_us,
    } | ({"csr_pem": reg.csr} if reg.csr else {})


async def set_agent_status(
    engine: AsyncEngine, aid: int, expect: int, status: int, now_us: int
) -> None:
    """Move an agent between enabled and unreachable without overriding an operator's change."""
    async with engine.begin() as conn:
        await conn.execute(
            update(agents)
            .where(agents.c.id == aid, agents.c.status == expect)
            .values(status=status, update_time=now_us)
        )


# Built once: written every second.
_HEARTBEAT = (
    update(agents)
    .where(agents.c.id == bindparam("b_aid"))
    .values(
        heart_beat_time=bindparam("b_at"),
        cpu_pct=bindparam("b_cpu"),
        mem_pct=bindparam("b_mem"),
        load1=bindparam("b_load"),
        procs=bindparam("b_procs"),
        outbox=bindparam("b_outbox"),
        refusing=bindparam("b_refusing"),
    )
)


async def record_heartbeats(engine: AsyncEngine, beats: list[Heartbeat]) -> None:
    if not beats:
        return
    params = [
        {
            "b_aid": b.aid,
            "b_at": b.at_us,
            "b_cpu": b.resources.cpu_pct,
            "b_mem": b.resources.mem_pct,
            "b_load": b.resources.load1,
            "b_procs": b.resources.procs,
            "b_outbox": b.resources.outbox,
            "b_refusing": b.resources.refusing[:200],
        }
        for b in beats
    ]
    async with engine.begin() as conn:
        await conn.execute(_HEARTBEAT, params)
