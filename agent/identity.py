"""The agent's own key: made once, kept in the state dir, sent with every registration.

The center binds the agent's name to the first key it sees, so another host that holds the
cluster secret cannot register under this agent's name and take its runs.
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path

from agent.errors import StateDirError

KEY_FILE = "agent.key"
KEY_BYTES = 32


def load_or_create_key(state_dir: Path) -> str:
    """The key in `state_dir`, created (mode 0600, fsync'd) on first use; StateDirError if not."""
    path = state_dir / KEY_FILE
    try:
        return _read(path) or _create(path)
    except OSError as exc:
        raise StateDirError(state_dir, exc) from exc


def _read(path: Path) -> str:
    try:
        return path.read_text().strip()
    except FileNotFoundError:
        return ""


def _create(path: Path) -> str:
    key = secrets.token_hex(KEY_BYTES)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:  # another start made it first: theirs is the key
        return _read(path)
    with os.fdopen(fd, "w") as file:
        file.write(key + "\n")
        file.flush()
        os.fsync(file.fileno())
    return key
