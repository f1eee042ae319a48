"""Real agents on 127.0.0.1 port 0, each with its own state directory, and a test center."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest

from agent.config import AgentConfig
from agent.service import AgentService
from protocol.messages import AgentState
from tests.agent.certs import Certs, make_certs
from tests.agent.peer import SECRET, CenterPeer, running

# Port 1 refuses at once: registration fails quietly unless a test listens for it.
NO_CENTER = "127.0.0.1:1"


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """Settings come from the test alone, never from the environment it runs in."""
    import os

    for name in list(os.environ):
        if name.startswith("UNITEDCRON_"):
            monkeypatch.delenv(name)


@pytest.fixture(scope="session")
def certs(tmp_path_factory: pytest.TempPathFactory) -> Certs:
    """A cluster CA with center and agent certificates, and a rogue CA's certificate."""
    return make_certs(tmp_path_factory.mktemp("certs"))


@pytest.fixture
def state_dir(tmp_path: Path) -> Path:
    return tmp_path / "state"


@pytest.fixture
def make_config(state_dir: Path) -> Callable[..., AgentConfig]:
    def make(**overrides: Any) -> AgentConfig:
        settings: dict[str, Any] = {
            "secret": SECRET,
            "agent_listen": "127.0.0.1:0",
            "agent_center": NO_CENTER,
            "agent_state_dir": state_dir,
            "agent_name": "test-agent",
            "agent_kill_grace_s": 2.0,
            "agent_metrics_listen": "",  # tests that scrape ask for 127.0.0.1:0
            # These tests look at each start the agent sends; test_start_reports.py covers the
            # delay that lets a short run send its finish alone.
            "agent_start_report_delay_ms": 0,
        }
        settings.update(overrides)
        # These tests play the center with plain-text peers (tests/agent/peer.py); the TLS
        # tests give files, and tests/security and tests/integration cover the built-in PKI.
        if not any(name.startswith("agent_tls_") for name in settings):
            settings.setdefault("insecure_plaintext", True)
        return AgentConfig(**settings)

    return make


@pytest.fixture
async def agent(make_config: Callable[..., AgentConfig]) -> AsyncIterator[AgentService]:
    async with running(make_config()) as service:
        yield service


@pytest.fixture
async def center(agent: AgentService) -> AsyncIterator[CenterPeer]:
    peer = await CenterPeer.connect(agent.port)
    state = await peer.recv()
    assert isinstance(state, AgentState)
    try:
        yield peer
    finally:
        await peer.close()
