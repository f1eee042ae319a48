"""The leader's lease renewals must not fail because a standby is trying to take the lease."""

from __future__ import annotations

import asyncio

import pytest
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncEngine

from center import store
from center.store.db import create_engine, upgrade_database
from tests.chaos.known_bugs import LEASE_DEADLOCK
from tests.chaos.procs import now_us

pytestmark = [pytest.mark.mysql, pytest.mark.timeout(120)]
TTL_US = 3_000_000
ROUNDS = 200


async def _collide(engine: AsyncEngine) -> tuple[int, int]:
    """A leader renewing and a standby trying to acquire, back to back; failures of each."""
    lease = await store.acquire_lease(engine, "leader", now_us(), TTL_US)
    assert lease is not None
    failed = {"renew": 0, "acquire": 0}

    async def renew() -> None:
        for _ in range(ROUNDS):
            try:
                assert await store.renew_lease(engine, lease, now_us(), TTL_US, now_us())
            except DBAPIError:
                failed["renew"] += 1

    async def acquire() -> None:
        for _ in range(ROUNDS):
            try:
                assert await store.acquire_lease(engine, "standby", now_us(), TTL_US) is None
            except DBAPIError:
                failed["acquire"] += 1

    async with asyncio.timeout(90):
        await asyncio.gather(renew(), acquire())
    return failed["renew"], failed["acquire"]


async def test_a_standby_never_makes_the_leaders_renewal_fail(mysql_url: str):
    """A standby's acquire attempts, however often, leave every renewal of a live lease intact."""
    await upgrade_database(mysql_url)
    engine = create_engine(mysql_url)
    try:
        renew_failures, acquire_failures = await _collide(engine)
    finally:
        await engine.dispose()
    assert not renew_failures and not acquire_failures, (
        f"regression of {LEASE_DEADLOCK} ({renew_failures} of {ROUNDS} renewals failed)"
    )
