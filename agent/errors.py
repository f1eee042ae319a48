"""Agent errors.

AgentError                    base of everything the agent raises on purpose
├── SpecError                 a run cannot start as specified (user, command); `reason` says why
└── StateDirError             the state directory or its outbox database cannot be used

Protocol errors (bad frames, bad params, failed handshakes) are `protocol.errors.ProtocolError`:
they close the one connection they came on and never reach the agent's own code paths.
"""

from __future__ import annotations

from pathlib import Path


class AgentError(Exception):
    """Base of the agent's own errors."""


class SpecError(AgentError):
    """A run cannot start as specified; the run ends `failed` with `reason`."""

    def __init__(self, reason: str, runid: str = "") -> None:
        super().__init__(f"run {runid}: {reason}" if runid else reason)
        self.reason = reason
        self.runid = runid


class StateDirError(AgentError):
    """The state directory (or the outbox in it) is unusable; the agent cannot start."""

    def __init__(self, path: Path, cause: BaseException) -> None:
        super().__init__(f"state directory {path}: {cause}")
        self.path = path
        self.cause = cause
