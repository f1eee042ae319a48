"""The runs that count against a limit across the fleet, kept by the leader in memory (pure):
who holds each slot (a fleet-capped rule's shard, a group's concurrency key) and who waits
for one, first come first served. A new leader rebuilds it from the runs active in the store."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

WAITER_STALE_US = 2_000_000  # a waiter not seen again within this has gone (killed, skipped)


@dataclass(frozen=True, slots=True)
class Holder:
    aid: int
    sent_us: int
    forget_us: int  # by then its end was lost with its agent: it no longer counts


def fleet_slot(task_id: int, instance: int) -> str:
    """A fleet-capped rule's slot: each shard of a sharded rule has its own cap."""
    return f"rule:{task_id}:{instance}"


def key_slot(gid: int | None, key: str) -> str:
    return f"key:{gid}:{key}"


class HolderBook:
    """slot -> runid -> Holder, and slot -> runid -> last seen waiting (in arrival order)."""

    def __init__(self) -> None:
        self._slots: dict[str, dict[str, Holder]] = {}
        self._of: dict[str, tuple[str, ...]] = {}  # runid -> the slots it holds
        self._lines: dict[str, dict[str, int]] = {}

    def __len__(self) -> int:
        return len(self._of)

    def holders(self, slot: str, now_us: int) -> list[tuple[str, int]]:
        """(runid, aid) of the runs holding `slot`, oldest first; ones past their forget time
        are released first."""
        runs = self._slots.get(slot, {})
        for runid in [r for r, h in runs.items() if h.forget_us <= now_us]:
            self.release(runid)
        return [(r, h.aid) for r, h in sorted(runs.items(), key=lambda item: item[1].sent_us)]

    def holds(self, runid: str) -> bool:
        return runid in self._of

    def runids(self) -> list[str]:
        return list(self._of)

    def agent_of(self, runid: str) -> int:
        for slot in self._of.get(runid, ()):
            return self._slots[slot][runid].aid
        return 0

    def hold(self, slots: Iterable[str], runid: str, holder: Holder) -> None:
        """`runid` now counts against every one of `slots` (and waits for none)."""
        self.unwait(runid)
        held = tuple(slots)
        if held:
            self._of[runid] = held
        for slot in held:
            self._slots.setdefault(slot, {})[runid] = holder

    def release(self, runid: str) -> None:
        for slot in self._of.pop(runid, ()):
            runs = self._slots.get(slot)
            if runs is not None:
                runs.pop(runid, None)
                if not runs:
                    del self._slots[slot]

    def wait(self, slots: Iterable[str], runid: str, now_us: int) -> None:
        """`runid` waits for room in `slots`; it keeps its place in each line."""
        for slot in slots:
            self._lines.setdefault(slot, {})[runid] = now_us

    def unwait(self, runid: str) -> None:
        for slot in [s for s, line in self._lines.items() if runid in line]:
            del self._lines[slot][runid]
            if not self._lines[slot]:
                del self._lines[slot]

    def ahead(self, slot: str, runid: str, now_us: int) -> int:
        """How many runs still waiting for `slot` came before `runid` (all of them, for a run
        not yet in the line)."""
        line = self._lines.get(slot, {})
        for gone in [r for r, seen in line.items() if seen < now_us - WAITER_STALE_US]:
            del line[gone]
        count = 0
        for waiting in line:
            if waiting == runid:
                break
            count += 1
        return count

    def waiting(self, slot: str) -> list[str]:
        return list(self._lines.get(slot, {}))
