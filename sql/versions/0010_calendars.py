"""Calendars and spread: a group's named calendars; rules and workflows gain calendar,
calendar_mode and calendar_fallback, rules also jitter_s.

Revision ID: 0010
Revises: 0009

Frozen history, like 0001: the types are spelled out here, not imported from center.tables.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from alembic import op

revision: str = "0010"
down_revision: str | Sequence[str] | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

MYSQL: dict[str, Any] = {
    "mysql_engine": "InnoDB",
    "mysql_charset": "utf8mb4",
    "mysql_collate": "utf8mb4_unicode_ci",
}


def _str(name: str, length: int, default: str = "") -> sa.Column[str]:
    return sa.Column(name, sa.String(length), nullable=False, server_default=default)


def _calendar_columns() -> list[sa.Column[str]]:
    return [
        _str("calendar", 64),
        _str("calendar_mode", 8, "only"),
        _str("calendar_fallback", 8, "skip"),
    ]


def upgrade() -> None:
    op.create_table(
        "calendar",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("gid", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(64), nullable=False),
        _str("description", 255),
        _str("base", 16),
        sa.Column("include", sa.Text(), nullable=False, server_default=""),
        sa.Column("exclude", sa.Text(), nullable=False, server_default=""),
        sa.Column("create_time", sa.BigInteger(), nullable=False, server_default="0"),
        sa.Column("update_time", sa.BigInteger(), nullable=False, server_default="0"),
        sa.PrimaryKeyConstraint("id", name="pk_calendar"),
        sa.UniqueConstraint("gid", "name", name="uq_calendar_gid_name"),
        sqlite_autoincrement=True,
        **MYSQL,
    )
    with op.batch_alter_table("crontab") as batch:
        for column in _calendar_columns():
            batch.add_column(column)
        batch.add_column(sa.Column("jitter_s", sa.Integer(), nullable=False, server_default="0"))
    with op.batch_alter_table("workflow") as batch:
        for column in _calendar_columns():
            batch.add_column(column)


def downgrade() -> None:
    with op.batch_alter_table("workflow") as batch:
        for name in ("calendar_fallback", "calendar_mode", "calendar"):
            batch.drop_column(name)
    with op.batch_alter_table("crontab") as batch:
        for name in ("jitter_s", "calendar_fallback", "calendar_mode", "calendar"):
            batch.drop_column(name)
    op.drop_table("calendar")
