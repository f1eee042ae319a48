"""The center's periodic loops and background writes: retried with backoff, drained at the end."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable

import structlog

from center.metrics import CenterMetrics

log = structlog.get_logger("center")
MAX_BACKOFF_S = 5.0
Step = Callable[[], Awaitable[None]]
Pause = Callable[[], Awaitable[None]]


class Wake:
    """What a loop waits on between steps instead of a fixed tick: an event (work arrived)
    or the time the loop itself says; `steps` counts the waits that ended, for tests."""

    def __init__(self) -> None:
        self._event = asyncio.Event()
        self._woken = False
        self.steps = 0

    def set(self) -> None:
        self._woken = True
        self._event.set()

    async def wait(self, timeout_s: float) -> bool:
        """Until `set` (at once if set since the last wait) or `timeout_s`, then re-armed;
        True if `set` ended it. The timeout sets the event itself: no task cancelled and
        exception raised each time."""
        if timeout_s > 0 and not self._event.is_set():
            timer = asyncio.get_running_loop().call_later(timeout_s, self._event.set)
            try:
                await self._event.wait()
            finally:
                timer.cancel()
        woken, self._woken = self._woken, False
        self._event.clear()
        self.steps += 1
        return woken


def transient_errors() -> tuple[type[BaseException], ...]:
    """What a database outage raises: retried with backoff, never fatal."""
    from sqlalchemy.exc import DBAPIError

    return (DBAPIError, OSError, ConnectionError)


async def every(
    name: str,
    step: Step,
    every_s: float,
    metrics: CenterMetrics,
    *,
    backoff: bool = True,
    pause: Pause | None = None,
) -> None:
    """Run `step` every `every_s` forever (or, with `pause`, after each awaited `pause()`: a
    loop woken by events); a database outage is logged and retried, with backoff unless
    `backoff` is off (the lease: a renewal missed for backoff costs the lease).
    Anything else (NotLeader, a bug) ends the loop and is raised to its owner."""
    failures = 0
    transient = transient_errors()
    while True:
        try:
            await step()
            failures = 0
        except transient as exc:
            failures += 1
            metrics.store_errors.labels(loop=name).inc()
            log.warning(
                "center.store_unavailable",
                loop=name,
                attempt=failures,
                reason=str(exc).splitlines()[0][:300],
            )
        backoff_s = min(every_s * 2**failures, MAX_BACKOFF_S) if failures and backoff else 0
        if pause is not None and not failures:
            await pause()
        else:
            await asyncio.sleep(backoff_s or every_s)


class Background:
    """Writes started without waiting for them (status marks, notices): kept until done,
    a database outage logged; `drain` waits for the rest at the end of their owner."""

    def __init__(self) -> None:
        self._tasks: set[asyncio.Task[None]] = set()

    def __call__(self, work: Awaitable[None]) -> None:
        task = asyncio.create_task(self._guarded(work))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    @staticmethod
    async def _guarded(work: Awaitable[None]) -> None:
        try:
            await work
        except transient_errors() as exc:
            log.warning("center.store_unavailable", loop="background", reason=str(exc)[:300])

    async def drain(self, timeout_s: float) -> None:
        """Wait up to `timeout_s` for the writes in flight, then cancel what is left."""
        tasks = list(self._tasks)
        if not tasks:
            return
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(timeout_s):
                await asyncio.gather(*tasks, return_exceptions=True)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
