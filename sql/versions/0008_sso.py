"""Admin single sign-on: where each user comes from (local, OIDC, LDAP) and their subject
there; a TOTP second factor for local accounts; a login stage on browser sessions.

Revision ID: 0008
Revises: 0007

Frozen history, like 0001: the types are spelled out here, not imported from center.tables.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008"
down_revision: str | Sequence[str] | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


# SQLite rebuilds admin_user for the unique key: keep 0005's AUTOINCREMENT (ids never reused).
_KEEP = {"sqlite_autoincrement": True}


def upgrade() -> None:
    with op.batch_alter_table("admin_user", table_kwargs=_KEEP) as batch:
        batch.add_column(
            sa.Column("source", sa.String(length=8), server_default="local", nullable=False)
        )
        # NULL for local users: a unique key allows many NULLs on both backends.
        batch.add_column(sa.Column("external_subject", sa.String(length=255), nullable=True))
        # Encrypted with admin_totp_key ("fernet:…"), or "plain:…" without a key; "" = none.
        batch.add_column(
            sa.Column("totp_secret", sa.String(length=255), server_default="", nullable=False)
        )
        batch.add_column(
            sa.Column("totp_required", sa.SmallInteger(), server_default="0", nullable=False)
        )
        # The last 30-second step whose code was accepted: a code is good once.
        batch.add_column(
            sa.Column("totp_last_step", sa.BigInteger(), server_default="0", nullable=False)
        )
        batch.create_unique_constraint("uq_admin_user_external", ["source", "external_subject"])
    with op.batch_alter_table("admin_session") as batch:
        # "" a full session; "totp" waits for the code, "enrol" for a TOTP enrolment.
        batch.add_column(sa.Column("stage", sa.String(length=8), server_default="", nullable=False))


def downgrade() -> None:
    with op.batch_alter_table("admin_session") as batch:
        batch.drop_column("stage")
    with op.batch_alter_table("admin_user", table_kwargs=_KEEP) as batch:
        batch.drop_constraint("uq_admin_user_external", type_="unique")
        for name in ("totp_last_step", "totp_required", "totp_secret", "external_subject"):
            batch.drop_column(name)
        batch.drop_column("source")
