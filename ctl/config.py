"""Where `ctl` talks to and with which token: options, environment, else the saved login."""

from __future__ import annotations

import json
import os
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ctl.errors import UsageError

DEFAULT_FILE = Path("~/.config/unitedcron/ctl.json")


@dataclass(frozen=True, slots=True)
class Target:
    url: str
    token: str


def config_file(given: Path | None) -> Path:
    return (given or DEFAULT_FILE).expanduser()


def load_saved(path: Path) -> dict[str, Any]:
    """The saved login ({} if none). A file others may read is refused: it holds a token."""
    try:
        mode = path.stat().st_mode
    except FileNotFoundError:
        return {}
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise UsageError(
            f"{path} is readable by others (mode {stat.S_IMODE(mode):04o}): "
            f"run `chmod 600 {path}` or log in again"
        )
    try:
        value = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise UsageError(f"{path} cannot be read: {exc}") from None
    return value if isinstance(value, dict) else {}


def save(path: Path, values: dict[str, Any]) -> None:
    """Write the login with mode 0600 from the start (never briefly readable by others)."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as out:
        os.fchmod(out.fileno(), 0o600)  # an existing file keeps its mode through O_CREAT
        json.dump(values, out, indent=1, sort_keys=True)
        out.write("\n")


def resolve(url: str | None, token: str | None, saved: dict[str, Any]) -> Target:
    """--url/UNITEDCRON_URL and --token/UNITEDCRON_TOKEN win over the saved login."""
    url = url or saved.get("url") or ""
    token = token or saved.get("token") or ""
    if not url:
        raise UsageError("no admin URL: give --url, set UNITEDCRON_URL or run `ctl login`")
    if not url.startswith(("http://", "https://")):
        raise UsageError(f"{url!r} is not an http:// or https:// URL", "--url")
    return Target(url.rstrip("/"), token)
