"""Channels that subscribed to every alert event get the new one, calendar_ending, too.

Revision ID: 0017
Revises: 0016

A channel whose events held all five events there were before (run_failed, run_timeout,
crash_looping, agent_offline, did_not_start) meant "everything": it gets calendar_ending, so a
group whose calendar runs out hears of it. A channel with a chosen subset is left alone. Frozen
history: the event names are spelled out here, not imported from center.alerts.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0017"
down_revision: str | Sequence[str] | None = "0016"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

FORMER = frozenset({"run_failed", "run_timeout", "crash_looping", "agent_offline", "did_not_start"})
NEW = "calendar_ending"


def upgrade() -> None:
    _rewrite(lambda names: [*names, NEW] if NEW not in names else names)


def downgrade() -> None:
    _rewrite(lambda names: [n for n in names if n != NEW])


def _rewrite(change: Callable[[list[str]], list[str]]) -> None:
    """`change` applied to the event list of each channel that holds all the former events
    (few rows: a channel per group and destination)."""
    bind = op.get_bind()
    for ident, events in bind.execute(sa.text("SELECT id, events FROM alert_channel")).all():
        names = [e.strip() for e in str(events).split(",") if e.strip()]
        if not set(names) >= FORMER:
            continue
        new = ",".join(change(names))
        if new != events:
            bind.execute(
                sa.text("UPDATE alert_channel SET events = :events WHERE id = :id"),
                {"events": new, "id": ident},
            )
