"""Bugs the chaos run found (all fixed): how to recognise each, so a regression names itself."""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Iterable
from pathlib import Path

from protocol import statuses
from tests.chaos.faults import Fault
from tests.chaos.invariants import Row

S = 1_000_000
LEASE_DEADLOCK = (
    "BUG lease-deadlock: center/store.py acquire_lease() runs INSERT IGNORE (a shared lock on "
    "the existing lease row) then UPDATE in one transaction; on MariaDB it deadlocks with the "
    "leader's fenced UPDATEs (renew_lease, insert_planned), and the leader is the victim"
)
RETRY_LOST = (
    "BUG retry-lost: center/service.py _write_reports() stores the results and acknowledges "
    "them to the agent before Leader.after_reports() writes the retries (and dependent runs) "
    "they call for; when that write fails (a transient store error, NotLeader, or the leader "
    "dies in between) the retry is never planned: the agent will not resend an acked result"
)
RECONCILE_RACE = (
    "BUG reconcile-race: center/service.py _reports_once() reconciles an agent as soon as its "
    "first pong after reconnecting has arrived, but the reports resent before that pong may "
    "still sit in the ReportBuffer when a write of earlier reports was under way: the run is "
    "marked lost, then its result is refused (status already final) and it is retried"
)


def log_events(logs: Iterable[Path]) -> Iterable[dict[str, object]]:
    """The JSON log lines of the given process logs (tracebacks and markers skipped)."""
    for path in logs:
        for line in path.read_text(errors="replace").splitlines():
            if line.startswith("{"):
                try:
                    yield json.loads(line)
                except ValueError:
                    continue


class KnownBugs:
    """Recognises the known bugs in a finished run; `hits` lists what each one cost."""

    def __init__(self, faults: list[Fault], center_logs: list[Path]) -> None:
        self.hits: dict[str, list[str]] = defaultdict(list)
        self._leader_kills = [f.at_us for f in faults if f.kind == "leader_kill"]
        events = list(log_events(center_logs))
        self._retries_planned = {
            str(e["runid"]) for e in events if e.get("event") == "run.retry_planned"
        }
        self.deadlocks = sum(1 for e in events if "Deadlock found" in str(e.get("reason", "")))
        self.deposed = sum(1 for e in events if e.get("reason") == "lease taken by another center")
        if self.deposed:
            self.hits["lease-deadlock"].append(f"{self.deposed} live leader(s) deposed")

    def reconcile_race(self, row: Row) -> bool:
        """A run that ended while its agent was cut off, recorded `lost` at the reconnect."""
        hit = row["status"] == statuses.LOST and "no longer runs it" in row["reason"]
        if hit:
            self.hits["reconcile-race"].append(row["runid"])
        return bool(hit)

    def retry_lost(self, row: Row, next_runid: str) -> bool:
        """A retry the leader decided on (it logged it, or it died just after storing the
        result) that never reached the store."""
        hit = next_runid in self._retries_planned or any(
            0 <= kill - row["updated_us"] <= 3 * S for kill in self._leader_kills
        )
        if hit:
            self.hits["retry-lost"].append(next_runid)
        return hit

    def lines(self) -> list[str]:
        titles = {
            "lease-deadlock": LEASE_DEADLOCK,
            "retry-lost": RETRY_LOST,
            "reconcile-race": RECONCILE_RACE,
        }
        out = [f"MariaDB deadlocks logged by the centers: {self.deadlocks}"]
        for name, found in sorted(self.hits.items()):
            out.append(f"known bug {name} hit {len(found)}×: {', '.join(found[:5])}")
            out.append(f"  {titles[name]}")
        return out
