"""Center errors.

CenterError                   base of everything the center raises on purpose
├── RuleError                 a rule cannot be planned; `field` and `reason` say why
├── StoreUnavailable          the database did not answer; transient, retried with backoff
├── NotLeader                 this center lost (or never had) the leader lease; carries the epoch
└── AgentKeyMismatch          a registration under a known agent's name brought another key
"""

from __future__ import annotations


class CenterError(Exception):
    """Base of the center's own errors."""


class RuleError(CenterError, ValueError):
    """A rule field is invalid: `field` names it, `reason` says why, `task_id` if known."""

    def __init__(self, field: str, reason: str, task_id: int | None = None) -> None:
        super().__init__(f"{field}: {reason}")
        self.field = field
        self.reason = reason
        self.task_id = task_id


class StoreUnavailable(CenterError):
    def __init__(self, operation: str, cause: BaseException) -> None:
        super().__init__(f"database unavailable during {operation}: {cause}")
        self.operation = operation


class NotLeader(CenterError):
    def __init__(self, epoch: int) -> None:
        super().__init__(f"not the leader (held epoch {epoch})")
        self.epoch = epoch


class AgentKeyMismatch(CenterError):
    def __init__(self, aid: int, name: str) -> None:
        super().__init__(
            f"agent {name!r} (id {aid}) registered before with another key; refused "
            "(if its host was reinstalled, delete the agent in the admin: it registers "
            "again as pending)"
        )
        self.aid = aid
        self.name = name
