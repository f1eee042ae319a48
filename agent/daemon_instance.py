"""One daemon instance: keep a process of its spec running, restarting it with backoff."""

from __future__ import annotations

import asyncio
import contextlib
import functools
from collections.abc import Callable
from typing import Protocol

import structlog

from agent.decisions import DaemonPolicy, Health, after_exit, exit_summary
from agent.handle import RunHandle
from agent.runs import RunTable
from protocol import statuses
from protocol.messages import RunFinished, RunSpec

REPLACED_REASON = "replaced: rule changed"
log = structlog.get_logger("agent.daemons")


class InstanceOwner(Protocol):
    """What an instance needs from its rule."""

    task_id: int

    @property
    def table(self) -> RunTable: ...

    @property
    def policy(self) -> DaemonPolicy: ...

    def new_handle(
        self, spec: RunSpec, index: int, on_started: Callable[[RunHandle], None]
    ) -> RunHandle:
        """A handle for the next start of instance `index`."""

    def instance_changed(self, instance: Instance, summary: str | None) -> None:
        """Up/down/health changed; `summary` is the exit text when it exited by itself."""

    def instance_ended(self, instance: Instance) -> None:
        """The instance's supervision is over (stopped, or cancelled at a forced exit)."""


class Instance:
    """Instance `index` of a daemon rule, supervised by its own task.

    Every start is a run of its own (RunStarted, RunFinished, a fresh run id made from the
    start time). An exit is followed by a pause (about 1 s, doubling to a cap, back to 1 s
    once the instance has stayed up `stable_s`), then a restart. `stop` ends the instance for
    good; `replace` restarts it at once with a new spec. Neither counts as a failure.
    """

    def __init__(self, owner: InstanceOwner, index: int, spec: RunSpec) -> None:
        self.owner = owner
        self.index = index
        self.spec = spec
        self.health = Health()
        self.up = False
        self.handle: RunHandle | None = None
        self._stop_reason = ""
        self._replacing = False
        self._generation = 0
        self._wake = asyncio.Event()
        self._up_at = 0.0
        self._stable: asyncio.TimerHandle | None = None
        self._starts: list[tuple[int, asyncio.Future[None]]] = []

    def start(self) -> None:
        """Start supervising (needs a running loop)."""
        task = self.owner.table.spawn(self._loop(), f"daemon {self.owner.task_id}/{self.index}")
        task.add_done_callback(lambda _: self._ended())

    def stop(self, reason: str) -> None:
        """Stop for good: the running process (if any) ends `killed` with `reason`."""
        if self._stop_reason:
            return
        self._stop_reason = reason
        self._wake.set()
        if self.handle is not None:
            self.handle.request_stop(statuses.KILLED, reason)

    def replace(self, spec: RunSpec) -> asyncio.Future[None]:
        """Restart now with `spec`; the future is done once a process of it has started
        (or the instance has ended). A spec that cannot start keeps the future pending."""
        self.spec = spec
        self._generation += 1
        started = asyncio.get_running_loop().create_future()
        self._starts.append((self._generation, started))
        self._replacing = True
        self._wake.set()
        if self.handle is not None:
            self.handle.request_stop(statuses.KILLED, REPLACED_REASON)
        return started

    async def _loop(self) -> None:
        """Start, wait for the exit, pause, start again, until stopped."""
        while not self._stop_reason:
            self._wake.clear()
            self._replacing = False
            handle = self.owner.new_handle(
                self.spec, self.index, functools.partial(self._on_up, self._generation)
            )
            self.handle = handle
            self.owner.table.add(handle)
            event = await self.owner.table.execute(handle)
            self.handle = None
            self._on_down(event, handle)
            if self._stop_reason or self._replacing:
                continue
            await self._pause(self.health.delay_s)

    async def _pause(self, delay_s: float) -> None:
        """The restart backoff; a stop or a replace cuts it short."""
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(delay_s):
                await self._wake.wait()

    def _on_up(self, generation: int, handle: RunHandle) -> None:
        """The process was spawned: it is up; arm the stable timer; wake a waiting roll."""
        loop = asyncio.get_running_loop()
        self.up = True
        self._up_at = loop.time()
        self._stable = loop.call_later(self.owner.policy.stable_s, self._became_stable)
        self._resolve_starts(generation)
        self.owner.instance_changed(self, None)

    def _on_down(self, event: RunFinished, handle: RunHandle) -> None:
        """The run ended: update health unless the agent itself stopped or replaced it."""
        uptime_s = 0.0
        if self.up:
            uptime_s = asyncio.get_running_loop().time() - self._up_at
            self.up = False
            self._cancel_stable()
        if self._stop_reason or self._replacing:
            self.owner.instance_changed(self, None)
            return
        requested = bool(handle.stop_status)  # a Kill from the center: restart, no failure
        self.health = after_exit(self.health, uptime_s, requested, self.owner.policy)
        summary = exit_summary(event)
        log.info(
            "daemon.exited",
            task_id=self.owner.task_id,
            instance=self.index,
            exit=summary,
            failures=self.health.failures,
            restart_in_s=round(self.health.delay_s, 3),
        )
        self.owner.instance_changed(self, summary)

    def _became_stable(self) -> None:
        """Up for `stable_s`: the backoff and the failure count start over."""
        self._stable = None
        if self.health != Health():
            self.health = Health()
            self.owner.instance_changed(self, None)

    def _cancel_stable(self) -> None:
        if self._stable is not None:
            self._stable.cancel()
            self._stable = None

    def _resolve_starts(self, generation: int | None) -> None:
        """Wake roll waiters whose spec is now running (all of them when None)."""
        keep = []
        for wanted, future in self._starts:
            if generation is None or wanted <= generation:
                if not future.done():
                    future.set_result(None)
            else:
                keep.append((wanted, future))
        self._starts = keep

    def _ended(self) -> None:
        """Supervision is over (stopped or cancelled): nothing of it may linger."""
        self.up = False
        self._cancel_stable()
        self._resolve_starts(None)
        self.owner.instance_ended(self)
