"""Shared limits and parameters: group-level concurrency keys held by rules, a rule's
`allow_params`, and the params and env overrides a manual run was started with.

Revision ID: 0011
Revises: 0010

Frozen history, like 0001: the types are spelled out here, not imported from center.tables.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from alembic import op

revision: str = "0011"
down_revision: str | Sequence[str] | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

MYSQL: dict[str, Any] = {
    "mysql_engine": "InnoDB",
    "mysql_charset": "utf8mb4",
    "mysql_collate": "utf8mb4_unicode_ci",
}


def upgrade() -> None:
    op.create_table(
        "concurrency_key",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("gid", sa.Integer(), nullable=False),
        sa.Column("key", sa.String(64), nullable=False),
        sa.Column("limit", sa.Integer(), nullable=False, server_default="1"),
        sa.Column("description", sa.String(255), nullable=False, server_default=""),
        sa.Column("create_time", sa.BigInteger(), nullable=False, server_default="0"),
        sa.Column("update_time", sa.BigInteger(), nullable=False, server_default="0"),
        sa.PrimaryKeyConstraint("id", name="pk_concurrency_key"),
        sa.UniqueConstraint("gid", "key", name="uq_concurrency_key_gid_key"),
        sqlite_autoincrement=True,
        **MYSQL,
    )
    with op.batch_alter_table("crontab") as batch:
        batch.add_column(
            sa.Column("concurrency_keys", sa.String(500), nullable=False, server_default="")
        )
        batch.add_column(
            sa.Column("allow_params", sa.SmallInteger(), nullable=False, server_default="0")
        )
    with op.batch_alter_table("task_process") as batch:
        batch.add_column(sa.Column("params", sa.Text(), nullable=True))
        batch.add_column(sa.Column("env_override", sa.Text(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("task_process") as batch:
        batch.drop_column("env_override")
        batch.drop_column("params")
    with op.batch_alter_table("crontab") as batch:
        batch.drop_column("allow_params")
        batch.drop_column("concurrency_keys")
    op.drop_table("concurrency_key")
