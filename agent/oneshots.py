"""One-shot runs: the per-rule cap (`process_num`) and what happens at it (`overlap`)."""

from __future__ import annotations

import asyncio
import dataclasses
import time

import structlog

from agent.decisions import Overlap, RuleLoad, decide_overlap
from agent.gate import Prepared
from agent.handle import RunHandle
from agent.outcomes import not_started
from agent.runs import RunTable
from protocol import statuses
from protocol.clock import now_us
from protocol.messages import Exec

log = structlog.get_logger("agent.oneshots")


@dataclasses.dataclass
class _Slots:
    """One rule's runs on this agent."""

    active: list[RunHandle] = dataclasses.field(default_factory=list)
    waiting: list[RunHandle] = dataclasses.field(default_factory=list)

    def load(self, overlap: str) -> RuleLoad:
        """The rule's load; who is stoppable matters to `replace` only, and counting it for
        every exec of a rule with thousands of runs in parallel would cost O(n) each time."""
        stoppable = sum(1 for h in self.active if not h.stop_status) if overlap == "replace" else 0
        return RuleLoad(len(self.active), stoppable, len(self.waiting))


class OneShots:
    """Accepts one-shot runs and applies each rule's cap and overlap policy.

    Each rule has slots: `active` runs hold one (running, starting, or being stopped) and
    `waiting` runs wait for the next one to free up, in arrival order. A waiting run is known
    to the agent (listed in AgentState, killable) but has no process and no RunStarted yet;
    it keeps its scheduled identity and its RunStarted carries its real start time.
    """

    def __init__(self, table: RunTable) -> None:
        self._table = table
        self._rules: dict[int, _Slots] = {}
        self._gates: dict[str, asyncio.Event] = {}

    def accept(self, msg: Exec) -> None:
        """Start, queue, replace or skip a new (deduplicated, fenced) run."""
        slots = self._rules.setdefault(msg.spec.task_id, _Slots())
        decision, reason = decide_overlap(msg.spec, slots.load(msg.spec.overlap))
        if decision is Overlap.SKIP:
            self._forget_if_idle(msg.spec.task_id)
            self._table.finish(not_started(msg, statuses.SKIPPED, reason, now_us()))
            return
        handle = RunHandle(msg)
        if decision is Overlap.REPLACE_RUNNING:
            victim = next(h for h in slots.active if not h.stop_status)
            victim.request_stop(statuses.KILLED, f"replaced by {handle.runid}")
        elif decision is Overlap.REPLACE_WAITING:
            self._drop_waiting(slots, slots.waiting[-1], f"replaced by {handle.runid}")
        self._table.add(handle)
        if decision is not Overlap.START:  # it may start much later: spawned then, as usual
            self._table.preparer.discard(handle.runid)
        if decision is Overlap.START:
            slots.active.append(handle)
            admitted = self._table.admit(handle)
            self._table.spawn(self._run(handle, None, admitted), f"run {handle.runid}")
            return
        gate = self._gates[handle.runid] = asyncio.Event()
        slots.waiting.append(handle)
        log.info(
            "run.waiting",
            runid=handle.runid,
            task_id=handle.task_id,
            overlap=msg.spec.overlap,
            active=len(slots.active),
        )
        self._table.spawn(self._run(handle, gate), f"run {handle.runid}")

    async def _run(
        self, handle: RunHandle, gate: asyncio.Event | None, admitted: Prepared | None = None
    ) -> None:
        """Wait for a slot if needed, run (an admitted process: see RunTable.admit), then
        hand the slot on."""
        try:
            if gate is not None:
                try:
                    await _slot_or_stop(handle, gate)
                except asyncio.CancelledError:  # forced shutdown: still report the run
                    self._table.finish(
                        not_started(
                            handle.msg,
                            statuses.KILLED,
                            "agent exited before the run ended",
                            now_us(),
                        ),
                        handle,
                    )
                    raise
            await self._table.execute(handle, admitted)
        finally:
            self._release(handle)

    def _drop_waiting(self, slots: _Slots, handle: RunHandle, reason: str) -> None:
        """A waiting run gives up its place: it ends killed without ever starting."""
        slots.waiting.remove(handle)
        handle.request_stop(statuses.KILLED, reason)

    def _release(self, handle: RunHandle) -> None:
        """A run ended: free its slot (or its place in line) and grant the slot onwards."""
        self._gates.pop(handle.runid, None)
        slots = self._rules.get(handle.task_id)
        if slots is None:
            return
        if handle in slots.active:
            slots.active.remove(handle)
            self._grant(slots)
        elif handle in slots.waiting:
            slots.waiting.remove(handle)
        self._forget_if_idle(handle.task_id)

    def _grant(self, slots: _Slots) -> None:
        """Give free slots to waiting runs, oldest first."""
        while slots.waiting:
            nxt = slots.waiting[0]
            if len(slots.active) >= max(1, nxt.msg.spec.process_num):
                return
            slots.waiting.pop(0)
            slots.active.append(nxt)
            nxt.ready_mono = time.monotonic()  # its spawn latency counts from its slot
            gate = self._gates.get(nxt.runid)
            if gate is not None:
                gate.set()

    def _forget_if_idle(self, task_id: int) -> None:
        """Drop a rule's entry once it has no runs."""
        slots = self._rules.get(task_id)
        if slots is not None and not slots.active and not slots.waiting:
            del self._rules[task_id]


async def _slot_or_stop(handle: RunHandle, gate: asyncio.Event) -> None:
    """Return once the run got a slot or was asked to stop (it then ends without starting)."""
    waits = {asyncio.ensure_future(gate.wait()), asyncio.ensure_future(handle.stop_requested())}
    try:
        await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for wait in waits:
            wait.cancel()
