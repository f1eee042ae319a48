"""The run statuses as plain names and the sets the center and agent reason with (the values
are `protocol.vocabulary.RunStatus`)."""

from __future__ import annotations

from protocol.vocabulary import RunStatus

PLANNED = RunStatus.PLANNED
DISPATCHED = RunStatus.DISPATCHED
RUNNING = RunStatus.RUNNING
SUCCESS = RunStatus.SUCCESS
FAILED = RunStatus.FAILED
TIMEOUT = RunStatus.TIMEOUT
KILLED = RunStatus.KILLED
SKIPPED = RunStatus.SKIPPED
MISSED = RunStatus.MISSED
LOST = RunStatus.LOST

FINAL: frozenset[str] = frozenset({SUCCESS, FAILED, TIMEOUT, KILLED, SKIPPED, MISSED, LOST})
ACTIVE: frozenset[str] = frozenset({PLANNED, DISPATCHED, RUNNING})
ALL: frozenset[str] = ACTIVE | FINAL
