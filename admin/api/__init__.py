"""The JSON API under /api/v1: bearer tokens, the same permissions and services as the pages."""

from __future__ import annotations

from fastapi import APIRouter

from admin.api.agents import router as agents_router
from admin.api.alerts import router as alerts_router
from admin.api.auth import router as auth_router
from admin.api.calendars import router as calendars_router
from admin.api.groups import router as groups_router
from admin.api.history import router as history_router
from admin.api.keys import router as keys_router
from admin.api.rules import router as rules_router
from admin.api.runs import router as runs_router
from admin.api.stats import router as stats_router
from admin.api.status import router as status_router
from admin.api.users import router as users_router
from admin.api.workflows import router as workflows_router

router = APIRouter()
for part in (
    auth_router,
    groups_router,
    keys_router,
    agents_router,
    rules_router,
    calendars_router,
    history_router,
    runs_router,
    users_router,
    alerts_router,
    status_router,
    stats_router,
    workflows_router,
):
    router.include_router(part)
