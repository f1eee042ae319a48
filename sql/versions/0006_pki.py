"""Second wave, the built-in PKI: the cluster's CAs (keys sealed), revoked certificates, and each
agent's CSR and certificate.

Revision ID: 0006
Revises: 0005

Frozen history, like 0001: the types are spelled out here, not imported from center.tables.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | Sequence[str] | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

MYSQL: dict[str, Any] = {
    "mysql_engine": "InnoDB",
    "mysql_charset": "utf8mb4",
    "mysql_collate": "utf8mb4_unicode_ci",
}
AGENT_TEXT = ("csr_pem", "cert_pem")
AGENT_COLUMNS = ("cert_serial", "cert_not_after", "cert_fingerprint")


def upgrade() -> None:
    op.create_table(
        "cluster_ca",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("cert_pem", sa.Text(), nullable=False),
        sa.Column("key_sealed", sa.Text(), nullable=False),
        sa.Column("key_id", sa.String(64), nullable=False),
        sa.Column("not_after", sa.BigInteger(), nullable=False),
        sa.Column("create_time", sa.BigInteger(), nullable=False, server_default="0"),
        sa.Column("update_time", sa.BigInteger(), nullable=False, server_default="0"),
        sa.PrimaryKeyConstraint("id", name="pk_cluster_ca"),
        sa.UniqueConstraint("key_id", name="uq_cluster_ca_key_id"),
        sqlite_autoincrement=True,
        **MYSQL,
    )
    op.create_table(
        "cert_revoked",
        sa.Column("serial", sa.String(40), nullable=False),
        sa.Column("aid", sa.Integer(), nullable=False),
        sa.Column("reason", sa.String(200), nullable=False, server_default=""),
        sa.Column("not_after", sa.BigInteger(), nullable=False, server_default="0"),
        sa.Column("create_time", sa.BigInteger(), nullable=False, server_default="0"),
        sa.PrimaryKeyConstraint("serial", name="pk_cert_revoked"),
        **MYSQL,
    )
    with op.batch_alter_table("agents") as batch:
        for name in AGENT_TEXT:
            batch.add_column(sa.Column(name, sa.Text(), server_default="", nullable=False))
        batch.add_column(sa.Column("cert_serial", sa.String(40), server_default="", nullable=False))
        batch.add_column(
            sa.Column("cert_not_after", sa.BigInteger(), server_default="0", nullable=False)
        )
        batch.add_column(
            sa.Column("cert_fingerprint", sa.String(64), server_default="", nullable=False)
        )


def downgrade() -> None:
    with op.batch_alter_table("agents") as batch:
        for name in reversed(AGENT_COLUMNS + AGENT_TEXT):
            batch.drop_column(name)
    op.drop_table("cert_revoked")
    op.drop_table("cluster_ca")
