"""The floor under `bench_burst.py --real-only`: N gate shells released at once, no agent.

Run: .venv/bin/python bench/bench_gate_release.py [N]   (default 1000)

N `/bin/sh -c GATE_SCRIPT ... /bin/true` processes, exactly as agent/gate.py holds a prepared
run (the shared go pipe as stdin, a verdict socket as stderr, each in its own session), get
their verdicts, then one write to the go pipe releases them all. Printed: p50, p99 and max of
each exec stamp (the kernel's receive time of the byte sent right before exec) after the
release instant. What the agent adds on top of this is its own cost; this much is the
kernel's and the CPU's (each exec and exit of N processes on this machine's cores).
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time

import psutil
from _common import pct  # bench/ is on sys.path when run as a script

from agent.gate import Go, exec_stamp, gate_argv, verdict_socket


def release(n: int) -> list[float]:
    """Hold n gate shells, release them, return each exec's lateness (ms)."""
    go = Go(0)
    held: list[tuple[subprocess.Popen[bytes], socket.socket]] = []
    for _ in range(n):
        ours, theirs = verdict_socket()
        proc = subprocess.Popen(
            [*gate_argv(keep_pwd=False), "/bin/true"],
            stdin=go.read_fd,
            stdout=subprocess.DEVNULL,
            stderr=theirs.fileno(),
            start_new_session=True,
        )
        theirs.close()
        ours.setblocking(True)
        held.append((proc, ours))
    time.sleep(0.5)  # every shell waiting at its gate
    for _, ours in held:
        ours.send(b"\n")
    released_us = time.time_ns() // 1000
    go.open()
    stamps = [exec_stamp(ours) for _, ours in held]
    for proc, ours in held:
        proc.wait()
        ours.close()
    return [(s - released_us) / 1000 for s in stamps if s is not None]


def main(n: int) -> None:
    print(f"python {sys.version.split()[0]}, {psutil.cpu_count()} cores, load {os.getloadavg()}")
    late = release(n)
    print(f"{n} gate shells released by one write, no agent: release -> exec stamp")
    print(f"{'execed':>7} {'p50 ms':>8} {'p99 ms':>8} {'max ms':>8}")
    print(
        f"{len(late):>7} {pct(late, 0.5):>8.1f} {pct(late, 0.99):>8.1f} "
        f"{max(late, default=float('nan')):>8.1f}"
    )


if __name__ == "__main__":
    main(int(sys.argv[1]) if sys.argv[1:] else 1000)
