"""Switching to the run's user through setpriv or CPython's fork: exact credentials, fallback."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import structlog

from agent import userswitch
from agent.accounts import resolve_command
from agent.config import AgentConfig
from agent.errors import AgentError, SpecError
from agent.handle import RunHandle
from agent.runner import Runner
from agent.runspec import Account, UserPolicy
from agent.service import AgentService
from agent.userswitch import (
    FORK_SWITCH,
    binary_problem,
    choose_user_switch,
    launcher_failure,
    post_drop_argv,
)
from protocol import statuses
from protocol.rlimits import NO_LIMITS, Rlimits
from tests.agent.peer import CenterPeer, exec_msg, running

NOBODY = Account("nobody", 65534, 65534, "/nonexistent", "/usr/sbin/nologin", (65534,))
ROOT = Account("root", 0, 0, "/root", "/bin/bash", (0,))
CAPS = ("CapInh", "CapPrm", "CapEff", "CapAmb")


@pytest.fixture
def open_dir() -> Iterator[Path]:
    """A directory any user may enter (pytest's own tmp_path is root's only)."""
    path = Path(tempfile.mkdtemp(prefix="unitedcron-test-"))
    path.chmod(0o755)
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


async def test_method_in_use_is_logged(make_config: Callable[..., AgentConfig]) -> None:
    """The agent says at start which way it switches users."""
    config = make_config()
    with structlog.testing.capture_logs() as logs:
        async with running(config):
            pass
    lines = [e for e in logs if e["event"] == "agent.user_switch"]
    assert len(lines) == 1 and lines[0]["method"] == config.agent_user_switch


async def test_run_has_the_users_credentials_only(center: CenterPeer) -> None:
    """uid, gid and groups are the user's, never root's, and no capability is left."""
    assert (await center.run(exec_msg("/usr/bin/id -u"))).output == b"65534\n"
    assert (await center.run(exec_msg("/usr/bin/id -g"))).output == b"65534\n"
    assert (await center.run(exec_msg("/usr/bin/id -G"))).output == b"65534\n"
    status = (await center.run(exec_msg("/bin/cat /proc/self/status"))).output.decode()
    caps = dict(line.split(":\t") for line in status.splitlines() if line.startswith(CAPS))
    assert caps == dict.fromkeys(CAPS, "0000000000000000")


async def test_command_found_in_path_and_relative_to_cwd(center: CenterPeer) -> None:
    """A bare name is looked up in PATH, a relative path in the run's cwd, as with a fork."""
    assert (await center.run(exec_msg("true"))).status == statuses.SUCCESS
    assert (await center.run(exec_msg("./bin/true", cwd="/usr"))).status == statuses.SUCCESS


@pytest.mark.parametrize("method", ["setpriv", "fork"])
async def test_supplementary_groups_are_exactly_the_users(method: str) -> None:
    """The run gets the account's supplementary groups, in the order the lookup gave them."""
    account = Account("nobody", 65534, 65534, "/", "/bin/sh", (65534, 4242, 4343))
    switch = await choose_user_switch(method, switches_user=True)
    runner = Runner(
        UserPolicy(ROOT), lambda event: None, lookup=lambda name: account, switch=switch
    )
    finished = await runner.run(RunHandle(exec_msg("/usr/bin/id -G")))
    assert (finished.status, finished.output) == (statuses.SUCCESS, b"65534 4242 4343\n")


async def test_missing_setpriv_falls_back_to_fork(
    monkeypatch: pytest.MonkeyPatch, make_config: Callable[..., AgentConfig], tmp_path: Path
) -> None:
    """Without setpriv, `auto` uses the fork (saying why) and runs still switch users;
    `setpriv` refuses to start, naming the setting."""
    monkeypatch.setattr(userswitch, "SETPRIV_PATHS", (str(tmp_path / "setpriv"),))
    with structlog.testing.capture_logs() as logs:
        async with running(make_config(agent_user_switch="auto")) as agent:
            peer = await CenterPeer.connect(agent.port)
            try:
                finished = await peer.run(exec_msg("/usr/bin/id -u"))
            finally:
                await peer.close()
    assert finished.output == b"65534\n"
    line = next(e for e in logs if e["event"] == "agent.user_switch")
    assert line["method"] == "fork" and "No such file" in str(line["why_not_setpriv"])
    with pytest.raises(AgentError, match=r"UNITEDCRON_AGENT_USER_SWITCH=setpriv: .*setpriv"):
        await choose_user_switch("setpriv", switches_user=True)


async def test_agent_that_is_not_root_switches_nothing() -> None:
    """An agent running as an ordinary user runs everything as itself: no method at all."""
    assert (await choose_user_switch("setpriv", switches_user=False)).method == "none"


def test_setpriv_must_be_roots_and_not_writable(tmp_path: Path) -> None:
    """A setpriv that others could replace is never exec'd as root."""
    fake = tmp_path / "setpriv"
    fake.write_bytes(Path("/usr/bin/setpriv").read_bytes())
    fake.chmod(0o755)
    assert binary_problem(str(fake)) is None
    fake.chmod(0o777)
    assert "writable by others" in (binary_problem(str(fake)) or "")
    os.chown(fake, 65534, 65534)
    fake.chmod(0o755)
    assert "not owned by root" in (binary_problem(str(fake)) or "")


async def test_command_that_cannot_be_executed_names_the_reason(
    agent: AgentService, center: CenterPeer, open_dir: Path
) -> None:
    """A command that passes the checks but cannot be executed (its interpreter is missing)
    fails with a reason naming it: after setpriv tried it (exit 127), or at the fork."""
    script = open_dir / "script"
    script.write_text("#!/nonexistent/interpreter\n")
    script.chmod(0o755)
    finished = await center.run(exec_msg(str(script)))
    assert finished.status == statuses.FAILED
    if agent.config.agent_user_switch == "setpriv":
        assert finished.code == 127 and finished.reason == (
            f"cannot start {str(script)!r}: setpriv: failed to execute {script}: "
            f"No such file or directory"
        )
    else:
        assert finished.reason.startswith(f"command {str(script)!r}: not found")


def _tree(root: Path) -> Path:
    """bin/ok (executable), bin/plain (not), private/ok (under a 0700 root directory)."""
    for sub, mode in (("bin", 0o755), ("private", 0o700), ("other", 0o755)):
        (root / sub).mkdir()
        (root / sub).chmod(mode)
    for rel, mode in (
        ("bin/ok", 0o755),
        ("bin/plain", 0o644),
        ("private/ok", 0o755),
        ("other/plain", 0o755),
    ):
        (root / rel).write_text("#!/bin/sh\n")
        (root / rel).chmod(mode)
    return root


@pytest.mark.parametrize(
    ("name", "path", "found"),
    [
        ("ok", "bin", "bin/ok"),
        ("./bin/ok", "", "bin/ok"),
        ("plain", "bin:other", "other/plain"),  # skips the candidate it may not execute
        ("plain", "bin", "permission denied for user 'nobody'"),
        ("ok", "private", "permission denied for user 'nobody'"),
        ("bin/missing", "", "not found"),
        ("missing", "bin:other", "not found (PATH="),
    ],
)
def test_resolve_command(open_dir: Path, name: str, path: str, found: str) -> None:
    """Commands are looked up as exec does and checked with the user's permissions."""
    root = _tree(open_dir)
    path_env = ":".join(str(root / p) for p in path.split(":")) if path else ""
    try:
        got = resolve_command(name, path_env, str(root), NOBODY)
    except SpecError as exc:
        assert found in exc.reason and exc.reason.startswith(f"command {name!r}: ")
        return
    assert Path(got).resolve() == (root / found).resolve()


def test_root_needs_one_execute_bit(tmp_path: Path) -> None:
    """Root may execute a file with any execute bit, and none without."""
    target = tmp_path / "x"
    target.write_text("#!/bin/sh\n")
    target.chmod(0o701)
    assert resolve_command(str(target), "", "/", ROOT) == str(target)
    target.chmod(0o600)
    with pytest.raises(SpecError, match="permission denied"):
        resolve_command(str(target), "", "/", ROOT)


@pytest.mark.parametrize(
    ("code", "output", "expected"),
    [
        (127, b"setpriv: failed to execute /x: No such file or directory\n", True),
        (125, b"/usr/bin/env: cannot change directory to '/r': Permission denied\n", True),
        (1, b"/usr/bin/prlimit: failed to set the NPROC resource limit\n", True),
        (2, b"setpriv: something\n", False),  # not a launcher's own status
        (127, b"some output\n", False),  # the command's own output
        (0, b"/usr/bin/env: x\n", False),
    ],
)
def test_launcher_failure_is_recognised(code: int, output: bytes, expected: bool) -> None:
    """Only a launcher's own exit status with its own message counts as a failed start."""
    got = launcher_failure(code, output, FORK_SWITCH)
    assert got == (output.decode().strip() if expected else None)


@pytest.mark.parametrize(
    ("env", "limits", "expected"),
    [
        ({}, NO_LIMITS, ["/usr/bin/env", "-i", "-C", "/w", "/bin/x", "a"]),
        (
            {"A": "v 1", "B": "${C}"},
            NO_LIMITS,
            [
                "/usr/bin/env",
                "-i",
                "-C",
                "/w",
                "-S",
                "A=${UNITEDCRON_ENV_0} B=${UNITEDCRON_ENV_1}",
                "/bin/x",
                "a",
            ],
        ),
        (
            {},
            Rlimits(mem_mb=64, cpu_s=2, nofile=16, nproc=5),
            [
                "/usr/bin/prlimit",
                f"--as={64 << 20}",
                "--cpu=2:3",
                "--nofile=16",
                "--nproc=5",
                "--",
                "/usr/bin/env",
                "-i",
                "-C",
                "/w",
                "/bin/x",
                "a",
            ],
        ),
    ],
)
def test_post_drop_argv(env: dict[str, str], limits: Rlimits, expected: list[str]) -> None:
    """Values travel in the environment under carrier names, never on the command line."""
    argv, carrier = post_drop_argv(FORK_SWITCH, "/w", env, ["/bin/x", "a"], limits)
    assert argv == expected
    assert list(carrier.values()) == list(env.values())
    assert not set(carrier) & set(env)
    assert all(value not in argv for value in env.values())


def test_no_env_step_in_root_dir_without_rule_variables() -> None:
    """A run in / whose rule sets no variables execs its command right after the drop, with
    the agent's own variables; with a rule variable or another directory, env comes first."""
    base = {"PATH": "/usr/bin", "UNITEDCRON_RUNID": "1-2-3-0-0"}
    argv, env = post_drop_argv(FORK_SWITCH, "/", base, ["/bin/x"], NO_LIMITS, rule_env=False)
    assert (argv, env) == (["/bin/x"], base)
    argv, _ = post_drop_argv(FORK_SWITCH, "/", base, ["/bin/x"], NO_LIMITS, rule_env=True)
    assert argv[0] == "/usr/bin/env"
    argv, _ = post_drop_argv(FORK_SWITCH, "/tmp", base, ["/bin/x"], NO_LIMITS, rule_env=False)
    assert argv[0] == "/usr/bin/env"
