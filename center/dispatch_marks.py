"""Runs sent whose `dispatched` status is not written yet: most never need it written.

A run's row goes `planned` → (`dispatched`) → `running` → final. The agent's report of a
short run arrives within a second or two of its time and sets the final status itself, so the
`dispatched` write (one update of the row and of its status indexes, a third of the rows a run
writes) is held until `MARK_AFTER_US` past the later of the run's send and its time, and
dropped if a report of the run is stored first. Until then this holder is the truth that the
run was sent (a kill must reach its agent); a leader that dies meanwhile leaves the row
`planned`, which its successor sends again (the agent ignores a run id it has seen) or, past
the dispatch grace, records `missed` until the agent's result replaces it.
"""

from __future__ import annotations

import heapq
from collections.abc import Iterable

# After the run's time: the agent's start report of a longer run (sent 0.5 s after its start
# by default), a report tick and a write, with room to spare.
MARK_AFTER_US = 2_000_000


class DispatchMarks:
    """Sent runs by id, each with when its `dispatched` status is due to be written."""

    def __init__(self, after_us: int = MARK_AFTER_US) -> None:
        self._after_us = after_us
        self._due: dict[str, int] = {}  # runid -> when its mark is due
        self._heap: list[tuple[int, str]] = []  # (due, runid); stale once not in `_due`

    def __len__(self) -> int:
        return len(self._due)

    def __contains__(self, runid: object) -> bool:
        return runid in self._due

    def add(self, runs: Iterable[tuple[str, int]], now_us: int) -> None:
        """Runs sent at `now_us`, as (runid, scheduled time)."""
        after = self._after_us
        for runid, sched_us in runs:
            at = max(sched_us, now_us) + after
            self._due[runid] = at
            heapq.heappush(self._heap, (at, runid))

    def next_us(self) -> int | None:
        """When the next mark is due (None: none held)."""
        heap, due = self._heap, self._due
        while heap and due.get(heap[0][1]) != heap[0][0]:
            heapq.heappop(heap)  # forgotten, or added again later
        return heap[0][0] if heap else None

    def take_due(self, now_us: int) -> list[str]:
        """The runs whose mark is due. They stay held (still sent, not yet written) until
        `forget`, after their write."""
        out: list[str] = []
        heap, due = self._heap, self._due
        while heap and heap[0][0] <= now_us:
            at, runid = heapq.heappop(heap)
            if due.get(runid) == at:
                out.append(runid)
        return out

    def take_all(self) -> list[str]:
        """Every run held, due or not (a clean step-down writes them all)."""
        self._heap.clear()
        return list(self._due)

    def forget(self, runids: Iterable[str]) -> None:
        """Runs whose status is stored (their mark, or a report of them)."""
        due = self._due
        for runid in runids:
            due.pop(runid, None)
