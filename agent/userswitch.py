"""How the agent starts a run as its user: the privilege drop (setpriv, or CPython's own fork),
then, already as that user, the run's limits, working directory and environment."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import os
import stat
import subprocess
from collections.abc import Mapping, Sequence

from agent.errors import AgentError
from agent.runspec import Account
from protocol.rlimits import Rlimits

SETPRIV_PATHS = ("/usr/bin/setpriv", "/bin/setpriv")
ENV_PATHS = ("/usr/bin/env", "/bin/env")
PRLIMIT_PATHS = ("/usr/bin/prlimit", "/bin/prlimit")
# The rule's environment travels to the post-drop `env` under these names (env -S expands
# them), so that no process running as root ever has it under its own names (LD_PRELOAD…),
# and its values never appear on a command line (which every local user can read).
CARRIER = "UNITEDCRON_ENV_"
PROBE_UID = 65534  # any unprivileged id shows that setpriv can drop to it
PROBE_TIMEOUT_S = 10.0
# The launchers' own exit statuses when they cannot go on: setpriv 126/127, env 125-127 (125:
# it could not enter the directory), prlimit 1.
LAUNCHER_FAILED_CODES = (1, 125, 126, 127)
SETPRIV_PREFIX = b"setpriv: "

SETPRIV = "setpriv"
FORK = "fork"
NONE = "none"


@dataclasses.dataclass(frozen=True, slots=True)
class UserSwitch:
    """The method in use (`setpriv`, `fork`, or `none` for an agent that is not root),
    setpriv's path, and why setpriv is not used when it could have been.

    CPython 3.11 spawns with vfork, which costs the same whatever the agent's size, unless it is
    asked to change the child's credentials (`user=`, `group=`, `extra_groups=`): then it forks,
    copying the page tables of the whole agent for every run. Exec'ing util-linux `setpriv`
    instead keeps the vfork (the agent itself changes no credential): setpriv sets the uid, the
    gid and the supplementary groups, clears inheritable (hence ambient) capabilities, then execs
    the command — the same pid, session and process group. It changes the uid first and keeps
    CAP_SETGID through it (PR_SET_KEEPCAPS) to set the gid and groups next; any failure exits
    before the command runs, and the command starts with exactly the user's credentials and, like
    after CPython's switch, no capability beyond what its own file grants.

    Because setpriv (not CPython) then looks up the command, the runner resolves and checks it
    first (`accounts.resolve_command`), so a missing or forbidden command fails before a process
    exists, with the same reason as with a fork. What still differs: the command's argv[0] is
    the resolved path; an executable text file without `#!` runs under /bin/sh (setpriv uses
    execvp) where a fork refuses it (Exec format error); a command that changes between the
    check and the exec ends `failed` with setpriv's message as the reason.
    """

    method: str
    setpriv: str = ""
    why_not_setpriv: str = ""
    env: str = ENV_PATHS[0]
    prlimit: str = PRLIMIT_PATHS[0]


FORK_SWITCH = UserSwitch(FORK)


def binary_problem(path: str) -> str | None:
    """Why `path` is not safe for root to exec (missing, not root's, writable by others)."""
    try:
        st = os.stat(path)
    except OSError as exc:
        return f"{path}: {exc.strerror or type(exc).__name__}"
    if not stat.S_ISREG(st.st_mode) or not st.st_mode & stat.S_IXUSR:
        return f"{path}: not an executable file"
    if st.st_uid != 0 or st.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
        return f"{path}: not owned by root or writable by others"
    return None


def find_setpriv() -> tuple[str, str | None]:
    """(path, None) for the first usable setpriv, else ("", why none is usable)."""
    problems = []
    for path in SETPRIV_PATHS:
        problem = binary_problem(path)
        if problem is None:
            return path, None
        problems.append(problem)
    return "", "; ".join(problems)


async def probe_setpriv(path: str) -> str | None:
    """Check that setpriv can drop to an unprivileged uid here; None if it can, else why."""
    argv = [
        path,
        f"--reuid={PROBE_UID}",
        f"--regid={PROBE_UID}",
        "--clear-groups",
        "--inh-caps=-all",
        "--",
        path,
        "--dump",
    ]
    try:
        proc = await asyncio.create_subprocess_exec(
            *argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
        )
    except OSError as exc:
        return f"{path}: {exc.strerror or exc}"
    try:
        async with asyncio.timeout(PROBE_TIMEOUT_S):
            out, _ = await proc.communicate()
    except TimeoutError:
        with contextlib.suppress(ProcessLookupError):
            proc.kill()
        await proc.wait()
        return f"{path}: no answer within {PROBE_TIMEOUT_S:g} s"
    if proc.returncode != 0 or f"uid: {PROBE_UID}\n".encode() not in out:
        first = out.decode(errors="replace").strip().splitlines()[:1]
        return f"{path} cannot switch users here: {first[0] if first else proc.returncode}"
    return None


async def choose_user_switch(setting: str, switches_user: bool) -> UserSwitch:
    """The method for this agent; AgentError if `setpriv` was required and cannot work, or if
    the post-drop tools (GNU env with -C and -S, util-linux prlimit) are missing."""
    tools = {"env": _find_tool(ENV_PATHS), "prlimit": _find_tool(PRLIMIT_PATHS)}
    problem = await probe_env(tools["env"])
    if problem is not None:
        raise AgentError(f"cannot start runs: {problem}")
    if not switches_user:
        return UserSwitch(NONE, **tools)
    if setting == FORK:
        return UserSwitch(FORK, why_not_setpriv="UNITEDCRON_AGENT_USER_SWITCH=fork", **tools)
    path, problem = find_setpriv()
    if not problem:
        problem = await probe_setpriv(path)
    if problem is None:
        return UserSwitch(SETPRIV, path, **tools)
    if setting == SETPRIV:
        raise AgentError(f"UNITEDCRON_AGENT_USER_SWITCH=setpriv: {problem}")
    return UserSwitch(FORK, why_not_setpriv=problem, **tools)


def _find_tool(paths: tuple[str, ...]) -> str:
    """The first of `paths` that root may safely exec, else the first (its problem is found
    when it is used)."""
    return next((p for p in paths if binary_problem(p) is None), paths[0])


async def probe_env(path: str) -> str | None:
    """Check that `path` is an env that can change directory and expand -S strings."""
    problem = binary_problem(path)
    if problem is not None:
        return problem
    argv = [path, "-i", "-C", "/", "-S", "A=${B}", path]
    try:
        proc = await asyncio.create_subprocess_exec(
            *argv,
            env={"B": "x y"},
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
        )
        async with asyncio.timeout(PROBE_TIMEOUT_S):
            out, _ = await proc.communicate()
    except (OSError, TimeoutError) as exc:
        return f"{path}: {exc}"
    if proc.returncode != 0 or out != b"A=x y\n":
        return f"{path} is not GNU env with -C and -S (coreutils 8.30 or newer)"
    return None


def post_drop_argv(
    switch: UserSwitch,
    cwd: str,
    env: Mapping[str, str],
    argv: list[str],
    limits: Rlimits,
    *,
    rule_env: bool = True,
    gate: Sequence[str] = (),
) -> tuple[list[str], dict[str, str]]:
    """Pure: (argv, environment) of what runs as the run's user before its command: prlimit
    sets the limits, env enters `cwd` and sets `env`, then `gate` (a prepared run's wait,
    agent.gate), then the command. The returned environment holds the values under carrier
    names only; `argv[0]` must be a path.

    A run in `/` whose rule sets no variable of its own needs no `env` step (one exec less
    per run): the agent's own variables (PATH, HOME, UNITEDCRON_RUNID…) are safe before the
    drop, and `/` is entered as root with nothing to gain."""
    prefix = [switch.prlimit, *prlimit_options(limits), "--"] if limits else []
    if not rule_env and cwd == "/":
        return [*prefix, *gate, *argv], dict(env)
    carrier = {f"{CARRIER}{i}": value for i, value in enumerate(env.values())}
    assigns = " ".join(f"{name}=${{{CARRIER}{i}}}" for i, name in enumerate(env))
    out = [
        *prefix,
        switch.env,
        "-i",
        "-C",
        cwd,
        *(["-S", assigns] if assigns else []),
        *gate,
        *argv,
    ]
    return out, carrier


def prlimit_options(limits: Rlimits) -> list[str]:
    """prlimit's options for `limits`; CPU gets a hard limit 1 s above the soft one, so the
    job first gets SIGXCPU and then, if it ignores that, SIGKILL."""
    out = []
    if limits.mem_mb:
        out.append(f"--as={limits.mem_mb << 20}")
    if limits.cpu_s:
        out.append(f"--cpu={limits.cpu_s}:{limits.cpu_s + 1}")
    if limits.nofile:
        out.append(f"--nofile={limits.nofile}")
    if limits.nproc:
        out.append(f"--nproc={limits.nproc}")
    return out


def setpriv_argv(setpriv: str, account: Account, argv: list[str]) -> list[str]:
    """setpriv's command line to run `argv` (a resolved path first) as `account`."""
    groups = (
        f"--groups={','.join(str(g) for g in account.groups)}"
        if account.groups
        else "--clear-groups"
    )
    return [
        setpriv,
        f"--reuid={account.uid}",
        f"--regid={account.gid}",
        groups,
        "--inh-caps=-all",
        "--",
        *argv,
    ]


def launcher_failure(code: int | None, output: bytes, switch: UserSwitch) -> str | None:
    """The message of setpriv, prlimit or env if one of them, not the command, ended the run
    (a directory the user may not enter, a limit it may not set, a race after the checks)."""
    if code not in LAUNCHER_FAILED_CODES:
        return None
    first = output.split(b"\n", 1)[0]
    prefixes = (SETPRIV_PREFIX, f"{switch.env}: ".encode(), f"{switch.prlimit}: ".encode())
    if not first.startswith(prefixes):
        return None
    return first.decode(errors="replace")
