"""Waiting on the center: a command carried out, a run's output followed until it ends."""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from typing import Any, TextIO

from ctl.client import Api
from ctl.errors import Failed
from ctl.progress import Progress
from ctl.words import say

# What the center writes into a run-now command's result (center/commands.py).
_STARTED = re.compile(r"started \d+ run\(s\): (.+)$")
Sleep = Callable[[float], None]


def wait_command(
    api: Api, command: dict[str, Any], wait_s: float, poll_s: float, progress: Progress
) -> dict[str, Any]:
    """Poll GET /commands/{id} until the leader carried it out (done or failed), bounded."""
    started = time.monotonic()
    while command.get("status") == "pending":
        waited = time.monotonic() - started
        if waited > wait_s:
            progress.clear()
            raise Failed(
                f"command {command['id']} still pending after {wait_s:.0f} s: is a center up?"
            )
        progress.show(
            say(
                "waiting for a center to carry out command %(id)s… %(seconds)s s",
                id=command["id"],
                seconds=f"{waited:.0f}",
            )
        )
        time.sleep(poll_s)
        command = api.get(f"/commands/{command['id']}")
    progress.clear()
    return command


def started_runids(result: str) -> list[str]:
    """The run ids a run-now command started, from its result text."""
    found = _STARTED.search(result or "")
    return [r.strip() for r in found.group(1).split(",") if r.strip()] if found else []


def follow_run(
    api: Api, run_id: int, out: TextIO, progress: Progress, poll_s: float
) -> dict[str, Any]:
    """Print the run's output as it comes (GET /runs/{id}/output from the offset reached) until
    the run has ended; return the run as it ended."""
    offset, started = 0, time.monotonic()
    while True:
        chunk = api.get(f"/runs/{run_id}/output", offset=offset)
        if chunk["text"]:
            progress.clear()
            out.write(chunk["text"])
            out.flush()
        offset = chunk["offset"]
        if chunk["final"]:
            break
        waited = f"{time.monotonic() - started:.0f}"
        status = say(chunk["status"])
        progress.show(
            say("run %(id)s: %(status)s, %(seconds)s s", id=run_id, status=status, seconds=waited)
        )
        time.sleep(poll_s)
    progress.clear()
    run: dict[str, Any] = api.get(f"/runs/{run_id}")
    if offset == 0 and run.get("result"):  # no live chunks kept (or purged): the final output
        out.write(run["result"])
        out.flush()
    return run
