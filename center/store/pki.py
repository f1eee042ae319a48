"""The built-in PKI's rows: the cluster CAs, each agent's certificate, and revoked serials."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import insert, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine

from center.tables import agents, cert_revoked, cluster_ca
from protocol.vocabulary import CaState

FIRST_CA_ID = 1  # the first CA's id is fixed, so that two centers creating it at once collide


@dataclass(frozen=True, slots=True)
class CaRow:
    ca_id: int
    state: str
    cert_pem: str
    key_sealed: str
    key_id: str


@dataclass(frozen=True, slots=True)
class NewCa:
    cert_pem: str
    key_sealed: str
    key_id: str
    not_after_us: int


async def load_cas(engine: AsyncEngine) -> list[CaRow]:
    """The CAs still trusted (active and retiring), oldest first."""
    query = (
        select(cluster_ca).where(cluster_ca.c.state != CaState.RETIRED).order_by(cluster_ca.c.id)
    )
    async with engine.connect() as conn:
        rows = (await conn.execute(query)).mappings().all()
    return [CaRow(r["id"], r["state"], r["cert_pem"], r["key_sealed"], r["key_id"]) for r in rows]


async def create_first_ca(engine: AsyncEngine, ca: NewCa, now_us: int) -> bool:
    """Store the cluster's first CA; False when another center (or an upgrade) was first."""
    try:
        async with engine.begin() as conn:
            await conn.execute(insert(cluster_ca).values(id=FIRST_CA_ID, **_ca_values(ca, now_us)))
    except IntegrityError:
        return False
    return True


def _ca_values(ca: NewCa, now_us: int) -> dict[str, object]:
    return {
        "state": CaState.ACTIVE,
        "cert_pem": ca.cert_pem,
        "key_sealed": ca.key_sealed,
        "key_id": ca.key_id,
        "not_after": ca.not_after_us,
        "create_time": now_us,
        "update_time": now_us,
    }


async def rotate_ca(engine: AsyncEngine, ca: NewCa, now_us: int) -> None:
    """The new CA signs agents from now on; the active one becomes retiring (still trusted)."""
    async with engine.begin() as conn:
        await conn.execute(
            update(cluster_ca)
            .where(cluster_ca.c.state == CaState.ACTIVE)
            .values(state=CaState.RETIRING, update_time=now_us)
        )
        await conn.execute(insert(cluster_ca).values(**_ca_values(ca, now_us)))


async def retire_cas(engine: AsyncEngine, now_us: int) -> int:
    """Stop trusting every retiring CA; returns how many."""
    async with engine.begin() as conn:
        result = await conn.execute(
            update(cluster_ca)
            .where(cluster_ca.c.state == CaState.RETIRING)
            .values(state=CaState.RETIRED, update_time=now_us)
        )
    return int(result.rowcount or 0)


async def reseal_ca(engine: AsyncEngine, ca_id: int, key_sealed: str, now_us: int) -> None:
    """Seal a CA key again under the current secret (after a secret rotation)."""
    async with engine.begin() as conn:
        await conn.execute(
            update(cluster_ca)
            .where(cluster_ca.c.id == ca_id)
            .values(key_sealed=key_sealed, update_time=now_us)
        )


async def agent_cert(engine: AsyncEngine, aid: int) -> str:
    """The certificate on file for an agent ("" when none)."""
    async with engine.connect() as conn:
        value = await conn.scalar(select(agents.c.cert_pem).where(agents.c.id == aid))
    return str(value or "")


@dataclass(frozen=True, slots=True)
class IssuedCert:
    cert_pem: str
    serial: str
    not_after_us: int
    fingerprint: str


async def save_agent_cert(engine: AsyncEngine, aid: int, cert: IssuedCert, now_us: int) -> None:
    async with engine.begin() as conn:
        await conn.execute(
            update(agents)
            .where(agents.c.id == aid)
            .values(
                cert_pem=cert.cert_pem,
                cert_serial=cert.serial,
                cert_not_after=cert.not_after_us,
                cert_fingerprint=cert.fingerprint,
                update_time=now_us,
            )
        )


async def revoked_serials(engine: AsyncEngine, now_us: int) -> frozenset[str]:
    """Serials no center accepts (those past their end need no listing: TLS refuses them)."""
    query = select(cert_revoked.c.serial).where(cert_revoked.c.not_after > now_us)
    async with engine.connect() as conn:
        return frozenset(str(s) for s in (await conn.scalars(query)).all())


async def agent_certs(engine: AsyncEngine) -> list[tuple[int, str, str]]:
    """(id, name, certificate) of every approved agent that holds one: for the CA retirement
    check."""
    query = select(agents.c.id, agents.c.name, agents.c.cert_pem).where(
        agents.c.status > 0, agents.c.cert_pem != ""
    )
    async with engine.connect() as conn:
        return [(int(r[0]), str(r[1]), str(r[2])) for r in (await conn.execute(query)).all()]
