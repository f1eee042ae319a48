"""Per-run limits: which limit a failed run's signal or complaint points at, and the bounds."""

from __future__ import annotations

import pytest

from protocol.rlimits import NO_LIMITS, Rlimits, is_loader_variable, limit_problem, limit_reason

ALL = Rlimits(mem_mb=64, cpu_s=2, nofile=16, nproc=5)


@pytest.mark.parametrize(
    ("limits", "signum", "output", "expected"),
    [
        (ALL, 24, b"", "cpu limit of 2 s reached"),  # SIGXCPU at the soft limit
        (ALL, 9, b"", "cpu limit of 2 s reached"),  # KILL at the hard limit
        (Rlimits(nproc=5), 9, b"", None),  # a KILL without a CPU limit is not one
        (ALL, None, b"sh: 1: Cannot fork\n", "process limit of 5 reached"),
        (ALL, None, b"open: Too many open files", "open files limit of 16 reached"),
        (ALL, None, b"MemoryError\n", "memory limit of 64 MiB reached"),
        (ALL, None, b"exited for its own reasons", None),
        (NO_LIMITS, 24, b"Cannot fork", None),  # no limit set: nothing to name
    ],
)
def test_limit_reason(limits, signum, output, expected):
    """A failed run names the limit its signal or output points at, and only a set one."""
    assert limit_reason(limits, signum, output) == expected


@pytest.mark.parametrize(
    ("field", "value", "ok"),
    [("nproc", 0, True), ("nproc", 1, True), ("mem_mb", 8, False), ("cpu_s", -1, False)],
)
def test_limit_bounds(field, value, ok):
    """0 means no limit; otherwise a value within the field's bounds."""
    assert (limit_problem(field, value) is None) is ok


def test_loader_variables():
    """The loader's variables are recognised; ordinary ones are not."""
    assert is_loader_variable("LD_PRELOAD") and is_loader_variable("GCONV_PATH")
    assert not is_loader_variable("LANG") and not is_loader_variable("OLD_PRELOAD")
