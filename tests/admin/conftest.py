"""Admin test fixtures: the real app on the real database (SQLite and MariaDB), over httpx."""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from admin.app import create_app
from admin.config import AdminConfig
from tests.admin.seed import World, build_world

BASE_URL = "http://admin.test"


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """Settings come from the test alone, never from the environment it runs in."""
    for name in list(os.environ):
        if name.startswith("UNITEDCRON_"):
            monkeypatch.delenv(name)


def admin_config(db_url: str, **overrides: Any) -> AdminConfig:
    return AdminConfig(**({"db_url": db_url, "admin_tail_poll_s": 0.05} | overrides))


@pytest.fixture
async def app(db_url: str) -> AsyncIterator[FastAPI]:
    application = create_app(admin_config(db_url))
    try:
        yield application
    finally:
        async with asyncio.timeout(10):
            await application.state.engine.dispose()


@pytest.fixture
async def api(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    """A client of the app in this process (no socket); `client` as the address it sees."""
    transport = httpx.ASGITransport(app=app, client=("10.0.0.7", 5555))
    async with httpx.AsyncClient(transport=transport, base_url=BASE_URL, timeout=10) as client:
        yield client


@pytest.fixture
async def world(app: FastAPI) -> World:
    async with asyncio.timeout(30):
        return await build_world(app.state.engine)
