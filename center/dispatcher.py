"""Sending planned runs at their time: a heap of runs, one batched write per agent per tick."""

from __future__ import annotations

import heapq
import itertools
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field

from center.admission import WAIT
from center.rules import Rule
from center.runs import PlannedRun
from protocol.messages import Exec, RunSpec
from protocol.vocabulary import RuleStatus, Trigger

WAIT_RETRY_US = 250_000
# Frames handed to an agent's link as soon as this many are ready, not after the whole batch:
# deciding 100k runs takes half a second, which the agent can spend decoding the first ones.
FLUSH_EVERY = 2_000


class DispatchQueue:
    """Planned runs ordered by when to send them (pure): scheduled runs `ahead_us` early."""

    def __init__(
        self, ahead_us: int = 0, at_instant: Callable[[int], bool] = lambda task_id: False
    ) -> None:
        self._ahead_us = ahead_us
        # Rules whose runs are decided at their instant (a fleet-wide cap): never sent early.
        self._at_instant = at_instant
        self._heap: list[tuple[int, int, PlannedRun]] = []
        self._seq = itertools.count()
        self._queued: set[str] = set()
        self._cancelled: set[str] = set()

    def __len__(self) -> int:
        return len(self._heap)

    def add(self, runs: list[PlannedRun], at_us: int | None = None) -> None:
        """Queue runs for their scheduled time, or for `at_us` (a retry of a waiting run)."""
        for run in runs:
            if run.runid in self._queued and at_us is None:
                continue
            self._queued.add(run.runid)
            heapq.heappush(
                self._heap, (self._when(run) if at_us is None else at_us, next(self._seq), run)
            )

    def _when(self, run: PlannedRun) -> int:
        # Only fires go early: a retry, a manual or a catch-up run is due already.
        early = run.trigger == Trigger.SCHEDULE and not self._at_instant(run.task_id)
        ahead = self._ahead_us if early else 0
        return run.send_at_us - ahead

    def pop_due(self, now_us: int) -> list[PlannedRun]:
        out = []
        while self._heap and self._heap[0][0] <= now_us:
            run = heapq.heappop(self._heap)[2]
            self._queued.discard(run.runid)
            if run.runid in self._cancelled:
                self._cancelled.discard(run.runid)
            else:
                out.append(run)
        return out

    def cancel(self, runids: list[str]) -> None:
        """Runs killed before they were sent: dropped when they come up."""
        self._cancelled.update(r for r in runids if r in self._queued)

    def next_due_us(self) -> int | None:
        return self._heap[0][0] if self._heap else None

    def clear(self) -> None:
        self._heap.clear()
        self._queued.clear()
        self._cancelled.clear()


@dataclass(slots=True)
class DispatchOutcome:
    """What one dispatch pass decided, for the store and the queue."""

    frames: dict[int, list[bytes]] = field(default_factory=lambda: defaultdict(list))
    sent: list[str] = field(default_factory=list)
    waiting: list[PlannedRun] = field(default_factory=list)
    skipped: dict[str, str] = field(default_factory=dict)
    missed: dict[str, str] = field(default_factory=dict)
    rerouted: list[tuple[str, PlannedRun]] = field(default_factory=list)  # (old id, moved)


def exec_for(run: PlannedRun, spec: RunSpec, epoch: int) -> Exec:
    """The exec frame's message for a planned run."""
    return Exec(
        epoch=epoch,
        ref=run.ref,
        spec=spec,
        shard_index=run.instance if run.shard_total else 0,
        shard_total=run.shard_total,
        params=run.params,
        env_override=run.env_override,
    )


def decide_dispatch(
    due: list[PlannedRun],
    *,
    now_us: int,
    rules: dict[int, Rule],
    connected: Callable[[int], bool],
    grace_us: int,
    frame_of: Callable[[PlannedRun, Rule], bytes],
    reroute: Callable[[PlannedRun], int | None] = lambda run: None,
    still_fires: Callable[[PlannedRun], bool] = lambda run: True,
    admit: Callable[[PlannedRun, Rule], str] = lambda run, rule: "",
    flush: Callable[[int, list[bytes]], None] | None = None,
) -> DispatchOutcome:
    """For each due run: send it (as the frame `frame_of` gives), let it wait for its agent or
    for room under its fleet-wide cap (`admit`: "" to go, "wait", or why it is skipped), move
    it to another agent (failover), or record why it will not run. With `flush`, each agent's
    frames go to it every FLUSH_EVERY (the rest stay in `frames`), in order."""
    out = DispatchOutcome()
    for run in due:
        rule = rules.get(run.task_id)
        refused = _refusal(run, rule, still_fires)
        if refused or rule is None:
            out.skipped[run.runid] = refused or "rule gone"
        elif connected(run.aid):
            verdict = admit(run, rule)
            if verdict == WAIT:
                out.waiting.append(run)
            elif verdict:
                out.skipped[run.runid] = verdict
            else:
                frames = out.frames[run.aid]
                frames.append(frame_of(run, rule))
                out.sent.append(run.runid)
                if flush is not None and len(frames) >= FLUSH_EVERY:
                    flush(run.aid, frames)
                    out.frames[run.aid] = []
        elif (alt := reroute(run)) is not None:
            out.rerouted.append((run.runid, run.moved_to(alt)))
        elif now_us - run.send_at_us < grace_us:
            out.waiting.append(run)
        else:
            out.missed[run.runid] = (
                f"agent {run.aid} was not connected within "
                f"{grace_us // 1_000_000} s of the scheduled time"
            )
    return out


def _refusal(run: PlannedRun, rule: Rule | None, still_fires: Callable[[PlannedRun], bool]) -> str:
    """Why a planned run must not be sent after all ("" when it may go)."""
    if rule is None or rule.status == RuleStatus.DELETED or rule.error:
        return f"rule {run.task_id} was deleted or broken before its start"
    if not rule.enabled and run.trigger != Trigger.MANUAL:  # a paused rule still runs by hand
        return f"rule {run.task_id} was paused before its start"
    if (
        run.trigger == Trigger.SCHEDULE
        and rule.update_time != run.rule_version
        and not still_fires(run)
    ):
        return f"rule {run.task_id}'s schedule changed before this fire"
    return ""
