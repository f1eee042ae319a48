"""Migration 0017: a channel subscribed to every event gets calendar_ending; a subset does not."""

from __future__ import annotations

import asyncio

from alembic import command
from sqlalchemy import text

from center.store.db import (
    _migration_connection,
    alembic_config,
    create_engine,
    normalize_url,
    upgrade_database,
)

TIMEOUT_S = 60.0
ALL_FIVE = "run_failed,run_timeout,crash_looping,agent_offline,did_not_start"
CHANNELS = {  # id: events as stored before 0017
    1: ALL_FIVE,
    2: "did_not_start, agent_offline,crash_looping,run_timeout,run_failed",  # any order
    3: "run_failed,agent_offline",
    4: "run_failed,run_timeout,crash_looping,agent_offline",
}


async def _migrate(url: str, revision: str, down: bool = False) -> None:
    def run(sync_conn) -> None:
        cfg = alembic_config()
        cfg.attributes["connection"] = sync_conn
        (command.downgrade if down else command.upgrade)(cfg, revision)

    async with _migration_connection(normalize_url(url), "test migrate") as conn:
        await conn.run_sync(run)
        await conn.commit()


async def _events(url: str) -> dict[int, str]:
    engine = create_engine(url)
    try:
        async with engine.connect() as conn:
            rows = await conn.execute(text("SELECT id, events FROM alert_channel ORDER BY id"))
            return {int(i): str(e) for i, e in rows.all()}
    finally:
        await engine.dispose()


async def test_every_event_channels_get_calendar_ending(empty_db_url: str) -> None:
    """Channels 1 and 2 held all five former events: they get calendar_ending (and lose it
    on the downgrade, as they were); 3 and 4 chose a subset: untouched both ways."""
    async with asyncio.timeout(TIMEOUT_S):
        await _migrate(empty_db_url, "0016")
        engine = create_engine(empty_db_url)
        try:
            async with engine.begin() as conn:
                for ident, events in CHANNELS.items():
                    await conn.execute(
                        text(
                            "INSERT INTO alert_channel (id, gid, name, kind, target, events)"
                            " VALUES (:id, 1, :name, 'webhook', 'http://x', :events)"
                        ),
                        {"id": ident, "name": f"c{ident}", "events": events},
                    )
        finally:
            await engine.dispose()
        await upgrade_database(empty_db_url)
        upgraded = await _events(empty_db_url)
        await _migrate(empty_db_url, "0016", down=True)
        downgraded = await _events(empty_db_url)
    assert upgraded == {
        1: f"{ALL_FIVE},calendar_ending",
        2: "did_not_start,agent_offline,crash_looping,run_timeout,run_failed,calendar_ending",
        3: CHANNELS[3],
        4: CHANNELS[4],
    }
    assert downgraded == {
        1: ALL_FIVE,
        2: "did_not_start,agent_offline,crash_looping,run_timeout,run_failed",
        3: CHANNELS[3],
        4: CHANNELS[4],
    }
