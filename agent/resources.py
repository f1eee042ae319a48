"""Cheap load figures for pongs and registrations (psutil, never blocking), and the agent's own
admission check: past its load, memory or process limit it asks for no new work."""

from __future__ import annotations

import os
from dataclasses import dataclass

import psutil

from protocol.messages import Resources


@dataclass(frozen=True, slots=True)
class Admission:
    """The agent's limits for new work (0: no limit)."""

    max_load_per_core: float = 0.0
    min_free_mem_mb: int = 0
    max_processes: int = 0


def refusal(limits: Admission, *, load1: float, cores: int, free_mem_mb: float, procs: int) -> str:
    """Pure: why this agent should get no new placements or strategy runs ("" when none)."""
    per_core = load1 / max(cores, 1)
    if limits.max_load_per_core and per_core > limits.max_load_per_core:
        return (
            f"load {per_core:.2f} per core is above UNITEDCRON_AGENT_MAX_LOAD "
            f"{limits.max_load_per_core:g}"
        )
    if limits.min_free_mem_mb and free_mem_mb < limits.min_free_mem_mb:
        return (
            f"{free_mem_mb:.0f} MB free is below UNITEDCRON_AGENT_MIN_FREE_MEM_MB "
            f"{limits.min_free_mem_mb}"
        )
    if limits.max_processes and procs >= limits.max_processes:
        return f"{procs} processes: at UNITEDCRON_AGENT_MAX_PROCESSES {limits.max_processes}"
    return ""


def current_resources(procs: int, outbox: int, limits: Admission | None = None) -> Resources:
    """CPU % since the previous call, memory %, 1-minute load, the agent's own counts, and
    whether it refuses new work."""
    memory = psutil.virtual_memory()
    load1 = os.getloadavg()[0]
    refusing = refusal(
        limits or Admission(),
        load1=load1,
        cores=os.cpu_count() or 1,
        free_mem_mb=memory.available / 1e6,
        procs=procs,
    )
    return Resources(
        cpu_pct=float(psutil.cpu_percent(None)),
        mem_pct=float(memory.percent),
        load1=load1,
        procs=procs,
        outbox=outbox,
        refusing=refusing,
    )
