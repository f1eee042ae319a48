"""`python -m admin` is `unitedcron admin`: read the settings, set up logging, serve."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from admin.config import AdminConfig
from admin.main import run_admin
from protocol.logs import configure_logging
from protocol.settings import settings_or_exit


def main(config_file: Path | None = None, **flags: Any) -> int:
    """Flags (None = not given) over env over the TOML file; a bad setting exits 2 naming it."""
    config = settings_or_exit(AdminConfig, config_file, **flags)
    configure_logging(config.log_level, config.log_format)
    return run_admin(config)


if __name__ == "__main__":
    raise SystemExit(main())
