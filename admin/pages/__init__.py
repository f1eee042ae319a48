"""The pages for people: server-rendered HTML, a session cookie, a CSRF token on every form."""

from __future__ import annotations

from fastapi import APIRouter

from admin.pages.agents import router as agents_router
from admin.pages.alerts import router as alerts_router
from admin.pages.auth import router as auth_router
from admin.pages.calendars import router as calendars_router
from admin.pages.dashboard import router as dashboard_router
from admin.pages.groups import router as groups_router
from admin.pages.history import router as history_router
from admin.pages.login_steps import router as login_steps_router
from admin.pages.rules import router as rules_router
from admin.pages.runs import router as runs_router
from admin.pages.timeline import router as timeline_router
from admin.pages.users import router as users_router
from admin.pages.workflows import router as workflows_router

router = APIRouter(include_in_schema=False)
for part in (
    auth_router,
    login_steps_router,
    dashboard_router,
    groups_router,
    calendars_router,
    agents_router,
    rules_router,
    history_router,
    runs_router,
    timeline_router,
    users_router,
    alerts_router,
    workflows_router,
):
    router.include_router(part)
