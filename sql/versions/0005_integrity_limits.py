"""Second wave, integrity and hardening: per-run limits and `retry_unknown` on rules; on SQLite,
ids that are never reused (AUTOINCREMENT) for the tables whose ids other rows and grants name.

Revision ID: 0005
Revises: 0004

Frozen history, like 0001: the types are spelled out here, not imported from center.tables.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | Sequence[str] | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# A deleted group's id handed to the next group would give its admin the old group's history,
# channels and audit rows: SQLite reuses the highest rowid unless the table says AUTOINCREMENT.
# MySQL/MariaDB's AUTO_INCREMENT never goes back, so only SQLite tables are rebuilt.
NEVER_REUSED = ("cron_group", "agents", "crontab", "admin_user", "api_token", "alert_channel")
LIMIT_COLUMNS = ("limit_mem_mb", "limit_cpu_s", "limit_nofile", "limit_nproc")


def upgrade() -> None:
    with op.batch_alter_table("crontab") as batch:
        batch.add_column(
            sa.Column("retry_unknown", sa.String(length=8), server_default="never", nullable=False)
        )
        for name in LIMIT_COLUMNS:
            batch.add_column(sa.Column(name, sa.Integer(), server_default="0", nullable=False))
    if op.get_bind().dialect.name == "sqlite":
        for table in NEVER_REUSED:
            with op.batch_alter_table(
                table, recreate="always", table_kwargs={"sqlite_autoincrement": True}
            ):
                pass


def downgrade() -> None:
    with op.batch_alter_table("crontab") as batch:
        for name in reversed(LIMIT_COLUMNS):
            batch.drop_column(name)
        batch.drop_column("retry_unknown")
