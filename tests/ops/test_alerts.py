"""Alerts end to end: a real center and agent, a real webhook receiver and SMTP server."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import insert, select
from sqlalchemy.ext.asyncio import AsyncEngine

from center.alerts import model
from center.tables import alert_channel, alert_notification, alert_state
from tests.integration.cluster import (
    add_group,
    add_rule,
    approve_agent,
    edit_rule,
    now_us,
    poll,
    running_agent,
    running_center,
)
from tests.ops.receivers import LOCAL_TARGETS, smtp_receiver, webhook_receiver

pytestmark = pytest.mark.timeout(120)
SECRET = "hook-secret-of-the-test"
FAST = {"center_alerts_poll_s": 0.2} | LOCAL_TARGETS  # the receivers are on 127.0.0.1
FAST_DAEMONS: dict[str, Any] = {
    "agent_daemon_backoff_s": 0.1,
    "agent_daemon_backoff_max_s": 0.2,
    "agent_daemon_crashloop_after": 2,
    "agent_daemon_stable_s": 1.0,
}


async def add_channel(engine: AsyncEngine, gid: int, target: str, **values: Any) -> int:
    row = {
        "gid": gid,
        "name": "ops hook",
        "kind": model.WEBHOOK,
        "target": target,
        "secret": SECRET,
        "events": ",".join(model.EVENTS),
        "throttle_s": 3600,
        "grace_s": 60,
        "create_time": now_us(),
        "update_time": now_us(),
    } | values
    async with engine.begin() as conn:
        result = await conn.execute(insert(alert_channel).values(**row))
        return int(result.inserted_primary_key[0])  # type: ignore[index]


async def test_failed_runs_alert_once_then_recover_with_the_suppressed_count(
    engine: AsyncEngine, db_url: str, tmp_path: Path
):
    """Failing runs send one signed alert per throttle window, then a recovery counting the rest."""
    gid = await add_group(engine)
    async with webhook_receiver() as hook, running_center(db_url, **FAST) as center:
        await add_channel(engine, gid, hook.url, events=model.RUN_FAILED)
        async with running_agent(tmp_path, center.registration_port):
            aid = await approve_agent(engine, "agent-1", gid)
            task_id = await add_rule(engine, [aid], gid=gid, name="flaky", execute="/bin/false")
            alert = await hook.next()
            assert alert.signed_with(SECRET), alert.headers
            assert alert.headers["x-unitedcron-event"] == "run_failed"
            data = alert.json
            assert (data["event"], data["state"], data["subject"]) == (
                "run_failed",
                "alert",
                f"rule:{task_id}",
            )
            assert data["rule"] == {"id": task_id, "name": "flaky"}
            assert data["run"]["status"] == "failed" and data["run"]["code"] == 1
            assert data["group"]["id"] == gid and "flaky" in data["summary"]
            await asyncio.sleep(2.5)  # more failures, all inside the throttle window
            assert hook.received.empty()
            await edit_rule(engine, task_id, execute="/bin/true")
            recovery = (await hook.next()).json
    assert (recovery["state"], recovery["event"]) == ("recovery", "run_failed")
    assert recovery["suppressed"] >= 1 and recovery["summary"].startswith("RECOVERED")


async def test_a_run_timeout_is_its_own_event(engine: AsyncEngine, db_url: str, tmp_path: Path):
    """A run killed for its timeout sends a run_timeout alert with the run's ids."""
    gid = await add_group(engine)
    async with webhook_receiver() as hook, running_center(db_url, **FAST) as center:
        await add_channel(engine, gid, hook.url, events="run_timeout,run_failed")
        async with running_agent(tmp_path, center.registration_port):
            aid = await approve_agent(engine, "agent-1", gid)
            await add_rule(
                engine,
                [aid],
                gid=gid,
                rule="*/3 * * * * *",
                execute="sleep 10",
                timeout_s=0.5,
                kill_grace_s=0.5,
            )
            data = (await hook.next()).json
    assert data["event"] == "run_timeout" and data["run"]["status"] == "timeout"
    assert data["run"]["runid"] and data["agent"]["name"] == "agent-1"


async def test_crash_looping_daemon_alerts_and_recovers(
    engine: AsyncEngine, db_url: str, tmp_path: Path
):
    """A daemon that keeps exiting alerts crash_looping; once it stays up, a recovery follows."""
    gid = await add_group(engine)
    async with webhook_receiver() as hook, running_center(db_url, **FAST) as center:
        await add_channel(engine, gid, hook.url, events=model.CRASH_LOOPING)
        async with running_agent(tmp_path, center.registration_port, **FAST_DAEMONS):
            aid = await approve_agent(engine, "agent-1", gid)
            task_id = await add_rule(
                engine, [aid], gid=gid, rule="", is_daemon=1, execute="/bin/false"
            )
            data = (await hook.next()).json
            assert (data["event"], data["state"]) == ("crash_looping", "alert")
            assert data["subject"] == f"rule:{task_id}/agent:{aid}"
            await edit_rule(engine, task_id, execute="sleep 60")
            recovery = (await hook.next()).json
    assert (recovery["event"], recovery["state"]) == ("crash_looping", "recovery")


async def test_agent_offline_alerts_and_recovers(engine: AsyncEngine, db_url: str, tmp_path: Path):
    """An approved agent that goes away alerts agent_offline; when it is back, a recovery."""
    gid = await add_group(engine)
    async with webhook_receiver() as hook, running_center(db_url, **FAST) as center:
        await add_channel(engine, gid, hook.url, events=model.AGENT_OFFLINE)
        async with running_agent(tmp_path, center.registration_port):
            aid = await approve_agent(engine, "agent-1", gid)
            await asyncio.sleep(1)
        data = (await hook.next()).json
        assert (data["event"], data["state"], data["subject"]) == (
            "agent_offline",
            "alert",
            f"agent:{aid}",
        )
        assert data["agent"]["name"] == "agent-1"
        async with running_agent(tmp_path, center.registration_port):
            recovery = (await hook.next()).json
    assert (recovery["event"], recovery["state"]) == ("agent_offline", "recovery")


async def test_a_rule_that_does_not_start_is_a_dead_man_alert(
    engine: AsyncEngine, db_url: str, tmp_path: Path
):
    """A scheduled rule whose fire has not started after the grace alerts did_not_start; the
    next fire that starts sends the recovery."""
    gid = await add_group(engine)
    async with webhook_receiver() as hook, running_center(db_url, **FAST) as center:
        await add_channel(engine, gid, hook.url, events=model.DID_NOT_START, grace_s=1)
        async with running_agent(tmp_path, center.registration_port):
            row = await poll(lambda: _agent(engine, "agent-1"), 10)  # pending: runs nothing
            task_id = await add_rule(engine, [row["id"]], gid=gid, name="nightly-ish")
            data = (await hook.next()).json
            assert (data["event"], data["state"]) == ("did_not_start", "alert")
            assert data["rule"] == {"id": task_id, "name": "nightly-ish"}
            assert data["fire_us"] > 0 and "did not start" in data["summary"]
            await approve_agent(engine, "agent-1", gid)
            recovery = (await hook.next()).json
    assert (recovery["event"], recovery["state"]) == ("did_not_start", "recovery")


async def test_email_channel_sends_through_smtp(engine: AsyncEngine, db_url: str, tmp_path: Path):
    """An email channel delivers the alert through the configured SMTP server."""
    gid = await add_group(engine)
    async with smtp_receiver() as smtp:
        settings = FAST | {
            "center_smtp_host": "127.0.0.1",
            "center_smtp_port": smtp.port,
            "center_smtp_from": "cron@example.test",
        }
        async with running_center(db_url, **settings) as center:
            await add_channel(
                engine,
                gid,
                "oncall@example.test, boss@example.test",
                kind=model.EMAIL,
                events=model.RUN_FAILED,
                name="mail",
            )
            async with running_agent(tmp_path, center.registration_port):
                aid = await approve_agent(engine, "agent-1", gid)
                await add_rule(engine, [aid], gid=gid, name="mailer", execute="/bin/false")
                envelope, message = await smtp.next()
    assert sorted(envelope.rcpt_tos) == ["boss@example.test", "oncall@example.test"]
    assert envelope.mail_from == "cron@example.test"
    assert message["Subject"].startswith("[UnitedCron] ALERT run_failed: rule mailer")
    assert "mailer" in message.get_payload()


async def _agent(engine: AsyncEngine, name: str) -> Any:
    from center.tables import agents

    async with engine.connect() as conn:
        return (await conn.execute(select(agents).where(agents.c.name == name))).mappings().first()


async def notifications(engine: AsyncEngine) -> list[Any]:
    async with engine.connect() as conn:
        query = select(alert_notification).order_by(alert_notification.c.id)
        return list((await conn.execute(query)).mappings())


async def states(engine: AsyncEngine) -> list[Any]:
    async with engine.connect() as conn:
        return list((await conn.execute(select(alert_state))).mappings())


async def _failed_run(engine: AsyncEngine, task_id: int, aid: int, at_us: int, n: int) -> None:
    from center.tables import task_process

    async with engine.begin() as conn:
        await conn.execute(
            insert(task_process).values(
                task_id=task_id,
                runid=f"{task_id}-{n}-{aid}-0-0",
                aid=aid,
                status="failed",
                code=2,
                sched_us=at_us - 1000 - n,
                start=at_us - 900,
                end=at_us - 100,
                updated_us=at_us,
            )
        )


async def test_a_new_leader_neither_resends_nor_forgets(engine: AsyncEngine, db_url: str):
    """What was queued and sent is in the database: a second leader's loop sends nothing again."""
    from center.alert_loop import AlertLoop
    from tests.integration.cluster import center_config

    gid = await add_group(engine)
    task_id = await add_rule(engine, [], gid=gid, name="nightly")
    async with webhook_receiver() as hook:
        await add_channel(engine, gid, hook.url, events=model.RUN_FAILED)
        first = AlertLoop(engine, center_config(db_url, **LOCAL_TARGETS))
        t0 = now_us()
        assert await first.evaluate(t0) == 0  # sets the cursor: history is not alerted
        await _failed_run(engine, task_id, 5, t0 + 1000, 1)
        assert await first.evaluate(t0 + 3 * 1_000_000) == 1
        assert await first.deliver_due(t0 + 3 * 1_000_000) == 1
        assert (await hook.next()).json["run"]["code"] == 2
        second = AlertLoop(engine, center_config(db_url, **LOCAL_TARGETS))  # the next leader
        assert await second.evaluate(t0 + 4 * 1_000_000) == 0
        assert await second.deliver_due(t0 + 4 * 1_000_000) == 0
        await _failed_run(engine, task_id, 5, t0 + 4_500_000, 2)
        assert await second.evaluate(t0 + 7 * 1_000_000) == 0  # throttled, and counted
    [state] = await states(engine)
    assert state["is_open"] == 1 and state["suppressed"] == 1
    assert [n["status"] for n in await notifications(engine)] == ["sent"]


async def test_a_failing_receiver_is_retried_with_backoff(engine: AsyncEngine, db_url: str):
    """A webhook answering 500 keeps the notification pending with the error, tried later."""
    from center.alert_loop import AlertLoop
    from tests.integration.cluster import center_config

    gid = await add_group(engine)
    task_id = await add_rule(engine, [], gid=gid)
    async with webhook_receiver() as hook:
        await add_channel(engine, gid, hook.url, events=model.RUN_FAILED)
        loop = AlertLoop(engine, center_config(db_url, **LOCAL_TARGETS))
        t0 = now_us()
        await loop.evaluate(t0)
        await _failed_run(engine, task_id, 5, t0 + 1000, 1)
        await loop.evaluate(t0 + 3 * 1_000_000)
        hook.status = 500
        assert await loop.deliver_due(t0 + 3 * 1_000_000) == 0
        [row] = await notifications(engine)
        assert (row["status"], row["attempts"]) == ("pending", 1)
        assert "HTTP 500" in row["error"] and row["next_try_us"] > now_us()
        hook.status = 200
        assert await loop.deliver_due(t0 + 3 * 1_000_000) == 0  # not due yet
        assert await loop.deliver_due(row["next_try_us"]) == 1
        assert (await hook.next()).json["id"] == row["id"]
    [row] = await notifications(engine)
    assert (row["status"], row["attempts"], row["error"]) == ("sent", 2, "")
