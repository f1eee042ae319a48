"""Schemathesis against the admin's OpenAPI document: no input makes any endpoint answer 5xx."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field

import pytest
import schemathesis
from fastapi import FastAPI
from hypothesis import HealthCheck, Phase, given, seed, settings
from schemathesis import GenerationMode
from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncEngine

from center.tables import admin_user, api_token
from tests.admin.seed import World
from tests.admin.server import running_admin

# Per operation and generation mode, for each of the two users: on SQLite ~40 operations x (6
# valid + 3 invalid) x 2 users, ~700 requests in about 25 s (SQLite is where oversized numbers
# failed: 6 valid examples per operation are what found them); on MariaDB fewer, ~400. The seed
# makes every run send the same requests.
EXAMPLES = {
    "sqlite": {GenerationMode.POSITIVE: 6, GenerationMode.NEGATIVE: 3},
    "mysql": {GenerationMode.POSITIVE: 3, GenerationMode.NEGATIVE: 2},
}
SEED = 20260601
FUZZ_TIMEOUT_S = 150

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]


@dataclass
class Findings:
    examples: dict[GenerationMode, int]
    requests: int = 0
    server_errors: list[str] = field(default_factory=list)


def _fuzz_operation(
    operation, base: str, headers: dict, restore: Callable[[], None], found: Findings
) -> None:
    """Send each generated case of one operation; note every 5xx with a curl line to replay it."""
    for mode, count in found.examples.items():

        @seed(SEED)
        @settings(
            max_examples=count,
            database=None,
            deadline=None,
            phases=[Phase.explicit, Phase.generate],
            suppress_health_check=list(HealthCheck),
        )
        @given(case=operation.as_strategy(generation_mode=mode))
        def send(case) -> None:
            found.requests += 1
            response = case.call(base_url=base, headers=headers, timeout=20)
            if response.status_code >= 500:
                curl = case.as_curl_command(headers=headers)
                found.server_errors.append(f"{response.status_code} {operation.label}: {curl}")
            if case.method != "GET":
                restore()

        send()


def _fuzz_api(
    base: str, headers: dict, restore: Callable[[], None], examples: dict[GenerationMode, int]
) -> Findings:
    """Every operation of the OpenAPI document the server publishes (runs in a worker thread)."""
    schema = schemathesis.openapi.from_url(f"{base}/api/v1/openapi.json")
    found = Findings(examples)
    for result in schema.get_all_operations():
        _fuzz_operation(result.ok(), base, headers, restore, found)
    return found


async def _restore(engine: AsyncEngine, world: World) -> None:
    """Undo what a fuzzed request may do to the fuzzing users themselves (revoke their token,
    disable them), so that every later request is still made as them."""
    ids = [world.user_ids["root"], world.user_ids["viewer"]]
    async with engine.begin() as conn:
        await conn.execute(update(admin_user).where(admin_user.c.id.in_(ids)).values(status=1))
        await conn.execute(update(admin_user).where(admin_user.c.id == ids[0]).values(superadmin=1))
        await conn.execute(
            update(api_token).where(api_token.c.user_id.in_(ids)).values(revoked_us=0)
        )


def _restorer(engine: AsyncEngine, world: World) -> Callable[[], None]:
    loop = asyncio.get_running_loop()

    def restore() -> None:
        asyncio.run_coroutine_threadsafe(_restore(engine, world), loop).result(timeout=10)

    return restore


async def test_no_generated_request_is_a_server_error(app: FastAPI, world: World):
    """Generated valid and invalid requests, as a viewer and as a superadmin, never get a 5xx."""
    restore = _restorer(app.state.engine, world)
    examples = EXAMPLES[app.state.engine.dialect.name]
    async with running_admin(app) as base, asyncio.timeout(FUZZ_TIMEOUT_S):
        # The viewer first: the superadmin's requests may delete other users.
        viewer = await asyncio.to_thread(_fuzz_api, base, world.auth("viewer"), restore, examples)
        root = await asyncio.to_thread(_fuzz_api, base, world.auth("root"), restore, examples)
    assert viewer.requests >= 100 and root.requests >= 100
    errors = viewer.server_errors + root.server_errors
    assert not errors, "\n".join(errors[:20])
