"""Attack-test fixtures: the real admin app on SQLite and MariaDB with two groups to attack."""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator

import httpx
import pytest
from fastapi import FastAPI

from admin.app import create_app
from tests.admin.conftest import admin_config
from tests.admin.seed import World
from tests.security.helpers import api_client, build_attack_world


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """Settings come from the test alone, never from the environment it runs in."""
    for name in list(os.environ):
        if name.startswith("UNITEDCRON_"):
            monkeypatch.delenv(name)


@pytest.fixture
async def app(db_url: str) -> AsyncIterator[FastAPI]:
    application = create_app(admin_config(db_url))
    try:
        yield application
    finally:
        async with asyncio.timeout(10):
            await application.state.engine.dispose()


@pytest.fixture
async def world(app: FastAPI) -> World:
    async with asyncio.timeout(30):
        return await build_attack_world(app.state.engine)


@pytest.fixture
async def api(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    async with api_client(app) as client:
        yield client
