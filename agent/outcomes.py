"""The RunFinished of a run: from its process's exit, or for one that never got a process."""

from __future__ import annotations

import dataclasses
import signal

import structlog

from agent.handle import RunHandle
from protocol import statuses
from protocol.messages import Exec, RunFinished

log = structlog.get_logger("agent.runner")  # the run.finished line keeps its logger name


def exit_outcome(returncode: int, handle: RunHandle) -> tuple[str, int | None, int | None, str]:
    """(status, code, signal, reason) for a finished process."""
    code = returncode if returncode >= 0 else None
    signum = -returncode if returncode < 0 else None
    if handle.stop_status:
        return handle.stop_status, code, signum, handle.stop_reason
    if returncode == 0:
        return statuses.SUCCESS, 0, None, ""
    if signum is not None:
        return statuses.FAILED, None, signum, f"killed by signal {signal_name(signum)}"
    return statuses.FAILED, code, None, f"exited with code {code}"


def signal_name(signum: int) -> str:
    """SIGTERM for 15; the number itself if it names no signal."""
    try:
        return signal.Signals(signum).name
    except ValueError:
        return str(signum)


def not_started(msg: Exec, status: str, reason: str, end_us: int) -> RunFinished:
    """The final event of a run that never got a process (refused, skipped, failed spawn)."""
    return RunFinished(
        seq=0,
        ref=msg.ref,
        status=status,
        end_us=end_us,
        reason=reason,
        run_user=msg.spec.run_user,
    )


def abandoned(handle: RunHandle, reason: str, end_us: int) -> RunFinished:
    """The final event of a run whose supervision was cut short (forced agent exit)."""
    return dataclasses.replace(
        not_started(handle.msg, statuses.KILLED, reason, end_us),
        start_us=handle.start_us if handle.pid else 0,
        pid=handle.pid,
    )


def log_finished(event: RunFinished) -> None:
    """The one log line per run outcome."""
    duration_ms = (event.end_us - event.start_us) // 1000 if event.start_us else 0
    with structlog.contextvars.bound_contextvars(runid=event.ref.runid, task_id=event.ref.task_id):
        log.info(
            "run.finished",
            status=event.status,
            code=event.code,
            signal=event.signal,
            duration_ms=duration_ms,
            reason=event.reason or None,
        )
