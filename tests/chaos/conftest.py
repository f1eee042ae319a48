"""The chaos run's figures, printed in pytest's terminal summary so that CI logs show them."""

from __future__ import annotations

import pytest

SUMMARY = pytest.StashKey[list[str]]()


@pytest.fixture
def chaos_summary(request: pytest.FixtureRequest) -> list[str]:
    """Lines to print in the `chaos` section of the terminal summary, pass or fail."""
    return request.config.stash.setdefault(SUMMARY, [])


def pytest_terminal_summary(
    terminalreporter: pytest.TerminalReporter, config: pytest.Config
) -> None:
    lines = config.stash.get(SUMMARY, [])
    if lines:
        terminalreporter.section("chaos")
        for line in lines:
            terminalreporter.write_line(line)
