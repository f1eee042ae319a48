"""One group's broken channels cannot silence another group's alerts, and no traceback in the
log carries a password."""

from __future__ import annotations

import io
import json

import pytest
import structlog
from sqlalchemy import insert
from sqlalchemy.ext.asyncio import AsyncEngine

from admin.errors import Invalid
from admin.services.alerts import checked
from center.alert_loop import AlertLoop
from center.alerts import model
from center.tables import alert_notification
from protocol.logs import configure_logging
from tests.integration.cluster import add_group, center_config, now_us
from tests.ops.receivers import LOCAL_TARGETS, webhook_receiver
from tests.ops.test_alerts import SECRET, add_channel, notifications

pytestmark = pytest.mark.timeout(120)


async def _queue(engine: AsyncEngine, channel_id: int, count: int, at_us: int) -> None:
    data = {"event": model.RUN_FAILED, "state": "alert", "subject": "7", "text": "x"}
    rows = [model.notification_row(channel_id, data, at_us) for _ in range(count)]
    async with engine.begin() as conn:
        await conn.execute(insert(alert_notification), rows)


async def test_broken_channels_of_one_group_do_not_starve_another(
    engine: AsyncEngine, db_url: str
) -> None:
    """Group A has an email channel whose name holds a newline and a webhook to `http://a:b:c/`
    (stored before the checks existed), with 50 queued sends each; group B's one alert, queued
    last, is still delivered in the first batch, and every failure is recorded on its own."""
    gid_a, gid_b = await add_group(engine, "a"), await add_group(engine, "b")
    t0 = now_us()
    async with webhook_receiver() as hook:
        mail = await add_channel(engine, gid_a, "ops@example.com", kind="email", name="x\ny")
        bad_hook = await add_channel(engine, gid_a, "http://a:b:c/", name="bad")
        good = await add_channel(engine, gid_b, hook.url, name="b hook")
        await _queue(engine, mail, 50, t0)
        await _queue(engine, bad_hook, 50, t0)
        await _queue(engine, good, 1, t0)
        loop = AlertLoop(engine, center_config(db_url, **LOCAL_TARGETS))
        assert await loop.deliver_due(t0 + 1) == 1
        delivery = await hook.next()
    assert delivery.signed_with(SECRET)
    rows = await notifications(engine)
    tried = [r for r in rows if r["channel_id"] != good and r["attempts"]]
    assert tried and all(r["status"] == "pending" and r["error"] for r in tried)
    assert [r["status"] for r in rows if r["channel_id"] == good] == ["sent"]


@pytest.mark.parametrize(
    ("values", "field"),
    [
        ({"name": "ops\nhook"}, "name"),
        ({"target": "http://a:b:c/"}, "target"),
        ({"target": "http://user:pw@example.com/hook"}, "target"),
        ({"target": "ftp://example.com/"}, "target"),
        ({"target": "http:///nohost"}, "target"),
        ({"kind": "email", "target": "ops@example.com\r\nBcc: x@example.com"}, "target"),
    ],
)
def test_channel_fields_are_checked_at_save(values: dict[str, object], field: str) -> None:
    """Control characters and URLs the sender could not use are refused, naming the field."""
    base = {
        "name": "ops",
        "kind": "webhook",
        "target": "https://hooks.example.com/x",
        "events": [model.RUN_FAILED],
        "throttle_s": 60,
        "grace_s": 60,
        "status": 1,
    }
    with pytest.raises(Invalid) as info:
        checked(base | values)
    assert info.value.field == field


def test_tracebacks_carry_no_locals() -> None:
    """A logged exception shows where it happened, never the values of the frame's locals."""
    out = io.StringIO()
    configure_logging("info", "json", out)
    try:
        password = "pa55-of-the-smtp-server"
        raise RuntimeError(f"failed with {len(password)} characters")
    except RuntimeError:
        structlog.get_logger("t").exception("alerts.step_failed")
    finally:
        structlog.reset_defaults()  # the other tests' logging, as it was
    line = json.loads(out.getvalue().splitlines()[-1])
    assert line["exception"][0]["exc_type"] == "RuntimeError"
    assert "pa55-of-the-smtp-server" not in out.getvalue()
