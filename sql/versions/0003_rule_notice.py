"""crontab.notice (why some runs of a valid rule are not planned); agents.agent_labels (the
labels an agent reports, kept apart from those operators set in `labels`); agents.key_hash (the
SHA-256 of the key an agent first registered with, so another host cannot take its name).

Revision ID: 0003
Revises: 0002
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | Sequence[str] | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("crontab") as batch:
        batch.add_column(
            sa.Column("notice", sa.String(length=500), server_default="", nullable=False)
        )
    with op.batch_alter_table("agents") as batch:
        batch.add_column(sa.Column("agent_labels", sa.Text(), server_default="{}", nullable=False))
        batch.add_column(
            sa.Column("key_hash", sa.String(length=64), server_default="", nullable=False)
        )


def downgrade() -> None:
    with op.batch_alter_table("agents") as batch:
        batch.drop_column("key_hash")
        batch.drop_column("agent_labels")
    with op.batch_alter_table("crontab") as batch:
        batch.drop_column("notice")
