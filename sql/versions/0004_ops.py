"""Operations: alert channels, alert state and outbox, scan cursors, the import map.

Revision ID: 0004
Revises: 0003

Frozen history, like 0001: the types are spelled out here, not imported from center.tables.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import mysql

revision: str = "0004"
down_revision: str | Sequence[str] | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

MYSQL_OPTIONS: dict[str, Any] = {
    "mysql_engine": "InnoDB",
    "mysql_charset": "utf8mb4",
    "mysql_collate": "utf8mb4_unicode_ci",
}
BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
LongText = sa.Text().with_variant(mysql.MEDIUMTEXT(), "mysql")
TABLES = ("alert_channel", "alert_state", "alert_notification", "ops_cursor", "import_map")


def _alert_channel() -> None:
    op.create_table(
        "alert_channel",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("gid", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("target", sa.String(length=1000), nullable=False),
        sa.Column("secret", sa.String(length=128), server_default="", nullable=False),
        sa.Column("events", sa.String(length=255), nullable=False),
        sa.Column("throttle_s", sa.Integer(), server_default="3600", nullable=False),
        sa.Column("grace_s", sa.Integer(), server_default="60", nullable=False),
        sa.Column("status", sa.SmallInteger(), server_default="1", nullable=False),
        sa.Column("create_time", sa.BigInteger(), server_default="0", nullable=False),
        sa.Column("update_time", sa.BigInteger(), server_default="0", nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_alert_channel")),
        sa.UniqueConstraint("gid", "name", name=op.f("uq_alert_channel_gid_name")),
        **MYSQL_OPTIONS,
    )
    op.create_index(op.f("ix_alert_channel_gid"), "alert_channel", ["gid"])


def _alert_state() -> None:
    op.create_table(
        "alert_state",
        sa.Column("channel_id", sa.Integer(), nullable=False),
        sa.Column("event", sa.String(length=32), nullable=False),
        sa.Column("subject", sa.String(length=64), nullable=False),
        sa.Column("is_open", sa.SmallInteger(), server_default="0", nullable=False),
        sa.Column("alerted", sa.SmallInteger(), server_default="0", nullable=False),
        sa.Column("last_key", sa.String(length=64), server_default="", nullable=False),
        sa.Column("last_sent_us", sa.BigInteger(), server_default="0", nullable=False),
        sa.Column("suppressed", sa.Integer(), server_default="0", nullable=False),
        sa.Column("opened_us", sa.BigInteger(), server_default="0", nullable=False),
        sa.Column("updated_us", sa.BigInteger(), server_default="0", nullable=False),
        sa.PrimaryKeyConstraint("channel_id", "event", "subject", name=op.f("pk_alert_state")),
        **MYSQL_OPTIONS,
    )


def _alert_notification() -> None:
    op.create_table(
        "alert_notification",
        sa.Column("id", BigId, autoincrement=True, nullable=False),
        sa.Column("channel_id", sa.Integer(), nullable=False),
        sa.Column("event", sa.String(length=32), nullable=False),
        sa.Column("subject", sa.String(length=64), server_default="", nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("payload", LongText, nullable=False),
        sa.Column("status", sa.String(length=16), server_default="pending", nullable=False),
        sa.Column("attempts", sa.Integer(), server_default="0", nullable=False),
        sa.Column("next_try_us", sa.BigInteger(), server_default="0", nullable=False),
        sa.Column("created_us", sa.BigInteger(), nullable=False),
        sa.Column("sent_us", sa.BigInteger(), server_default="0", nullable=False),
        sa.Column("error", sa.String(length=500), server_default="", nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_alert_notification")),
        **MYSQL_OPTIONS,
    )
    op.create_index(op.f("ix_alert_notification_channel_id"), "alert_notification", ["channel_id"])
    op.create_index(
        "ix_alert_notification_status_next_try_us",
        "alert_notification",
        ["status", "next_try_us"],
    )


def _cursor_and_import_map() -> None:
    op.create_table(
        "ops_cursor",
        sa.Column("name", sa.String(length=32), nullable=False),
        sa.Column("value", sa.BigInteger(), server_default="0", nullable=False),
        sa.Column("updated_us", sa.BigInteger(), server_default="0", nullable=False),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_ops_cursor")),
        **MYSQL_OPTIONS,
    )
    op.create_table(
        "import_map",
        sa.Column("source", sa.String(length=64), nullable=False),
        sa.Column("orig_table", sa.String(length=32), nullable=False),
        sa.Column("orig_id", sa.String(length=64), nullable=False),
        sa.Column("new_id", sa.Integer(), nullable=False),
        sa.Column("orig_hash", sa.String(length=64), nullable=False),
        sa.Column("imported_us", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("source", "orig_table", "orig_id", name=op.f("pk_import_map")),
        **MYSQL_OPTIONS,
    )


def upgrade() -> None:
    _alert_channel()
    _alert_state()
    _alert_notification()
    _cursor_and_import_map()
    # The alerts' scan of finished runs reads a short, recent range of updated_us.
    op.create_index("ix_task_process_updated_us", "task_process", ["updated_us"])


def downgrade() -> None:
    op.drop_index("ix_task_process_updated_us", table_name="task_process")
    for table in reversed(TABLES):
        op.drop_table(table)
