"""A run is confined to its user: its env and cwd reach only processes already running as that
user, its limits hold, and nothing it started outlives a time limit or a kill. Each test is the
attack as a group admin would make it, through a real agent and real processes."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from agent import runner
from agent.config import AgentConfig
from agent.descendants import tree_of
from agent.service import AgentService
from protocol import statuses
from protocol.messages import AgentState
from tests.agent.peer import CenterPeer, exec_msg, running, wait_for

NOBODY_UID = 65534
EVIL_SO = r"""
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>
__attribute__((constructor)) static void evil(void) {
    const char *path = getenv("EVIL_LOG");
    FILE *f = path ? fopen(path, "a") : NULL;
    if (f) { fprintf(f, "%d\n", (int)getuid()); fclose(f); }
}
"""


@pytest.fixture
def open_dir() -> Iterator[Path]:
    """A directory any user may enter and write (pytest's own tmp_path is root's only)."""
    path = Path(tempfile.mkdtemp(prefix="unitedcron-confine-"))
    path.chmod(0o777)
    try:
        yield path
    finally:
        shutil.rmtree(path)


@pytest.fixture(params=["setpriv", "fork"])
def make_config(
    request: pytest.FixtureRequest, make_config: Callable[..., AgentConfig]
) -> Callable[..., AgentConfig]:
    """Every agent of these tests once per user-switch method."""

    def make(**overrides: object) -> AgentConfig:
        return make_config(**{"agent_user_switch": request.param, **overrides})

    return make


def _evil_library(where: Path) -> Path:
    """A shared library whose constructor appends the uid it runs as to $EVIL_LOG."""
    if shutil.which("gcc") is None:
        if os.environ.get("CI") == "true":
            pytest.fail("gcc is needed to build the attack's library (.ci/run installs it)")
        pytest.skip("no gcc to build the attack's library")
    source, library = where / "evil.c", where / "evil.so"
    source.write_text(EVIL_SO)
    subprocess.run(["gcc", "-shared", "-fPIC", "-o", str(library), str(source)], check=True)
    library.chmod(0o755)
    return library


async def test_loader_variables_are_refused(center: CenterPeer, open_dir: Path) -> None:
    """LD_PRELOAD in a rule's env is refused before anything starts, naming the variable."""
    log = open_dir / "uids"
    msg = exec_msg("/bin/true", env={"LD_PRELOAD": "/tmp/x.so", "EVIL_LOG": str(log)})
    finished = await center.run(msg)
    assert finished.status == statuses.FAILED and not finished.pid
    assert "LD_PRELOAD" in finished.reason and "loader" in finished.reason
    assert not log.exists()


async def test_ld_preload_never_runs_as_root(
    make_config: Callable[..., AgentConfig], open_dir: Path
) -> None:
    """Even where an agent allows loader variables, the library loads only into processes
    that already run as the rule's user: no constructor ever runs as uid 0."""
    library, log = _evil_library(open_dir), open_dir / "uids"
    log.touch()
    log.chmod(0o666)
    config = make_config(agent_allow_loader_env=True)
    async with running(config) as agent:
        center = await CenterPeer.connect(agent.port)
        try:
            assert isinstance(await center.recv(), AgentState)
            msg = exec_msg("/bin/true", env={"LD_PRELOAD": str(library), "EVIL_LOG": str(log)})
            finished = await center.run(msg)
        finally:
            await center.close()
    assert finished.status == statuses.SUCCESS
    uids = log.read_text().split()
    assert uids and set(uids) == {str(NOBODY_UID)}, uids


async def test_cwd_is_entered_as_the_user(
    agent: AgentService, center: CenterPeer, open_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A directory swapped for a root-only one after the check (the attacker won the race,
    which the check is made to pass here) is entered as the user: refused, secret unread."""
    private = open_dir / "private"
    private.mkdir(mode=0o700)
    (private / "secret").write_text("root's secret\n")
    monkeypatch.setattr(runner, "cwd_problem", lambda path, account: None)
    finished = await center.run(exec_msg("/bin/cat secret", cwd=str(private)))
    assert finished.status == statuses.FAILED
    assert "cannot change directory" in finished.reason and str(private) in finished.reason
    assert b"secret" not in finished.output


async def test_fork_bomb_ends_failed_naming_the_process_limit(
    agent: AgentService, center: CenterPeer
) -> None:
    """A fork bomb under a process limit ends failed, the reason names the limit, nothing of
    it is left behind and the agent goes on running other jobs."""
    bomb = exec_msg(
        "while :; do sleep 30 & done", shell=True, limit_nproc=20, timeout_s=30, kill_grace_s=1
    )
    finished = await center.run(bomb, timeout_s=40)
    assert finished.status == statuses.FAILED
    assert "process limit of 20 reached" in finished.reason
    await wait_for(lambda: tree_of(bomb.ref.runid, NOBODY_UID, finished.pid) == [])
    after = await center.run(exec_msg("/bin/echo still here"))
    assert after.status == statuses.SUCCESS and after.output == b"still here\n"


async def test_cpu_limit_is_named(agent: AgentService, center: CenterPeer) -> None:
    """A busy loop under a CPU limit is stopped by the kernel; the reason names the limit."""
    finished = await center.run(
        exec_msg("while :; do :; done", shell=True, limit_cpu_s=1, timeout_s=30), timeout_s=40
    )
    assert finished.status == statuses.FAILED and finished.signal == signal.SIGXCPU
    assert "cpu limit of 1 s reached" in finished.reason


async def test_a_session_of_its_own_does_not_outlive_the_time_limit(
    agent: AgentService, center: CenterPeer
) -> None:
    """`setsid sleep 300 &` leaves the run's group and session; a run with a timeout still
    takes it along when it ends."""
    msg = exec_msg("setsid sleep 300 &", shell=True, timeout_s=60, kill_grace_s=1)
    finished = await center.run(msg)
    assert finished.status == statuses.SUCCESS
    await wait_for(lambda: tree_of(msg.ref.runid, NOBODY_UID, finished.pid) == [])
