"""Cheap load figures for pongs and registrations (psutil, never blocking)."""

from __future__ import annotations

import os

import psutil

from protocol.messages import Resources


def current_resources(procs: int, outbox: int) -> Resources:
    """CPU % since the previous call, memory %, 1-minute load, and the agent's own counts."""
    return Resources(
        cpu_pct=float(psutil.cpu_percent(None)),
        mem_pct=float(psutil.virtual_memory().percent),
        load1=os.getloadavg()[0],
        procs=procs,
        outbox=outbox,
    )
