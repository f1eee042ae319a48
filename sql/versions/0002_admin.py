"""The admin's tables: users, grants, sessions, API tokens, the audit log, login throttling.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-21

Frozen history, like 0001: the types are spelled out here, not imported from center.tables.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import mysql

revision: str = "0002"
down_revision: str | Sequence[str] | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

MYSQL_OPTIONS: dict[str, Any] = {
    "mysql_engine": "InnoDB",
    "mysql_charset": "utf8mb4",
    "mysql_collate": "utf8mb4_unicode_ci",
}
BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
LongText = sa.Text().with_variant(mysql.MEDIUMTEXT(), "mysql")

TABLES = (
    "admin_user",
    "admin_grant",
    "admin_session",
    "api_token",
    "audit_log",
    "login_throttle",
)


def _times() -> list[sa.Column[Any]]:
    return [
        sa.Column("create_time", sa.BigInteger(), server_default="0", nullable=False),
        sa.Column("update_time", sa.BigInteger(), server_default="0", nullable=False),
    ]


def _users() -> None:
    op.create_table(
        "admin_user",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("password_hash", sa.String(length=255), nullable=False),
        sa.Column("superadmin", sa.SmallInteger(), server_default="0", nullable=False),
        sa.Column("status", sa.SmallInteger(), server_default="1", nullable=False),
        *_times(),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_admin_user")),
        sa.UniqueConstraint("name", name=op.f("uq_admin_user_name")),
        **MYSQL_OPTIONS,
    )
    op.create_table(
        "admin_grant",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("gid", sa.Integer(), nullable=False),
        sa.Column("role", sa.String(length=16), nullable=False),
        *_times(),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_admin_grant")),
        sa.UniqueConstraint("user_id", "gid", name=op.f("uq_admin_grant_user_id_gid")),
        **MYSQL_OPTIONS,
    )
    op.create_index(op.f("ix_admin_grant_gid"), "admin_grant", ["gid"])


def _credentials() -> None:
    op.create_table(
        "admin_session",
        sa.Column("id_hash", sa.String(length=64), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("csrf", sa.String(length=64), nullable=False),
        sa.Column("client", sa.String(length=64), server_default="", nullable=False),
        sa.Column("created_us", sa.BigInteger(), nullable=False),
        sa.Column("seen_us", sa.BigInteger(), nullable=False),
        sa.Column("expires_us", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("id_hash", name=op.f("pk_admin_session")),
        **MYSQL_OPTIONS,
    )
    op.create_index(op.f("ix_admin_session_user_id"), "admin_session", ["user_id"])
    op.create_index(op.f("ix_admin_session_expires_us"), "admin_session", ["expires_us"])
    op.create_table(
        "api_token",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=64), server_default="", nullable=False),
        sa.Column("token_hash", sa.String(length=64), nullable=False),
        sa.Column("prefix", sa.String(length=16), nullable=False),
        sa.Column("created_us", sa.BigInteger(), nullable=False),
        sa.Column("last_used_us", sa.BigInteger(), server_default="0", nullable=False),
        sa.Column("expires_us", sa.BigInteger(), server_default="0", nullable=False),
        sa.Column("revoked_us", sa.BigInteger(), server_default="0", nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_api_token")),
        sa.UniqueConstraint("token_hash", name=op.f("uq_api_token_token_hash")),
        **MYSQL_OPTIONS,
    )
    op.create_index(op.f("ix_api_token_user_id"), "api_token", ["user_id"])
    op.create_table(
        "login_throttle",
        sa.Column("throttle_key", sa.String(length=160), nullable=False),
        sa.Column("failures", sa.Integer(), server_default="0", nullable=False),
        sa.Column("last_us", sa.BigInteger(), server_default="0", nullable=False),
        sa.Column("blocked_until_us", sa.BigInteger(), server_default="0", nullable=False),
        sa.PrimaryKeyConstraint("throttle_key", name=op.f("pk_login_throttle")),
        **MYSQL_OPTIONS,
    )


def _audit() -> None:
    op.create_table(
        "audit_log",
        sa.Column("id", BigId, autoincrement=True, nullable=False),
        sa.Column("at_us", sa.BigInteger(), nullable=False),
        sa.Column("user_id", sa.Integer(), server_default="0", nullable=False),
        sa.Column("username", sa.String(length=64), server_default="", nullable=False),
        sa.Column("action", sa.String(length=32), nullable=False),
        sa.Column("object_type", sa.String(length=16), nullable=False),
        sa.Column("object_id", sa.String(length=64), server_default="", nullable=False),
        sa.Column("gid", sa.Integer(), nullable=True),
        sa.Column("before_json", LongText, nullable=False),
        sa.Column("after_json", LongText, nullable=False),
        sa.Column("client", sa.String(length=64), server_default="", nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_audit_log")),
        **MYSQL_OPTIONS,
    )
    op.create_index(op.f("ix_audit_log_at_us"), "audit_log", ["at_us"])
    op.create_index(op.f("ix_audit_log_gid"), "audit_log", ["gid"])
    op.create_index("ix_audit_log_object_type_object_id", "audit_log", ["object_type", "object_id"])


def upgrade() -> None:
    _users()
    _credentials()
    _audit()


def downgrade() -> None:
    for name in reversed(TABLES):
        op.drop_table(name)  # drops its indexes too
