"""`python -m agent` and `unitedcron agent`: read the settings, set up logging, run an agent."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from agent.config import AgentConfig
from agent.service import run_agent
from protocol.logs import configure_logging
from protocol.settings import settings_or_exit


def main(config_file: Path | None = None, **flags: Any) -> int:
    """Flags (None = not given) over env over the TOML file; a bad setting exits 2 naming it.
    Returns the exit code: 0 after a clean shutdown, 1 if the agent could not start."""
    config = settings_or_exit(AgentConfig, config_file, **flags)
    configure_logging(config.log_level, config.log_format)
    return run_agent(config)


if __name__ == "__main__":
    raise SystemExit(main())
