"""The one set of run statuses, used alike by agent, center, database and admin."""

from __future__ import annotations

PLANNED = "planned"  # row written by the leader; not yet sent
DISPATCHED = "dispatched"  # exec sent to the agent
RUNNING = "running"  # the agent reported the process started
SUCCESS = "success"  # exited 0
FAILED = "failed"  # exited non-zero, or could not start (reason says why)
TIMEOUT = "timeout"  # killed for running past timeout_s
KILLED = "killed"  # stopped on request (kill, replace, pause, shutdown) or by a signal
SKIPPED = "skipped"  # not started on purpose (overlap policy, rule paused before dispatch)
MISSED = "missed"  # its time passed with nobody to plan or run it (misfire policy skip)
LOST = "lost"  # dispatched but the agent no longer knows it

FINAL = frozenset({SUCCESS, FAILED, TIMEOUT, KILLED, SKIPPED, MISSED, LOST})
ACTIVE = frozenset({PLANNED, DISPATCHED, RUNNING})
ALL = ACTIVE | FINAL
