"""Pure run-spec checks: argv, account and environment of one run, decided from arguments only.

Nothing here reads the clock, the password database or the file system itself: the caller
passes `lookup` (name -> Account) and `cwd_problem`, so every rule is a table test.
"""

from __future__ import annotations

import shlex
import stat
from collections.abc import Callable
from dataclasses import dataclass

from agent.errors import SpecError
from protocol.messages import Exec, RunRef, RunSpec
from protocol.rlimits import NO_LIMITS, Rlimits, is_loader_variable

CLEAN_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
SHELL = "/bin/sh"
ROOT_UID = 0


@dataclass(frozen=True, slots=True)
class Account:
    """One Unix user as the run will see it: passwd entry plus supplementary groups."""

    name: str
    uid: int
    gid: int
    home: str
    shell: str
    groups: tuple[int, ...] = ()


@dataclass(frozen=True, slots=True)
class UserPolicy:
    """Who this agent may run rules as; `own` is the account the agent itself runs as."""

    own: Account
    allow_root: bool = False
    allowed_users: tuple[str, ...] = ()
    allow_loader_env: bool = False
    default_limits: Rlimits = NO_LIMITS  # for the limits a rule leaves at 0

    @property
    def switches_user(self) -> bool:
        """A root agent runs rules as their run_user; any other runs them as itself."""
        return self.own.uid == ROOT_UID


@dataclass(frozen=True, slots=True)
class Launch:
    """Everything needed to spawn one run; `switch` says whether to drop to `account`."""

    argv: tuple[str, ...]
    env: dict[str, str]
    cwd: str
    account: Account
    switch: bool
    limits: Rlimits = NO_LIMITS
    rule_env: bool = False  # the rule sets variables of its own (not only the agent's)


Lookup = Callable[[str], Account | None]
# (path, account) -> None if the account may use path as its cwd, else the reason.
CwdCheck = Callable[[str, Account], str | None]


def split_command(command: str, shell: bool, params: str = "") -> tuple[str, ...]:
    """argv for the command: POSIX-shell word splitting, or `/bin/sh -c` when asked; a manual
    run's `params` are split the same way and appended (shell-quoted, for a shell command)."""
    if not command.strip():
        raise SpecError("command is empty")
    extra = _split_params(params)
    if shell:
        return (SHELL, "-c", " ".join([command, *map(shlex.quote, extra)]))
    try:
        argv = shlex.split(command)
    except ValueError as exc:
        raise SpecError(f"command cannot be split like a shell would: {exc}") from None
    if not argv:
        raise SpecError("command is empty after shell-like splitting")
    return (*argv, *extra)


def _split_params(params: str) -> list[str]:
    try:
        return shlex.split(params) if params else []
    except ValueError as exc:
        raise SpecError(f"params cannot be split like a shell would: {exc}") from None


def run_env(msg: Exec) -> dict[str, str]:
    """The rule's own variables with a manual run's overrides over them; SpecError for a name
    no rule could set (the center checks it; a center is not trusted to have done so)."""
    for name in msg.env_override:
        if not name.isidentifier() or not name.isascii() or name.startswith("UNITEDCRON_"):
            raise SpecError(f"env override {name[:40]!r} is not a variable a run may set")
    return msg.spec.env | msg.env_override


def choose_account(run_user: str, policy: UserPolicy, lookup: Lookup) -> tuple[Account, bool]:
    """The account a run uses and whether the agent must switch to it; SpecError if refused."""
    if not policy.switches_user:
        if run_user in ("", policy.own.name):
            return policy.own, False
        raise SpecError(
            f"run_user {run_user!r}: this agent runs as {policy.own.name!r} (not root) and can "
            f"only run rules as itself; clear run_user or run the agent as root"
        )
    if not run_user:
        raise SpecError("run_user is empty: set the rule's run_user (this agent runs as root)")
    account = lookup(run_user)
    if account is None:
        raise SpecError(f"run_user {run_user!r}: no such user on this agent")
    if account.uid == ROOT_UID and not policy.allow_root:
        raise SpecError(
            f"run_user {run_user!r} is root (uid 0), which this agent refuses; "
            f"set UNITEDCRON_AGENT_ALLOW_ROOT=true on the agent to allow it"
        )
    if policy.allowed_users and account.name not in policy.allowed_users:
        allowed = ", ".join(policy.allowed_users)
        raise SpecError(
            f"run_user {run_user!r} is not in this agent's UNITEDCRON_AGENT_ALLOWED_USERS "
            f"({allowed})"
        )
    return account, True


def build_env(
    account: Account,
    ref: RunRef,
    spec: RunSpec,
    shard: tuple[int, int],
    own: dict[str, str] | None = None,
) -> dict[str, str]:
    """A clean environment: login basics, the run's identity, then the rule's own `env` (or
    `own`: the rule's with a manual run's overrides)."""
    env = {
        "PATH": CLEAN_PATH,
        "HOME": account.home,
        "USER": account.name,
        "LOGNAME": account.name,
        "SHELL": account.shell or SHELL,
        "LANG": "C.UTF-8",
        "UNITEDCRON_RUNID": ref.runid,
        "UNITEDCRON_TASK_ID": str(ref.task_id),
        "UNITEDCRON_SCHED_US": str(ref.sched_us),
        "UNITEDCRON_ATTEMPT": str(ref.attempt),
        "UNITEDCRON_TRIGGER": ref.trigger,
        "UNITEDCRON_INSTANCE": str(ref.instance),
    }
    if ref.parent_runid:
        env["UNITEDCRON_PARENT_RUNID"] = ref.parent_runid  # the run this dependent one follows
    if ref.flow_runid:
        env["UNITEDCRON_FLOW_RUNID"] = ref.flow_runid
    index, total = shard
    if total > 0:
        env["UNITEDCRON_SHARD_INDEX"] = str(index)
        env["UNITEDCRON_SHARD_TOTAL"] = str(total)
    env.update(spec.env if own is None else own)
    return env


def may_search(mode: int, owner: int, group: int, account: Account) -> bool:
    """Whether `account` may enter a directory with this mode and ownership (no ACLs)."""
    if account.uid == ROOT_UID:
        return True
    if owner == account.uid:
        return bool(mode & stat.S_IXUSR)
    if group == account.gid or group in account.groups:
        return bool(mode & stat.S_IXGRP)
    return bool(mode & stat.S_IXOTH)


def may_execute(mode: int, owner: int, group: int, account: Account) -> bool:
    """Whether `account` may execute a regular file with this mode and ownership (no ACLs):
    root needs one execute bit, anyone else the bit of the class they fall in."""
    if account.uid == ROOT_UID:
        return bool(mode & (stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH))
    return may_search(mode, owner, group, account)


def choose_cwd(spec: RunSpec, account: Account, cwd_problem: CwdCheck) -> str:
    """The rule's cwd if the account may enter it, else home if it may, else `/`."""
    if spec.cwd:
        problem = cwd_problem(spec.cwd, account)
        if problem is not None:
            raise SpecError(f"cwd {spec.cwd!r}: {problem}")
        return spec.cwd
    if account.home and cwd_problem(account.home, account) is None:
        return account.home
    return "/"


def plan_launch(msg: Exec, policy: UserPolicy, lookup: Lookup, cwd_problem: CwdCheck) -> Launch:
    """Decide argv, account, env and cwd for one exec, or raise SpecError with the reason."""
    spec = msg.spec
    argv = split_command(spec.command, spec.shell, msg.params)
    account, switch = choose_account(spec.run_user, policy, lookup)
    own = run_env(msg)
    if not policy.allow_loader_env and (loader := sorted(filter(is_loader_variable, own))):
        raise SpecError(
            f"env: {', '.join(loader)} would be read by the dynamic loader; this agent refuses "
            "loader variables (UNITEDCRON_AGENT_ALLOW_LOADER_ENV)"
        )
    env = build_env(account, msg.ref, spec, (msg.shard_index, msg.shard_total), own)
    cwd = choose_cwd(spec, account, cwd_problem)
    limits = spec.limits.or_defaults(policy.default_limits)
    # The overrides are the rule's own variables too: they travel under carrier names past
    # the privilege drop (agent.userswitch), never in a root process's environment.
    return Launch(argv, env, cwd, account, switch, limits, bool(own))


def spawn_failure_reason(exc: BaseException, launch: Launch) -> str:
    """A clear reason for a spawn that failed before the command ran."""
    filename = getattr(exc, "filename", None)
    if isinstance(exc, FileNotFoundError):
        if filename == launch.cwd:
            return f"cwd {launch.cwd!r}: no such directory"
        return f"command {launch.argv[0]!r}: not found (PATH={CLEAN_PATH})"
    if isinstance(exc, PermissionError):
        what = f"cwd {launch.cwd!r}" if filename == launch.cwd else f"command {launch.argv[0]!r}"
        return f"{what}: permission denied for user {launch.account.name!r}"
    if isinstance(exc, NotADirectoryError):
        return f"cwd {launch.cwd!r}: not a directory"
    strerror = getattr(exc, "strerror", None) or str(exc) or type(exc).__name__
    return f"cannot start {launch.argv[0]!r}: {strerror}"
