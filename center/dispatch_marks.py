"""Runs sent whose `dispatched` status is not written yet: most never need it written.

A run's row goes `planned` → (`dispatched`) → `running` → final. A report of the run (its
start, or the end of a short one) usually arrives within a second of its time and sets its
status itself, so the `dispatched` write (one of the three writes of a short run's row, with
its status indexes) waits until `MARK_AFTER_US` past the later of the run's send and its time,
and is dropped if a report of the run is stored first. Until then this holder is the truth
that the run was sent: a kill goes to its agent, a reconnected agent's reconciliation counts
it. A leader that dies meanwhile leaves the row `planned`: its successor sends it again within
the dispatch grace (the agent ignores a run id it has seen), or records it `missed`, which the
agent's result then replaces."""

from __future__ import annotations

import heapq
from collections.abc import Iterable

# After the run's time: the agent's start report of a longer run (sent 0.5 s after its start
# by default), a report tick and a write, with room to spare.
MARK_AFTER_US = 2_000_000


class DispatchMarks:
    """Sent runs by id, each with when it was sent and when its `dispatched` is due."""

    def __init__(self, after_us: int = MARK_AFTER_US) -> None:
        self._after_us = after_us
        self._held: dict[str, tuple[int, int]] = {}  # runid -> (mark due, sent)
        self._heap: list[tuple[int, str]] = []  # (mark due, runid); stale once not held so

    def __len__(self) -> int:
        return len(self._held)

    def __contains__(self, runid: object) -> bool:
        return runid in self._held

    def sent_before(self, runid: str, us: int) -> bool:
        held = self._held.get(runid)
        return held is not None and held[1] < us

    def add(self, runs: Iterable[tuple[str, int]], now_us: int) -> None:
        """Runs sent at `now_us`, as (runid, scheduled time)."""
        after = self._after_us
        for runid, sched_us in runs:
            at = max(sched_us, now_us) + after
            self._held[runid] = (at, now_us)
            heapq.heappush(self._heap, (at, runid))

    def next_us(self) -> int | None:
        """When the next mark is due (None: none held)."""
        heap = self._heap
        while heap and not self._live(*heap[0]):
            heapq.heappop(heap)  # forgotten, or sent again later
        return heap[0][0] if heap else None

    def take_due(self, now_us: int) -> dict[int, list[str]]:
        """The runs whose mark is due, by when they were sent (what their rows' `updated_us`
        says once written). They stay held (sent, not yet written) until `forget`."""
        out: dict[int, list[str]] = {}
        heap = self._heap
        while heap and heap[0][0] <= now_us:
            at, runid = heapq.heappop(heap)
            if self._live(at, runid):
                out.setdefault(self._held[runid][1], []).append(runid)
        return out

    def take_all(self) -> dict[int, list[str]]:
        """Every run held, due or not, by when it was sent (a clean step-down writes them)."""
        self._heap.clear()
        out: dict[int, list[str]] = {}
        for runid, (_, sent_us) in self._held.items():
            out.setdefault(sent_us, []).append(runid)
        return out

    def forget(self, runids: Iterable[str]) -> None:
        """Runs whose status is stored (their mark, or a report of them)."""
        held = self._held
        for runid in runids:
            held.pop(runid, None)

    def _live(self, at: int, runid: str) -> bool:
        held = self._held.get(runid)
        return held is not None and held[0] == at
