"""Chat alert channels: whom a DingTalk or WeCom robot @s (`alert_channel.mentions`). The new
kinds themselves (dingtalk, wecom, feishu, slack) fit the existing `kind`, `target` and
`secret` columns.

Revision ID: 0012
Revises: 0011

Frozen history, like 0001: the types are spelled out here, not imported from center.tables.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0012"
down_revision: str | Sequence[str] | None = "0011"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("alert_channel") as batch:
        batch.add_column(
            sa.Column("mentions", sa.String(length=500), server_default="", nullable=False)
        )


def downgrade() -> None:
    with op.batch_alter_table("alert_channel") as batch:
        batch.drop_column("mentions")
