"""In headless Chromium: a group admin makes an alert channel for calendar_ending alone."""

from __future__ import annotations

from fastapi import FastAPI
from playwright.async_api import BrowserContext, expect
from sqlalchemy import select

from center.alerts.model import CALENDAR_ENDING, EVENTS
from center.tables import alert_channel
from tests.admin.seed import add_group, add_user
from tests.admin.server import running_admin
from tests.admin.test_browser import _log_in, _shot, browser, pytestmark

__all__ = ["browser", "pytestmark"]  # the Chromium fixture and its skip/timeout marks


async def test_a_channel_listens_to_calendar_ending_alone(app: FastAPI, browser: BrowserContext):
    """The new event is on the form (ticked by default, like every event); a channel saved with
    it alone lists it, and its edit form shows it ticked and the others not."""
    engine = app.state.engine
    alpha = await add_group(engine, "alpha")
    await add_user(engine, "ada", roles={alpha: "admin"})
    async with running_admin(app) as base:
        page = await browser.new_page()
        await _log_in(page, base, "ada")
        await page.goto(f"{base}/alerts")
        form = page.locator("#new-channel")
        box = form.locator(f"input[name=events][value={CALENDAR_ENDING}]")
        await expect(box).to_be_checked()
        await expect(form.locator("fieldset.events")).to_contain_text("calendar_ending")
        await form.locator("input[name=name]").fill("calendar watch")
        await form.locator("select[name=kind]").select_option("email")
        await form.locator("input[name=target]").fill("oncall@example.test")
        for event in EVENTS:
            if event != CALENDAR_ENDING:
                await form.locator(f"input[name=events][value={event}]").uncheck()
        await _shot(page, "alert_channel_form")
        await form.locator("button[type=submit]").click()
        await expect(page.locator("h1")).to_contain_text("calendar watch")
        edit = page.locator("#edit-channel")
        await expect(edit.locator(f"input[name=events][value={CALENDAR_ENDING}]")).to_be_checked()
        await expect(edit.locator("input[name=events][value=did_not_start]")).not_to_be_checked()
    async with engine.connect() as conn:
        events = (await conn.execute(select(alert_channel.c.events))).scalar_one()
    assert events == CALENDAR_ENDING
