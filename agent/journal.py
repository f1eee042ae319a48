"""Group commit for the outbox: every durable write goes through one writer thread."""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

import structlog

from agent.errors import StateDirError
from agent.orphans import TrackedProcess
from agent.outbox import Event, Outbox
from agent.start_reports import StartReports
from protocol import statuses
from protocol.messages import DaemonsWanted, RunFinished, RunRef

T = TypeVar("T")
RETRY_S = 1.0
log = structlog.get_logger("agent.journal")


@dataclasses.dataclass
class _Batch:
    """What one transaction writes, and who waits for it."""

    events: list[Event] = dataclasses.field(default_factory=list)
    runids: dict[str, int] = dataclasses.field(default_factory=dict)
    opened: list[RunFinished] = dataclasses.field(default_factory=list)
    acks: list[int] = dataclasses.field(default_factory=list)
    epoch: int | None = None
    daemons: DaemonsWanted | None = None  # the newest wanted set replaces any older one
    tracked: list[TrackedProcess] = dataclasses.field(default_factory=list)
    untracked: list[str] = dataclasses.field(default_factory=list)
    waiters: list[asyncio.Future[None]] = dataclasses.field(default_factory=list)
    on_commit: list[Callable[[], None]] = dataclasses.field(default_factory=list)

    def __bool__(self) -> bool:
        return bool(
            self.events
            or self.runids
            or self.acks
            or self.epoch is not None
            or self.daemons is not None
            or self.tracked
            or self.untracked
        )

    def merge_back(self, newer: _Batch) -> _Batch:
        """This (failed) batch followed by a newer one, to be tried again."""
        epochs = [e for e in (self.epoch, newer.epoch) if e is not None]
        return _Batch(
            self.events + newer.events,
            self.runids | newer.runids,
            self.opened + newer.opened,
            self.acks + newer.acks,
            max(epochs) if epochs else None,
            newer.daemons or self.daemons,
            self.tracked + newer.tracked,
            self.untracked + newer.untracked,
            newer.waiters,
            newer.on_commit,  # a failed commit's callbacks are never called
        )


class Journal:
    """The agent's durable memory as handlers see it: pending writes plus what is on disk.

    Handlers note what must be durable (a higher epoch, accepted run ids, run events, acks)
    synchronously; a writer task takes everything noted so far and commits it in one
    transaction on a dedicated thread, so the fsync (`synchronous=FULL`, ~5 ms here) never
    blocks the event loop, and whatever arrives meanwhile lands in the next transaction.
    A run waits for `committed()` before it spawns, and a prepared process's gate opens from
    `when_committed`: its run id and the epoch it obeys are on disk first. Events are
    published (sent to the leader) only after their commit. A run's start waits
    `start_delay_s` first (`StartReports`): a run that ends meanwhile costs one event, not two.
    """

    def __init__(
        self, outbox: Outbox, publish: Callable[[list[Event]], None], *, start_delay_s: float = 0.0
    ) -> None:
        self.outbox = outbox
        self._publish = publish
        self._starts = StartReports(self._queue, start_delay_s)
        self._epoch = outbox.epoch
        self._pending = _Batch()
        self._inflight: _Batch | None = None
        self._wake = asyncio.Event()
        self._closing = False
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="outbox")
        self._writer: asyncio.Task[None] | None = None

    def start(self) -> None:
        """Start the writer task (needs a running loop)."""
        self._writer = asyncio.create_task(self._write_loop(), name="outbox writer")

    async def close(self) -> None:
        """Commit everything pending (waiting starts too), stop the writer, close the outbox."""
        self._starts.release_all()
        self._closing = True
        self._wake.set()
        if self._writer is not None:
            await self._writer
        await self.call(self.outbox.close)
        self._executor.shutdown(wait=True)

    @property
    def epoch(self) -> int:
        """The highest epoch seen, committed or not."""
        return self._epoch

    def seen(self, runid: str) -> bool:
        """Whether a run id was accepted before: pending, being written, or on disk."""
        inflight = self._inflight
        return (
            runid in self._pending.runids
            or (inflight is not None and runid in inflight.runids)
            or self.outbox.seen(runid)
        )

    def note_epoch(self, epoch: int) -> bool:
        """Remember a higher epoch; True if it was higher than any seen."""
        if epoch <= self._epoch:
            return False
        self._epoch = self._pending.epoch = epoch
        self._wake.set()
        return True

    def remember_run(self, ref: RunRef, seen_us: int) -> None:
        """Note an accepted run; it is durable after the next commit, and open (its outcome
        owed to the center) until its RunFinished is committed."""
        self._pending.runids[ref.runid] = seen_us
        self._pending.opened.append(
            RunFinished(seq=0, ref=ref, status=statuses.LOST, end_us=0, outcome_unknown=True)
        )
        self._wake.set()

    def emit(self, event: Event) -> None:
        """Queue a run event; it is committed, numbered, then published (a start after its
        delay, unless the run ended first)."""
        self._starts.add(event)

    def _queue(self, event: Event) -> None:
        """An event for the next commit. The RunFinished of a run that had a process also
        forgets that process (see `track`)."""
        self._pending.events.append(event)
        if isinstance(event, RunFinished) and event.pid:
            self._pending.untracked.append(event.ref.runid)
        self._wake.set()

    def track(self, process: TrackedProcess) -> None:
        """Remember a running process until its RunFinished (or `untrack`), so that an agent
        restarted after a crash can stop it."""
        self._pending.tracked.append(process)
        self._wake.set()

    def untrack(self, runid: str) -> None:
        """Forget a run's process without a RunFinished (it ended while the agent was down)."""
        self._pending.untracked.append(runid)
        self._wake.set()

    def save_daemons(self, wanted: DaemonsWanted) -> None:
        """Keep the wanted daemon set (complete) durable with the next commit."""
        self._pending.daemons = wanted
        self._wake.set()

    def ack(self, seqs: list[int]) -> None:
        """Queue the deletion of acked events for the next commit."""
        self._pending.acks.extend(seqs)
        self._wake.set()

    async def committed(self) -> None:
        """Return once everything noted so far is on disk (StateDirError if it cannot be)."""
        batch = self._pending if self._pending else self._inflight
        if batch is None:
            return
        waiter = asyncio.get_running_loop().create_future()
        batch.waiters.append(waiter)
        await waiter

    def when_committed(self, callback: Callable[[], None]) -> None:
        """Call `callback` once everything noted so far is on disk; never if that commit
        fails. Cheaper than a task awaiting `committed()` per run when a thousand wait."""
        batch = self._pending if self._pending else self._inflight
        if batch is None:
            asyncio.get_running_loop().call_soon(callback)
        else:
            batch.on_commit.append(callback)

    async def call(self, fn: Callable[..., T], *args: object) -> T:
        """Run an outbox call on the writer thread, after the writes queued before it."""
        return await asyncio.get_running_loop().run_in_executor(self._executor, fn, *args)

    async def _write_loop(self) -> None:
        """Take everything noted since the last commit and write it, until closed."""
        while True:
            await self._wake.wait()
            self._wake.clear()
            batch, self._pending = self._pending, _Batch()
            if batch:
                await self._write(batch)
            else:
                _landed(batch)
            if self._closing and not self._pending:
                return

    async def _write(self, batch: _Batch) -> None:
        """Commit one batch on the writer thread; on failure fail its waiters and retry."""
        self._inflight = batch
        try:
            numbered = await self.call(self._commit, batch)
        except Exception as exc:  # sqlite3.Error, OSError: the disk refused; keep and retry
            _settle(batch.waiters, StateDirError(self.outbox.path, exc))
            if self._closing:  # nothing left to retry with: say what is lost
                log.error(
                    "agent.outbox_write_failed", error=str(exc), lost_events=len(batch.events)
                )
                return
            log.error("agent.outbox_write_failed", error=str(exc), retry_s=RETRY_S)
            self._pending = batch.merge_back(self._pending)
            await asyncio.sleep(RETRY_S)
            self._wake.set()
            return
        finally:
            self._inflight = None
        _landed(batch)
        if numbered:
            self._publish(numbered)

    def _commit(self, batch: _Batch) -> list[Event]:
        """Runs on the writer thread."""
        return self.outbox.commit(
            batch.events,
            epoch=batch.epoch,
            runids=batch.runids.items(),
            opened=batch.opened,
            acks=batch.acks,
            daemons=batch.daemons,
            tracked=batch.tracked,
            untracked=batch.untracked,
        )


def _landed(batch: _Batch) -> None:
    """A batch is on disk: its callbacks first (they open the gates of processes due now),
    then its waiters."""
    for callback in batch.on_commit:
        try:
            callback()
        except Exception:  # one broken callback must not keep the others from their commit
            log.exception("agent.commit_callback_failed")
    _settle(batch.waiters, None)


def _settle(waiters: list[asyncio.Future[None]], exc: BaseException | None) -> None:
    """Resolve (or fail) every waiter of a batch."""
    for waiter in waiters:
        if not waiter.done():
            if exc is None:
                waiter.set_result(None)
            else:
                waiter.set_exception(exc)
