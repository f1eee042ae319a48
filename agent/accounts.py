"""Unix accounts as the runner needs them: passwd entries, groups, and cwd access checks."""

from __future__ import annotations

import os
import pwd
import time
from collections.abc import Callable
from pathlib import Path
from stat import S_ISDIR, S_ISREG

from agent.errors import SpecError
from agent.runspec import Account, may_execute, may_search

MISSING = "missing"
DENIED = "denied"


def lookup_account(name: str) -> Account | None:
    """The passwd entry and supplementary groups of `name`, or None if there is no such user."""
    try:
        pw = pwd.getpwnam(name)
    except KeyError:
        return None
    groups = tuple(os.getgrouplist(pw.pw_name, pw.pw_gid))
    return Account(pw.pw_name, pw.pw_uid, pw.pw_gid, pw.pw_dir, pw.pw_shell, groups)


class AccountCache:
    """Accounts looked up once per `ttl_s` (a user not found, for `miss_ttl_s`): with LDAP or
    sssd behind NSS a lookup can take milliseconds, and a burst of a thousand runs as one user
    must not make a thousand of them on the loop that answers pings. Called from threads."""

    def __init__(
        self,
        lookup: Callable[[str], Account | None] = lookup_account,
        ttl_s: float = 5.0,
        miss_ttl_s: float = 1.0,
    ) -> None:
        self._lookup, self._ttl_s, self._miss_ttl_s = lookup, ttl_s, miss_ttl_s
        self._entries: dict[str, tuple[float, Account | None]] = {}

    def cached(self, name: str) -> bool:
        """Whether `name` can be answered without a lookup now."""
        entry = self._entries.get(name)
        return entry is not None and entry[0] > time.monotonic()

    def __call__(self, name: str) -> Account | None:
        entry = self._entries.get(name)
        now = time.monotonic()
        if entry is not None and entry[0] > now:
            return entry[1]
        account = self._lookup(name)
        ttl_s = self._ttl_s if account is not None else self._miss_ttl_s
        if len(self._entries) > MAX_CACHED:
            self._entries.clear()
        self._entries[name] = (now + ttl_s, account)
        return account


MAX_CACHED = 10_000


def cwd_problem(path: str, account: Account) -> str | None:
    """Why `account` cannot use `path` as its cwd, or None. Checked here because CPython's
    child calls chdir() before it drops privileges: root would enter any directory."""
    if not os.path.isabs(path):
        return "must be an absolute path"
    for candidate in dict.fromkeys((path, os.path.realpath(path))):
        parts = Path(candidate).parts
        for depth in range(1, len(parts) + 1):
            prefix = os.path.join(*parts[:depth])
            try:
                st = os.stat(prefix)
            except FileNotFoundError:
                return "no such directory"
            except OSError as exc:
                return exc.strerror or type(exc).__name__
            if not S_ISDIR(st.st_mode):
                return "not a directory"
            if not may_search(st.st_mode, st.st_uid, st.st_gid, account):
                return f"permission denied for user {account.name!r}"
    return None


def resolve_command(name: str, path_env: str, cwd: str, account: Account) -> str:
    """The file `name` would run as, found as CPython's exec finds it (a name with a slash is
    taken relative to `cwd`, any other is searched in `path_env`), checked for `account`.
    SpecError with the reason a fork would have given if the command cannot run."""
    if "/" in name:
        candidates = [os.path.join(cwd, name)]
    else:
        candidates = [os.path.join(d or cwd, name) for d in path_env.split(os.pathsep)]
    denied = False
    for path in candidates:
        problem = _exec_problem(path, account)
        if problem is None:
            return path
        denied = denied or problem == DENIED
    if denied:
        raise SpecError(f"command {name!r}: permission denied for user {account.name!r}")
    raise SpecError(f"command {name!r}: not found (PATH={path_env})")


def _exec_problem(path: str, account: Account) -> str | None:
    """MISSING, DENIED, or None if `account` may execute the file at `path`. Directories first,
    as the kernel walks them: a file under a directory the user cannot search is denied."""
    # Every directory on the way, as written and as resolved (a symlinked /bin is /usr/bin).
    folders: dict[str, None] = {}
    for target in (path, os.path.realpath(path)):
        parts = Path(target).parts[:-1]
        folders.update((os.path.join(*parts[:depth]), None) for depth in range(1, len(parts) + 1))
    for folder in folders:
        try:
            st = os.stat(folder)
        except OSError:
            return MISSING
        if not may_search(st.st_mode, st.st_uid, st.st_gid, account):
            return DENIED
    try:
        st = os.stat(path)
    except OSError:
        return MISSING
    if not S_ISREG(st.st_mode) or not may_execute(st.st_mode, st.st_uid, st.st_gid, account):
        return DENIED
    return None


def own_account() -> Account:
    """The account this agent runs as (a uid without a passwd entry gets a stand-in)."""
    uid, gid = os.getuid(), os.getgid()
    try:
        pw = pwd.getpwuid(uid)
    except KeyError:
        return Account(str(uid), uid, gid, "/", "/bin/sh", tuple(os.getgroups()))
    return Account(pw.pw_name, uid, gid, pw.pw_dir, pw.pw_shell, tuple(os.getgroups()))
