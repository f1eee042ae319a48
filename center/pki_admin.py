"""The operator's PKI commands: show the CAs and agent certificates, rotate the CA, retire the
old one once every agent holds a certificate of the new."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TypeVar

from sqlalchemy.ext.asyncio import AsyncEngine

from center import pki
from center.cluster_tls import create_ca
from center.store import pki as pki_store
from center.store.db import create_engine
from protocol import certs
from protocol.clock import now_us

T = TypeVar("T")


async def _with_engine(db_url: str, work: Callable[[AsyncEngine], Awaitable[T]]) -> T:
    engine = create_engine(db_url)
    try:
        return await work(engine)
    finally:
        await engine.dispose()


def _when(at_us: int) -> str:
    return certs.us_to_datetime(at_us).strftime("%Y-%m-%d %H:%M UTC")


async def status(db_url: str) -> list[str]:
    """One line per trusted CA and per approved agent's certificate."""

    async def work(engine: AsyncEngine) -> list[str]:
        lines = []
        cas = await pki_store.load_cas(engine)
        for row in cas:
            info = certs.inspect_cert(row.cert_pem)
            lines.append(f"ca {row.key_id[:16]} {row.state} until {_when(info.not_after_us)}")
        signing = {row.key_id: row.state for row in cas}
        for aid, name, cert_pem in await pki_store.agent_certs(engine):
            info = certs.inspect_cert(cert_pem)
            state = signing.get(info.issuer_key_id, "untrusted")
            lines.append(
                f"agent {aid} {name}: serial {info.serial} until {_when(info.not_after_us)} "
                f"(ca {info.issuer_key_id[:16]}, {state})"
            )
        return lines or ["no CA yet: the first center (or `db upgrade` with a secret) makes it"]

    return await _with_engine(db_url, work)


async def ensure_ca(db_url: str, secrets: tuple[bytes, ...], cluster: str) -> bool:
    return await _with_engine(db_url, lambda engine: create_ca(engine, secrets, cluster))


async def rotate(db_url: str, secrets: tuple[bytes, ...], cluster: str) -> str:
    """A new CA signs agents from now on; the old one stays trusted (and signs the centers'
    own certificates) until `retire`."""

    async def work(engine: AsyncEngine) -> str:
        at_us = now_us()
        cert_pem, key_pem = pki.new_ca(cluster, at_us)
        info = certs.inspect_cert(cert_pem)
        key_id = certs.key_id(certs.load_cert(cert_pem))
        row = pki_store.NewCa(cert_pem, pki.seal(key_pem, secrets[0]), key_id, info.not_after_us)
        await pki_store.rotate_ca(engine, row, at_us)
        return (
            f"new CA {key_id[:16]} signs agents from now on; agents take its certificate at "
            "their next registration. When `pki status` shows none on the old CA, run "
            "`pki retire`."
        )

    return await _with_engine(db_url, work)


async def retire(db_url: str, *, force: bool) -> tuple[bool, str]:
    """Stop trusting the retiring CAs, unless an approved agent still holds one of their
    certificates (it could no longer connect) and `force` is not given."""

    async def work(engine: AsyncEngine) -> tuple[bool, str]:
        cas = await pki_store.load_cas(engine)
        active = {row.key_id for row in cas if row.state == "active"}
        stale = [
            name
            for _, name, cert_pem in await pki_store.agent_certs(engine)
            if certs.inspect_cert(cert_pem).issuer_key_id not in active
        ]
        if stale and not force:
            return False, f"not retired: agents still on the old CA: {', '.join(stale[:20])}"
        count = await pki_store.retire_cas(engine, now_us())
        return True, f"retired {count} CA(s); centers renew their own certificates within seconds"

    return await _with_engine(db_url, work)
