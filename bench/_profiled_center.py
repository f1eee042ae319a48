"""`unitedcron center` with a statistical profiler, on from SIGUSR1, dumped at SIGUSR2.

Run: python bench/_profiled_center.py OUT   (configured by UNITEDCRON_* as the center is)
bench_steady.py --profile OUT starts the center this way and samples only its window, so the
start-up (loading rules, first plans) does not drown the steady state. An ITIMER_PROF timer
(process CPU time) raises SIGPROF every SAMPLE_S of CPU; the handler, in the main thread,
notes the stack it interrupted. cProfile's per-call cost distorts an event loop making tens
of thousands of calls a second; this costs one stack walk per sample. OUT gets one line per
distinct stack, `count;root;…;leaf`; OUT.threads each thread's CPU seconds in the window.
"""

from __future__ import annotations

import gc
import signal
import sys
import threading
import time
from collections import Counter
from types import FrameType

import psutil

from center.cli import app

SAMPLE_S = 0.001


class Sampler:
    def __init__(self, out: str) -> None:
        self.out, self.stacks = out, Counter[str]()
        self.cpu0: dict[int, float] = {}
        # The cyclic collector's passes in the window: generation -> [count, seconds].
        self.gc_runs: dict[int, list[float]] = {0: [0, 0.0], 1: [0, 0.0], 2: [0, 0.0]}
        self._gc_t0 = 0.0
        self._on = False

    def on_gc(self, phase: str, info: dict[str, int]) -> None:
        if not self._on:
            return
        if phase == "start":
            self._gc_t0 = time.thread_time()
            return
        tally = self.gc_runs[info["generation"]]
        tally[0] += 1
        tally[1] += time.thread_time() - self._gc_t0

    def start(self, _sig: int, _frame: FrameType | None) -> None:
        self.cpu0 = _thread_cpu()
        self._on = True
        gc.callbacks.append(self.on_gc)
        signal.signal(signal.SIGPROF, self.sample)
        signal.setitimer(signal.ITIMER_PROF, SAMPLE_S, SAMPLE_S)

    def sample(self, _sig: int, frame: FrameType | None) -> None:
        self.stacks[_stack(frame)] += 1

    def dump(self, _sig: int, _frame: FrameType | None) -> None:
        signal.setitimer(signal.ITIMER_PROF, 0, 0)
        self._on = False
        main = threading.main_thread().native_id
        cpu = {t: s - self.cpu0.get(t, 0.0) for t, s in _thread_cpu().items()}
        with open(self.out + ".threads", "w") as f:
            for tid, seconds in sorted(cpu.items(), key=lambda kv: -kv[1]):
                f.write(f"{tid} {seconds:.2f} s{' (main)' if tid == main else ''}\n")
            for gen, (count, seconds) in self.gc_runs.items():
                f.write(f"gc generation {gen}: {count:.0f} passes, {seconds:.2f} s\n")
        with open(self.out, "w") as f:
            for stack, count in self.stacks.most_common():
                f.write(f"{count};{stack}\n")


def _thread_cpu() -> dict[int, float]:
    return {t.id: t.user_time + t.system_time for t in psutil.Process().threads()}


def _stack(frame: FrameType | None) -> str:
    names = []
    while frame is not None:
        code = frame.f_code
        names.append(f"{code.co_filename.rsplit('/', 1)[-1]}:{code.co_name}")
        frame = frame.f_back
    names.reverse()
    if names and names[-1].endswith("run_until_complete"):
        return "<loop>"  # in C: uvloop's own work, or another thread's CPU
    return ";".join(names)


def main(out: str) -> None:
    sampler = Sampler(out)
    signal.signal(signal.SIGUSR1, sampler.start)
    signal.signal(signal.SIGUSR2, sampler.dump)
    app(["center"], standalone_mode=False)


if __name__ == "__main__":
    main(sys.argv[1])
