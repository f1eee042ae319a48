"""The initial schema: every table of center/tables.py as of the first release.

Revision ID: 0001
Revises:
Create Date: 2026-11-21

A migration is frozen history: it spells out its types here rather than importing
center.tables, which will keep changing.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import mysql

revision: str = "0001"
down_revision: str | Sequence[str] | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

MYSQL_OPTIONS: dict[str, Any] = {
    "mysql_engine": "InnoDB",
    "mysql_charset": "utf8mb4",
    "mysql_collate": "utf8mb4_unicode_ci",
}
# SQLite only autoincrements an INTEGER PRIMARY KEY.
BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
LongText = sa.Text().with_variant(mysql.MEDIUMTEXT(), "mysql")
Blob = sa.LargeBinary().with_variant(mysql.MEDIUMBLOB(), "mysql")

TABLES = (
    "cron_group",
    "agents",
    "crontab",
    "crontab_agent",
    "task_process",
    "task_output",
    "leader_lease",
    "center_command",
    "daemon_state",
)


def upgrade() -> None:
    op.create_table(
        "agents",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("gid", sa.Integer(), nullable=True),
        sa.Column("name", sa.String(length=128), nullable=False),
        sa.Column("ip", sa.String(length=64), server_default="", nullable=False),
        sa.Column("port", sa.Integer(), server_default="0", nullable=False),
        sa.Column("status", sa.SmallInteger(), server_default="0", nullable=False),
        sa.Column("heart_beat_time", sa.BigInteger(), server_default="0", nullable=False),
        sa.Column("labels", sa.Text(), server_default="{}", nullable=False),
        sa.Column("version", sa.String(length=32), server_default="", nullable=False),
        sa.Column("users", sa.Text(), server_default="[]", nullable=False),
        sa.Column("cpu_pct", sa.Float(), server_default="0", nullable=False),
        sa.Column("mem_pct", sa.Float(), server_default="0", nullable=False),
        sa.Column("load1", sa.Float(), server_default="0", nullable=False),
        sa.Column("procs", sa.Integer(), server_default="0", nullable=False),
        sa.Column("outbox", sa.Integer(), server_default="0", nullable=False),
        sa.Column("last_error", sa.String(length=500), server_default="", nullable=False),
        sa.Column("create_time", sa.BigInteger(), server_default="0", nullable=False),
        sa.Column("update_time", sa.BigInteger(), server_default="0", nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_agents")),
        sa.UniqueConstraint("name", name=op.f("uq_agents_name")),
        **MYSQL_OPTIONS,
    )
    op.create_index(op.f("ix_agents_gid"), "agents", ["gid"])
    op.create_table(
        "center_command",
        sa.Column("id", BigId, autoincrement=True, nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("task_id", sa.Integer(), server_default="0", nullable=False),
        sa.Column("runid", sa.String(length=64), server_default="", nullable=False),
        sa.Column("aid", sa.Integer(), server_default="0", nullable=False),
        sa.Column("user_id", sa.Integer(), server_default="0", nullable=False),
        sa.Column("status", sa.String(length=16), server_default="pending", nullable=False),
        sa.Column("result", sa.String(length=500), server_default="", nullable=False),
        sa.Column("created_us", sa.BigInteger(), nullable=False),
        sa.Column("done_us", sa.BigInteger(), server_default="0", nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_center_command")),
        **MYSQL_OPTIONS,
    )
    op.create_index("ix_center_command_status_id", "center_command", ["status", "id"])
    op.create_table(
        "cron_group",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("description", sa.String(length=255), server_default="", nullable=False),
        sa.Column("retention_days", sa.Integer(), server_default="30", nullable=False),
        sa.Column("create_time", sa.BigInteger(), server_default="0", nullable=False),
        sa.Column("update_time", sa.BigInteger(), server_default="0", nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_cron_group")),
        sa.UniqueConstraint("name", name=op.f("uq_cron_group_name")),
        **MYSQL_OPTIONS,
    )
    op.create_table(
        "crontab",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("gid", sa.Integer(), nullable=True),
        sa.Column("name", sa.String(length=128), nullable=False),
        sa.Column("rule", sa.String(length=128), nullable=False),
        sa.Column("execute", sa.Text(), nullable=False),
        sa.Column("run_user", sa.String(length=64), server_default="", nullable=False),
        sa.Column("process_num", sa.Integer(), server_default="1", nullable=False),
        sa.Column("is_daemon", sa.SmallInteger(), server_default="0", nullable=False),
        sa.Column("status", sa.SmallInteger(), server_default="1", nullable=False),
        sa.Column("timezone", sa.String(length=64), server_default="UTC", nullable=False),
        sa.Column("shell", sa.SmallInteger(), server_default="0", nullable=False),
        sa.Column("env", sa.Text(), server_default="{}", nullable=False),
        sa.Column("cwd", sa.String(length=255), server_default="", nullable=False),
        sa.Column("timeout_s", sa.Double(), server_default="0", nullable=False),
        sa.Column("kill_grace_s", sa.Double(), server_default="5", nullable=False),
        sa.Column("retries", sa.Integer(), server_default="0", nullable=False),
        sa.Column("retry_backoff_s", sa.Double(), server_default="10", nullable=False),
        sa.Column("overlap", sa.String(length=16), server_default="skip", nullable=False),
        sa.Column("output_max_bytes", sa.Integer(), server_default="262144", nullable=False),
        sa.Column("routing", sa.String(length=16), server_default="listed", nullable=False),
        sa.Column("failover", sa.SmallInteger(), server_default="1", nullable=False),
        sa.Column("selector", sa.String(length=255), server_default="", nullable=False),
        sa.Column("shard_total", sa.Integer(), server_default="0", nullable=False),
        sa.Column("misfire", sa.String(length=8), server_default="skip", nullable=False),
        sa.Column("misfire_window_s", sa.Integer(), server_default="3600", nullable=False),
        sa.Column("depends_on", sa.Integer(), nullable=True),
        sa.Column("depends_when", sa.String(length=8), server_default="success", nullable=False),
        sa.Column("description", sa.String(length=500), server_default="", nullable=False),
        sa.Column("error", sa.String(length=500), server_default="", nullable=False),
        sa.Column("create_time", sa.BigInteger(), server_default="0", nullable=False),
        sa.Column("update_time", sa.BigInteger(), server_default="0", nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_crontab")),
        **MYSQL_OPTIONS,
    )
    op.create_index(op.f("ix_crontab_depends_on"), "crontab", ["depends_on"])
    op.create_index(op.f("ix_crontab_gid"), "crontab", ["gid"])
    op.create_index("ix_crontab_update_time", "crontab", ["update_time"])
    op.create_table(
        "crontab_agent",
        sa.Column("task_id", sa.Integer(), nullable=False),
        sa.Column("aid", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("task_id", "aid", name=op.f("pk_crontab_agent")),
        **MYSQL_OPTIONS,
    )
    op.create_index(op.f("ix_crontab_agent_aid"), "crontab_agent", ["aid"])
    op.create_table(
        "daemon_state",
        sa.Column("task_id", sa.Integer(), nullable=False),
        sa.Column("aid", sa.Integer(), nullable=False),
        sa.Column("wanted", sa.Integer(), server_default="0", nullable=False),
        sa.Column("running", sa.Integer(), server_default="0", nullable=False),
        sa.Column("crash_looping", sa.SmallInteger(), server_default="0", nullable=False),
        sa.Column("last_exit", sa.String(length=500), server_default="", nullable=False),
        sa.Column("updated_us", sa.BigInteger(), server_default="0", nullable=False),
        sa.PrimaryKeyConstraint("task_id", "aid", name=op.f("pk_daemon_state")),
        **MYSQL_OPTIONS,
    )
    op.create_table(
        "leader_lease",
        sa.Column("name", sa.String(length=32), nullable=False),
        sa.Column("holder", sa.String(length=128), server_default="", nullable=False),
        sa.Column("epoch", sa.BigInteger(), server_default="0", nullable=False),
        sa.Column("expires_us", sa.BigInteger(), server_default="0", nullable=False),
        sa.Column("planned_through_us", sa.BigInteger(), server_default="0", nullable=False),
        sa.Column("updated_us", sa.BigInteger(), server_default="0", nullable=False),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_leader_lease")),
        **MYSQL_OPTIONS,
    )
    op.create_table(
        "task_output",
        sa.Column("id", BigId, autoincrement=True, nullable=False),
        sa.Column("runid", sa.String(length=64), nullable=False),
        sa.Column("offset", sa.BigInteger(), nullable=False),
        sa.Column("data", Blob, nullable=False),
        sa.Column("created_us", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_task_output")),
        **MYSQL_OPTIONS,
    )
    op.create_index("ix_task_output_runid_offset", "task_output", ["runid", "offset"])
    op.create_table(
        "task_process",
        sa.Column("id", BigId, autoincrement=True, nullable=False),
        sa.Column("task_id", sa.Integer(), nullable=False),
        sa.Column("runid", sa.String(length=64), nullable=False),
        sa.Column("aid", sa.Integer(), server_default="0", nullable=False),
        sa.Column("pid", sa.Integer(), server_default="0", nullable=False),
        sa.Column("start", sa.BigInteger(), server_default="0", nullable=False),
        sa.Column("end", sa.BigInteger(), server_default="0", nullable=False),
        sa.Column("code", sa.Integer(), nullable=True),
        sa.Column("signal", sa.Integer(), nullable=True),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("result", LongText, nullable=True),
        sa.Column("sched_us", sa.BigInteger(), nullable=False),
        sa.Column("due_us", sa.BigInteger(), server_default="0", nullable=False),
        sa.Column("attempt", sa.Integer(), server_default="0", nullable=False),
        sa.Column("instance", sa.Integer(), server_default="0", nullable=False),
        sa.Column("trigger", sa.String(length=16), server_default="schedule", nullable=False),
        sa.Column("first_runid", sa.String(length=64), server_default="", nullable=False),
        sa.Column("parent_runid", sa.String(length=64), server_default="", nullable=False),
        sa.Column("run_user", sa.String(length=64), server_default="", nullable=False),
        sa.Column("uid", sa.Integer(), server_default="-1", nullable=False),
        sa.Column("gid", sa.Integer(), server_default="-1", nullable=False),
        sa.Column("output_bytes", sa.BigInteger(), server_default="0", nullable=False),
        sa.Column("truncated", sa.SmallInteger(), server_default="0", nullable=False),
        sa.Column("reason", sa.String(length=500), server_default="", nullable=False),
        sa.Column("epoch", sa.BigInteger(), server_default="0", nullable=False),
        sa.Column("created_us", sa.BigInteger(), server_default="0", nullable=False),
        sa.Column("updated_us", sa.BigInteger(), server_default="0", nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_task_process")),
        sa.UniqueConstraint("runid", name=op.f("uq_task_process_runid")),
        sa.UniqueConstraint(
            "task_id",
            "sched_us",
            "aid",
            "attempt",
            "instance",
            name=op.f("uq_task_process_task_id_sched_us_aid_attempt_instance"),
        ),
        **MYSQL_OPTIONS,
    )
    op.create_index("ix_task_process_aid_status", "task_process", ["aid", "status"])
    op.create_index("ix_task_process_sched_us", "task_process", ["sched_us"])
    op.create_index("ix_task_process_status_sched_us", "task_process", ["status", "sched_us"])


def downgrade() -> None:
    for name in reversed(TABLES):
        op.drop_table(name)  # drops its indexes too
