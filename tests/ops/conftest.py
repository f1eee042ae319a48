"""tests/ops uses the admin's fixtures (the real app over httpx, a seeded world) as well."""

from __future__ import annotations

from tests.admin.conftest import _clean_env, api, app, world

__all__ = ["_clean_env", "api", "app", "world"]
