"""Languages and time zones: a user's language and time zone, an alert channel's language.

Revision ID: 0015
Revises: 0014

"" means "not chosen": the user follows their browser's Accept-Language, then the admin's
UNITEDCRON_ADMIN_LANGUAGE, and sees times in the admin's UNITEDCRON_ADMIN_TIMEZONE; a channel
speaks the center's UNITEDCRON_CENTER_ALERT_LANGUAGE.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0015"
down_revision: str | Sequence[str] | None = "0014"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column(
        "admin_user", sa.Column("language", sa.String(length=8), server_default="", nullable=False)
    )
    op.add_column(
        "admin_user", sa.Column("timezone", sa.String(length=64), server_default="", nullable=False)
    )
    op.add_column(
        "alert_channel",
        sa.Column("language", sa.String(length=8), server_default="", nullable=False),
    )


def downgrade() -> None:
    with op.batch_alter_table("alert_channel") as batch:
        batch.drop_column("language")
    with op.batch_alter_table("admin_user") as batch:
        batch.drop_column("timezone")
        batch.drop_column("language")
