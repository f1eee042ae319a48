"""Workflows: a named DAG of rules with its own schedule, its runs, and each node run's flow
run id on task_process; center commands gain a JSON `args` (a workflow run's trigger, params).

Revision ID: 0009
Revises: 0008

Frozen history, like 0001: the types are spelled out here, not imported from center.tables.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from alembic import op

revision: str = "0009"
down_revision: str | Sequence[str] | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

MYSQL: dict[str, Any] = {
    "mysql_engine": "InnoDB",
    "mysql_charset": "utf8mb4",
    "mysql_collate": "utf8mb4_unicode_ci",
}


def _str(name: str, length: int, default: str = "") -> sa.Column[str]:
    return sa.Column(name, sa.String(length), nullable=False, server_default=default)


def upgrade() -> None:
    op.create_table(
        "workflow",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("gid", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(128), nullable=False),
        _str("rule", 128),
        _str("timezone", 64, "UTC"),
        sa.Column("status", sa.SmallInteger(), nullable=False, server_default="1"),
        _str("overlap", 16, "skip"),
        _str("misfire", 8, "skip"),
        sa.Column("misfire_window_s", sa.Integer(), nullable=False, server_default="3600"),
        _str("description", 500),
        _str("error", 500),
        sa.Column("create_time", sa.BigInteger(), nullable=False, server_default="0"),
        sa.Column("update_time", sa.BigInteger(), nullable=False, server_default="0"),
        sa.PrimaryKeyConstraint("id", name="pk_workflow"),
        sqlite_autoincrement=True,
        **MYSQL,
    )
    op.create_index("ix_workflow_gid", "workflow", ["gid"])
    op.create_index("ix_workflow_update_time", "workflow", ["update_time"])
    op.create_table(
        "workflow_node",
        sa.Column("workflow_id", sa.Integer(), nullable=False),
        sa.Column("task_id", sa.Integer(), nullable=False),
        _str("join", 8, "all"),
        sa.PrimaryKeyConstraint("workflow_id", "task_id", name="pk_workflow_node"),
        **MYSQL,
    )
    op.create_index("ix_workflow_node_task_id", "workflow_node", ["task_id"])
    op.create_table(
        "workflow_edge",
        sa.Column("workflow_id", sa.Integer(), nullable=False),
        sa.Column("parent_task_id", sa.Integer(), nullable=False),
        sa.Column("child_task_id", sa.Integer(), nullable=False),
        _str("when", 8, "success"),
        sa.PrimaryKeyConstraint(
            "workflow_id", "parent_task_id", "child_task_id", name="pk_workflow_edge"
        ),
        **MYSQL,
    )
    op.create_table(
        "workflow_run",
        sa.Column("id", sa.String(64), nullable=False),
        sa.Column("workflow_id", sa.Integer(), nullable=False),
        sa.Column("sched_us", sa.BigInteger(), nullable=False),
        _str("trigger", 16, "schedule"),
        _str("status", 16, "running"),
        _str("reason", 500),
        sa.Column("reruns", sa.Text(), nullable=False, server_default="{}"),
        sa.Column("params", sa.Text(), nullable=False, server_default=""),
        sa.Column("env", sa.Text(), nullable=False, server_default=""),
        sa.Column("user_id", sa.Integer(), nullable=False, server_default="0"),
        sa.Column("epoch", sa.BigInteger(), nullable=False, server_default="0"),
        sa.Column("created_us", sa.BigInteger(), nullable=False, server_default="0"),
        sa.Column("updated_us", sa.BigInteger(), nullable=False, server_default="0"),
        sa.Column("end_us", sa.BigInteger(), nullable=False, server_default="0"),
        sa.PrimaryKeyConstraint("id", name="pk_workflow_run"),
        **MYSQL,
    )
    op.create_index(
        "ix_workflow_run_workflow_id_sched_us", "workflow_run", ["workflow_id", "sched_us"]
    )
    op.create_index("ix_workflow_run_status", "workflow_run", ["status"])
    with op.batch_alter_table("task_process") as batch:
        batch.add_column(_str("flow_runid", 64))
    op.create_index("ix_task_process_flow_runid", "task_process", ["flow_runid"])
    with op.batch_alter_table("center_command") as batch:
        batch.add_column(sa.Column("args", sa.Text(), nullable=False, server_default="{}"))


def downgrade() -> None:
    with op.batch_alter_table("center_command") as batch:
        batch.drop_column("args")
    op.drop_index("ix_task_process_flow_runid", table_name="task_process")
    with op.batch_alter_table("task_process") as batch:
        batch.drop_column("flow_runid")
    for table in ("workflow_run", "workflow_edge", "workflow_node", "workflow"):
        op.drop_table(table)
