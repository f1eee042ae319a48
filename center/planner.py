"""Pure planning: a heap of next-fire times, popped when due; never a scan of every rule."""

from __future__ import annotations

import heapq
from collections.abc import Iterable
from dataclasses import dataclass, field

from center.timing import FireTimes


@dataclass(frozen=True, slots=True)
class Fire:
    """A rule is due at `sched_us`; its following fire is at `next_us` (None: none)."""

    task_id: int
    sched_us: int
    next_us: int | None = field(default=None, compare=False)  # not part of its identity


class Planner:
    """Next fire per rule in a heap; stale heap entries are skipped by generation."""

    def __init__(self) -> None:
        # One int per entry, fire_us | task_id | generation (see pack_entry): a million entries
        # cost 100 MB less than tuples, and ints compare three times faster.
        self._heap: list[int] = []
        self._rules: dict[int, tuple[FireTimes, int]] = {}  # task_id -> (schedule, generation)
        self._generation = 0
        # Rules sharing an expression and a fire time share the next fire: a burst of 100k
        # identical rules computes it once instead of 100k times.
        self._next_memo: dict[tuple[FireTimes, int], int | None] = {}

    def __len__(self) -> int:
        return len(self._rules)

    def set_rule(self, task_id: int, schedule: FireTimes, after_us: int) -> int | None:
        """Plan `task_id` from its first fire strictly after `after_us`; returns that fire."""
        _check_id(task_id)
        self._generation += 1
        self._rules[task_id] = (schedule, self._generation)
        return self._push(task_id, schedule, self._generation, after_us)

    def load(self, rules: Iterable[tuple[int, FireTimes]], after_us: int) -> None:
        """Plan many rules at once (a leader's start): one heapify instead of a push each."""
        for task_id, schedule in rules:
            _check_id(task_id)
            self._generation += 1
            self._rules[task_id] = (schedule, self._generation)
            nxt = self._next(schedule, after_us)
            if nxt is None:
                del self._rules[task_id]
            else:
                self._heap.append(pack_entry(nxt, task_id, self._generation))
        heapq.heapify(self._heap)

    def remove(self, task_id: int) -> None:
        self._rules.pop(task_id, None)

    def due(self, until_us: int, limit: int = 1_000_000) -> list[Fire]:
        """Every fire at or before `until_us`, in time order; each rule moves to its next fire."""
        fires: list[Fire] = []
        heap = self._heap
        bound = pack_entry(until_us + 1, 0, 0)  # below it: every fire at or before until_us
        while heap and heap[0] < bound and len(fires) < limit:
            fire_us, task_id, gen = unpack_entry(heapq.heappop(heap))
            entry = self._rules.get(task_id)
            if entry is None or entry[1] != gen:
                continue  # removed or re-planned since this entry was pushed
            fires.append(Fire(task_id, fire_us, self._push(task_id, entry[0], gen, fire_us)))
        if len(heap) > 2 * len(self._rules) + 1024:
            self._compact()
        return fires

    def next_fire_us(self) -> int | None:
        while self._heap:
            fire_us, task_id, gen = unpack_entry(self._heap[0])
            entry = self._rules.get(task_id)
            if entry is not None and entry[1] == gen:
                return fire_us
            heapq.heappop(self._heap)
        return None

    def _next(self, schedule: FireTimes, after_us: int) -> int | None:
        key = (schedule, after_us)
        memo = self._next_memo
        if key in memo:
            return memo[key]
        if len(memo) > 4096:
            memo.clear()
        nxt = memo[key] = schedule.next_fire_us(after_us)
        return nxt

    def _push(self, task_id: int, schedule: FireTimes, gen: int, after_us: int) -> int | None:
        nxt = self._next(schedule, after_us)
        if nxt is None:
            self._rules.pop(task_id, None)  # a one-off that has fired, or never fires again
        else:
            heapq.heappush(self._heap, pack_entry(nxt, task_id, gen))
        return nxt

    def _compact(self) -> None:
        """Drop stale entries so that frequent edits cannot grow the heap without bound."""
        live = {(task_id << _GEN_BITS) | gen for task_id, (_, gen) in self._rules.items()}
        self._heap = [e for e in self._heap if e & _ID_GEN_MASK in live]
        heapq.heapify(self._heap)


# A heap entry packs (fire_us, task_id, generation) into one int that orders as the tuple
# would: task ids are 32-bit, and a planner makes fewer than 2^40 generations.
_GEN_BITS = 40
_ID_BITS = 32
_ID_GEN_MASK = (1 << (_ID_BITS + _GEN_BITS)) - 1
_GEN_MASK = (1 << _GEN_BITS) - 1


def _check_id(task_id: int) -> None:
    if not 0 <= task_id < 1 << _ID_BITS:
        raise ValueError(f"task_id {task_id}: a planner takes ids from 0 to 2^{_ID_BITS} - 1")


def pack_entry(fire_us: int, task_id: int, gen: int) -> int:
    return (fire_us << (_ID_BITS + _GEN_BITS)) | (task_id << _GEN_BITS) | gen


def unpack_entry(entry: int) -> tuple[int, int, int]:
    return (
        entry >> (_ID_BITS + _GEN_BITS),
        (entry >> _GEN_BITS) & ((1 << _ID_BITS) - 1),
        entry & _GEN_MASK,
    )
