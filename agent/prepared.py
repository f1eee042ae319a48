"""Runs held until their second get their process ready ahead: forked, held at a gate."""

from __future__ import annotations

import asyncio
import heapq
import itertools
import subprocess
from collections.abc import Awaitable, Callable

import structlog
from prometheus_client import Counter

from agent.decisions import PrepareStep, decide_prepare
from agent.errors import SpecError
from agent.gate import Go, Prepared
from agent.spawned import PREPARE_THREADS
from protocol.clock import now_us
from protocol.messages import Exec

# Each held process costs the agent three descriptors (verdict socket, output pipe, pidfd).
FDS_PER_HELD = 3
FD_RESERVE = 256  # left for connections, the outbox and runs spawned the usual way
# Preparations under way at once: one per spawning thread (agent.spawned).
PREPARE_WORKERS = PREPARE_THREADS
log = structlog.get_logger("agent.prepared")


def fd_room(soft_nofile: int) -> int:
    """How many processes the open-file limit lets the agent hold at once."""
    return max(0, (soft_nofile - FD_RESERVE) // FDS_PER_HELD)


class Preparer:
    """Prepares held runs one at a time, earliest due first, and keeps their processes until
    the run starts (`take`) or is cancelled, replaced or refused (`discard`).

    A few workers (one per spawning thread) prepare in turn, so that the loop is never busy
    with many spawns at once when a gate is due to open. A run whose preparation is not
    ready at its second is not waited for: it is spawned as before (counted in
    `held_starts`), and the late process is discarded.
    """

    def __init__(
        self,
        prepare: Callable[[Exec, Go], Awaitable[Prepared]],
        *,
        ahead_us: int,
        max_held: int,
        held_starts: Counter | None = None,
    ) -> None:
        self._prepare = prepare
        self._ahead_us = ahead_us
        self._max_held = max_held
        self._held_starts = held_starts
        self._wanted: dict[str, Exec] = {}  # offered, not yet taken or discarded
        self._queue: list[tuple[int, int, Exec]] = []
        self._order = itertools.count()
        self._held: dict[str, Prepared] = {}
        self._gos: dict[int, Go] = {}
        self._wake = asyncio.Event()
        self._preparing = 0
        self._workers: set[asyncio.Task[None]] = set()

    @property
    def held(self) -> int:
        """Processes waiting at their gate."""
        return len(self._held)

    def pid(self, runid: str) -> int | None:
        """The pid held for a run, if its process is ready."""
        prepared = self._held.get(runid)
        return prepared.pid if prepared is not None else None

    def offer(self, msg: Exec) -> None:
        """A run held until its second: prepare it when its time comes near."""
        if self._max_held <= 0 or self._ahead_us <= 0:
            return
        self._wanted[msg.ref.runid] = msg
        heapq.heappush(self._queue, (msg.ref.sched_us, next(self._order), msg))
        self._wake.set()
        while len(self._workers) < PREPARE_WORKERS:
            worker = asyncio.create_task(self._work(), name="prepare runs")
            self._workers.add(worker)
            worker.add_done_callback(self._workers.discard)

    def take(self, msg: Exec) -> Prepared | None:
        """The process prepared for this very message, now the run's own; else None (the run
        spawns as usual, and a preparation still under way is discarded when done)."""
        offered = self._wanted.pop(msg.ref.runid, None) is not None
        prepared = self._held.pop(msg.ref.runid, None)
        if prepared is not None and prepared.msg is not msg:
            prepared.discard()
            prepared = None
        if prepared is None and offered and self._held_starts is not None:
            self._held_starts.labels(how="spawned").inc()
        return prepared

    def discard(self, runid: str) -> None:
        """The run will not start from its prepared process (killed, replaced, skipped)."""
        self._wanted.pop(runid, None)
        prepared = self._held.pop(runid, None)
        if prepared is not None:
            prepared.discard()
            log.debug("run.prepared_discarded", runid=runid)

    def discard_all(self) -> None:
        """At shutdown: every held process is killed before it could exec."""
        for runid in list(self._held):
            self.discard(runid)
        self._wanted.clear()
        for worker in list(self._workers):
            worker.cancel()

    async def _work(self) -> None:
        """Prepare queued runs in due order, each no earlier than `ahead_us` before it."""
        while self._queue:
            due_us, _, msg = self._queue[0]
            if self._wanted.get(msg.ref.runid) is not msg:
                heapq.heappop(self._queue)
                continue
            busy = len(self._held) + self._preparing
            step, wait_us = decide_prepare(now_us(), due_us, self._ahead_us, busy, self._max_held)
            if step is PrepareStep.WAIT:
                self._wake.clear()  # an earlier run offered meanwhile wakes the worker
                try:
                    async with asyncio.timeout(wait_us / 1e6):
                        await self._wake.wait()
                except TimeoutError:
                    pass
                continue
            heapq.heappop(self._queue)
            if step is PrepareStep.PREPARE:  # else it stays wanted: spawned at its second
                await self._prepare_one(msg)

    async def _prepare_one(self, msg: Exec) -> None:
        """Spawn it up to its gate; a failure leaves the run to the usual spawn."""
        go = self._go(msg.ref.sched_us)
        self._preparing += 1
        try:
            prepared = await self._prepare(msg, go)
        except (SpecError, OSError, subprocess.SubprocessError, ValueError) as exc:
            log.info("run.prepare_failed", runid=msg.ref.runid, reason=str(exc))
            if go.members <= 0 and go.awaiting <= 0:
                self._drop_go(go)
            return
        finally:
            self._preparing -= 1
        if self._wanted.get(msg.ref.runid) is not msg:  # taken, replaced or cancelled meanwhile
            prepared.discard()
            log.debug("run.prepared_late", runid=msg.ref.runid)
            return
        self._held[msg.ref.runid] = prepared
        log.debug("run.prepared", runid=msg.ref.runid, pid=prepared.pid)

    def _go(self, due_us: int) -> Go:
        """The shared gate of this instant (a new one once the last was opened)."""
        go = self._gos.get(due_us)
        if go is None or go.opened:
            for key in [k for k, g in self._gos.items() if g.opened]:
                del self._gos[key]
            go = self._gos[due_us] = Go(due_us)
        return go

    def _drop_go(self, go: Go) -> None:
        go.open()
        if self._gos.get(go.due_us) is go:
            del self._gos[go.due_us]
