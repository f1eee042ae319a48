"""Per-run limits and the environment a rule may set: pure rules shared by center and agent."""

from __future__ import annotations

from dataclasses import dataclass

# The dynamic loader and glibc read these before a program's own code runs (preloads, iconv
# modules, tunables, locale and resolver files): a rule may not set them. A job that needs one
# sets it in its own command (`env LD_LIBRARY_PATH=… prog`), which runs as the rule's user.
LOADER_VARIABLES = frozenset(
    {
        "GCONV_PATH",
        "GETCONF_DIR",
        "GLIBC_TUNABLES",
        "HOSTALIASES",
        "LOCALDOMAIN",
        "LOCPATH",
        "MALLOC_TRACE",
        "NIS_PATH",
        "NLSPATH",
        "RESOLV_HOST_CONF",
        "RES_OPTIONS",
    }
)


def is_loader_variable(name: str) -> bool:
    """Whether the dynamic loader or glibc reads `name` at a program's start."""
    return name.startswith("LD_") or name in LOADER_VARIABLES


@dataclass(frozen=True, slots=True)
class Rlimits:
    """setrlimit values for one run, 0 = none: memory (address space) in MiB, CPU seconds,
    open files, processes of the run's user (RLIMIT_NPROC counts every process of that uid)."""

    mem_mb: int = 0
    cpu_s: int = 0
    nofile: int = 0
    nproc: int = 0

    def or_defaults(self, defaults: Rlimits) -> Rlimits:
        """Each limit the rule leaves at 0 takes the agent's default."""
        return Rlimits(
            self.mem_mb or defaults.mem_mb,
            self.cpu_s or defaults.cpu_s,
            self.nofile or defaults.nofile,
            self.nproc or defaults.nproc,
        )

    def __bool__(self) -> bool:
        return bool(self.mem_mb or self.cpu_s or self.nofile or self.nproc)


NO_LIMITS = Rlimits()

# Bounds of the rule fields: beyond them a limit is a typo, not a policy.
LIMIT_MAX = {"mem_mb": 1 << 24, "cpu_s": 366 * 86400, "nofile": 1 << 20, "nproc": 1 << 22}
# Below these a job cannot even start its interpreter: refuse them as field errors.
LIMIT_MIN = {"mem_mb": 16, "cpu_s": 1, "nofile": 8, "nproc": 1}


def limit_problem(field: str, value: int) -> str | None:
    """Why `value` is not a valid `limit_<field>` (0 is always valid: no limit)."""
    if value == 0:
        return None
    low, high = LIMIT_MIN[field], LIMIT_MAX[field]
    if not low <= value <= high:
        return f"must be 0 (no limit) or between {low} and {high}"
    return None


def limit_reason(limits: Rlimits, signum: int | None, output: bytes) -> str | None:
    """Pure: which limit most likely ended a failed run, from its signal and output; None if
    nothing points at one. SIGXCPU (and the KILL at the hard limit one second later) is the
    kernel's own word; the others show only as the job's complaint about a failed call."""
    if not limits:
        return None
    tail = output[-4096:]
    if limits.cpu_s and signum in (SIGXCPU, SIGKILL):
        return f"cpu limit of {limits.cpu_s} s reached"
    if limits.nproc and any(m in tail for m in _NPROC_SIGNS):
        return f"process limit of {limits.nproc} reached"
    if limits.nofile and b"Too many open files" in tail:
        return f"open files limit of {limits.nofile} reached"
    if limits.mem_mb and any(m in tail for m in _MEM_SIGNS):
        return f"memory limit of {limits.mem_mb} MiB reached"
    return None


SIGKILL, SIGXCPU = 9, 24
_NPROC_SIGNS = (b"Resource temporarily unavailable", b"Cannot fork", b"fork: retry")
_MEM_SIGNS = (b"Cannot allocate memory", b"MemoryError", b"out of memory", b"bad_alloc")
