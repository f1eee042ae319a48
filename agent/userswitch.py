"""How a root agent starts a run as its user: exec through setpriv, or CPython's own fork."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import os
import stat
import subprocess

from agent.errors import AgentError
from agent.runspec import Account

SETPRIV_PATHS = ("/usr/bin/setpriv", "/bin/setpriv")
PROBE_UID = 65534  # any unprivileged id shows that setpriv can drop to it
PROBE_TIMEOUT_S = 10.0
# setpriv's own exit statuses when it cannot run the command (127: cannot set privileges too).
SETPRIV_FAILED_CODES = (126, 127)
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
    """The method for this agent; AgentError if `setpriv` was required and cannot work."""
    if not switches_user:
        return UserSwitch(NONE)
    if setting == FORK:
        return UserSwitch(FORK, why_not_setpriv="UNITEDCRON_AGENT_USER_SWITCH=fork")
    path, problem = find_setpriv()
    if not problem:
        problem = await probe_setpriv(path)
    if problem is None:
        return UserSwitch(SETPRIV, path)
    if setting == SETPRIV:
        raise AgentError(f"UNITEDCRON_AGENT_USER_SWITCH=setpriv: {problem}")
    return UserSwitch(FORK, why_not_setpriv=problem)


def setpriv_argv(
    setpriv: str, account: Account, executable: str, argv: tuple[str, ...]
) -> list[str]:
    """setpriv's command line to run `argv` (its program resolved to `executable`) as `account`."""
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
        executable,
        *argv[1:],
    ]


def setpriv_failure(code: int | None, output: bytes) -> str | None:
    """setpriv's own message if it, not the command, ended the run (a race after the checks)."""
    if code not in SETPRIV_FAILED_CODES or not output.startswith(SETPRIV_PREFIX):
        return None
    return output.split(b"\n", 1)[0].decode(errors="replace")
