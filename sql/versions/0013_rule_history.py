"""Rule history: `crontab_version`, every saved version of a rule; each existing rule gets its
version 1 here (as it is at the upgrade, author "migration"), so history is complete from then.

Revision ID: 0013
Revises: 0012

Frozen history, like 0001: the types are spelled out here, not imported from center.tables,
and the version's JSON is built here too (every column of the row, and `agents`).
"""

from __future__ import annotations

import json
import time
from collections import defaultdict
from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import mysql

revision: str = "0013"
down_revision: str | Sequence[str] | None = "0012"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

MYSQL: dict[str, Any] = {
    "mysql_engine": "InnoDB",
    "mysql_charset": "utf8mb4",
    "mysql_collate": "utf8mb4_unicode_ci",
}
BATCH = 500


def upgrade() -> None:
    table = op.create_table(
        "crontab_version",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("task_id", sa.Integer(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False, server_default="0"),
        sa.Column("username", sa.String(64), nullable=False, server_default=""),
        sa.Column("via", sa.String(64), nullable=False, server_default=""),
        sa.Column("at_us", sa.BigInteger(), nullable=False),
        sa.Column("summary", sa.String(255), nullable=False, server_default=""),
        sa.Column("content", sa.Text().with_variant(mysql.MEDIUMTEXT(), "mysql"), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_crontab_version"),
        sa.UniqueConstraint("task_id", "version", name="uq_crontab_version_task_id_version"),
        **MYSQL,
    )
    _first_versions(table)


def _first_versions(table: sa.Table) -> None:
    """Version 1 of every rule there is (deleted ones too), as it is now."""
    bind = op.get_bind()
    targets: dict[int, list[int]] = defaultdict(list)
    for task_id, aid in bind.execute(sa.text("SELECT task_id, aid FROM crontab_agent")):
        targets[int(task_id)].append(int(aid))
    now_us = time.time_ns() // 1000
    batch: list[dict[str, Any]] = []
    for row in bind.execute(sa.text("SELECT * FROM crontab ORDER BY id")).mappings():
        content = {str(k): _plain(v) for k, v in row.items()}
        content["agents"] = sorted(set(targets[int(row["id"])]))
        batch.append(
            {
                "task_id": row["id"],
                "version": 1,
                "user_id": 0,
                "username": "migration",
                "via": "history starts here",
                "at_us": row["update_time"] or row["create_time"] or now_us,
                "summary": "as it was when history began",
                "content": json.dumps(content, sort_keys=True, separators=(",", ":")),
            }
        )
        if len(batch) >= BATCH:
            op.bulk_insert(table, batch)
            batch = []
    if batch:
        op.bulk_insert(table, batch)


def _plain(value: Any) -> Any:
    if value is None or isinstance(value, bool | int | float | str):
        return value
    return str(value)


def downgrade() -> None:
    op.drop_table("crontab_version")
