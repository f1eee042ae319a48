"""Statistics: run_rollup, per rule per hour counts and duration/lateness histograms.

Revision ID: 0014
Revises: 0013

Frozen history, like 0001: the types are spelled out here, not imported from center.tables.
Rollups of runs stored before this revision: `unitedcron db rollups` builds them.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from alembic import op

revision: str = "0014"
down_revision: str | Sequence[str] | None = "0013"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

MYSQL: dict[str, Any] = {
    "mysql_engine": "InnoDB",
    "mysql_charset": "utf8mb4",
    "mysql_collate": "utf8mb4_unicode_ci",
}
_COUNTED = ("success", "failed", "timeout", "killed", "lost", "missed", "skipped")


def _int(name: str, kind: type[sa.Integer] = sa.Integer) -> sa.Column[int]:
    return sa.Column(name, kind(), nullable=False, server_default="0")


def upgrade() -> None:
    figures = [
        column
        for f in ("dur", "late")
        for column in (
            _int(f"{f}_n"),
            _int(f"{f}_sum_ms", sa.BigInteger),
            _int(f"{f}_max_ms", sa.BigInteger),
            sa.Column(f"{f}_hist", sa.String(700), nullable=False, server_default=""),
        )
    ]
    op.create_table(
        "run_rollup",
        sa.Column("task_id", sa.Integer(), nullable=False),
        sa.Column("hour_us", sa.BigInteger(), nullable=False),
        *(_int(f"n_{s}") for s in _COUNTED),
        *figures,
        _int("updated_us", sa.BigInteger),
        sa.PrimaryKeyConstraint("task_id", "hour_us", name="pk_run_rollup"),
        **MYSQL,
    )
    op.create_index("ix_run_rollup_hour_us", "run_rollup", ["hour_us"])


def downgrade() -> None:
    op.drop_table("run_rollup")
