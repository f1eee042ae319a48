"""Second wave, fleet services: daemon placement, per-agent caps and partition stops on rules,
and an agent's drain flag and admission refusal.

Revision ID: 0007
Revises: 0006

Frozen history, like 0001: the types are spelled out here, not imported from center.tables.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | Sequence[str] | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

MYSQL: dict[str, Any] = {
    "mysql_engine": "InnoDB",
    "mysql_charset": "utf8mb4",
    "mysql_collate": "utf8mb4_unicode_ci",
}


def upgrade() -> None:
    op.create_table(
        "daemon_placement",
        sa.Column("task_id", sa.Integer(), nullable=False),
        sa.Column("instance", sa.Integer(), nullable=False),
        sa.Column("aid", sa.Integer(), nullable=False, server_default="0"),
        sa.Column("reason", sa.String(200), nullable=False, server_default=""),
        sa.Column("since_us", sa.BigInteger(), nullable=False, server_default="0"),
        sa.Column("epoch", sa.BigInteger(), nullable=False, server_default="0"),
        sa.PrimaryKeyConstraint("task_id", "instance", name="pk_daemon_placement"),
        **MYSQL,
    )
    op.create_index("ix_daemon_placement_aid", "daemon_placement", ["aid"])
    with op.batch_alter_table("crontab") as batch:
        batch.add_column(
            sa.Column("max_per_agent", sa.Integer(), server_default="0", nullable=False)
        )
        batch.add_column(
            sa.Column("partition_stop_s", sa.Integer(), server_default="0", nullable=False)
        )
    with op.batch_alter_table("agents") as batch:
        batch.add_column(sa.Column("drain", sa.SmallInteger(), server_default="0", nullable=False))
        batch.add_column(sa.Column("refusing", sa.String(200), server_default="", nullable=False))


def downgrade() -> None:
    with op.batch_alter_table("agents") as batch:
        batch.drop_column("refusing")
        batch.drop_column("drain")
    with op.batch_alter_table("crontab") as batch:
        batch.drop_column("partition_stop_s")
        batch.drop_column("max_per_agent")
    op.drop_index("ix_daemon_placement_aid", table_name="daemon_placement")
    op.drop_table("daemon_placement")
