"""Migration 0013: every rule there is at the upgrade gets its version 1 (deleted ones too)."""

from __future__ import annotations

import asyncio
import json

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


async def _upgrade_to(url: str, revision: str) -> None:
    def upgrade(sync_conn) -> None:
        cfg = alembic_config()
        cfg.attributes["connection"] = sync_conn
        command.upgrade(cfg, revision)

    async with _migration_connection(normalize_url(url), "test upgrade") as conn:
        await conn.run_sync(upgrade)
        await conn.commit()


async def test_existing_rules_get_version_1(empty_db_url: str) -> None:
    """Rules written before 0013 (one with two targets, one deleted) each get a version 1 by
    "migration" holding every column and the targets; a rule with none has `agents` []."""
    async with asyncio.timeout(TIMEOUT_S):
        await _upgrade_to(empty_db_url, "0009")
        engine = create_engine(empty_db_url)
        try:
            async with engine.begin() as conn:
                for task_id, status in ((1, 1), (2, -1), (3, 0)):
                    await conn.execute(
                        text(
                            "INSERT INTO crontab (id, name, rule, `execute`, status, create_time,"
                            " update_time) VALUES (:id, :name, '* * * * *', 'true', :status, 5, 7)"
                        ),
                        {"id": task_id, "name": f"r{task_id}", "status": status},
                    )
                for aid in (4, 3):
                    await conn.execute(
                        text("INSERT INTO crontab_agent (task_id, aid) VALUES (1, :aid)"),
                        {"aid": aid},
                    )
            await upgrade_database(empty_db_url)
            async with engine.connect() as conn:
                rows = (
                    await conn.execute(
                        text(
                            "SELECT task_id, version, username, at_us, content FROM crontab_version"
                            " ORDER BY task_id"
                        )
                    )
                ).all()
        finally:
            await engine.dispose()
    assert [(r[0], r[1], r[2], r[3]) for r in rows] == [
        (1, 1, "migration", 7),
        (2, 1, "migration", 7),
        (3, 1, "migration", 7),
    ]
    first = json.loads(rows[0][4])
    assert (first["name"], first["agents"], first["execute"]) == ("r1", [3, 4], "true")
    assert {"timezone", "retry_unknown", "max_per_agent", "create_time"} <= set(first)
    assert json.loads(rows[1][4])["status"] == -1
    assert json.loads(rows[2][4])["agents"] == []
