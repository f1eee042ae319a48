"""Agent reports buffered between ticks, written in one batch, then acknowledged to each agent."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import structlog

from center.runs import finished_row, started_row
from protocol.logs import say_lines
from protocol.messages import Message, RunFinished, RunOutput, RunStarted

log = structlog.get_logger("center.report_buffer")


@dataclass(slots=True)
class ReportBatch:
    """Rows ready for the store, plus the seqs to acknowledge per agent once they are stored."""

    # Rows of the starts of runs that did not also finish within the batch: a finished run
    # takes only its finish, which carries every column its start does (`plan_writes`).
    started: list[dict[str, Any]] = field(default_factory=list)
    finished: list[dict[str, Any]] = field(default_factory=list)
    chunks: list[dict[str, Any]] = field(default_factory=list)
    acks: dict[int, list[int]] = field(default_factory=lambda: defaultdict(list))
    started_msgs: list[RunStarted] = field(default_factory=list)  # every start, for metrics
    finished_msgs: list[tuple[int, RunFinished]] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.started) + len(self.finished) + len(self.chunks)


class ReportBuffer:
    """Collects reports from every agent link until the next flush."""

    def __init__(self) -> None:
        self._items: list[tuple[int, Message]] = []
        self.added = 0  # reports ever added: a position in the stream of reports
        self.written = 0  # of those, how many are stored (always the oldest ones)

    def __len__(self) -> int:
        return len(self._items)

    def add(self, aid: int, message: Message) -> None:
        self._items.append((aid, message))
        self.added += 1

    def drain(self, limit: int) -> list[tuple[int, Message]]:
        """The oldest `limit` reports: a burst is written in several short transactions."""
        items, self._items = self._items[:limit], self._items[limit:]
        return items

    def putback(self, items: list[tuple[int, Message]]) -> None:
        """A write failed: keep the reports (unacknowledged) for the next try."""
        self._items[:0] = items

    @staticmethod
    def build(items: list[tuple[int, Message]], now_us: int) -> ReportBatch:
        batch = ReportBatch()
        starts: list[tuple[int, RunStarted]] = []
        done: set[str] = set()
        for aid, msg in items:
            if isinstance(msg, RunStarted):
                starts.append((aid, msg))
                batch.acks[aid].append(msg.seq)
            elif isinstance(msg, RunFinished):
                batch.finished.append(finished_row(msg, aid, now_us))
                batch.acks[aid].append(msg.seq)
                batch.finished_msgs.append((aid, msg))
                done.add(msg.ref.runid)
            elif isinstance(msg, RunOutput):
                batch.chunks.append(
                    {
                        "runid": msg.runid,
                        "offset": msg.offset,
                        "data": msg.data,
                        "created_us": now_us,
                    }
                )
        batch.started_msgs = [msg for _aid, msg in starts]
        # Most runs start and end within one batch: their start's row would be dropped.
        batch.started = [
            started_row(m, aid, now_us) for aid, m in starts if m.ref.runid not in done
        ]
        return batch


def log_outcomes(finished: Iterable[tuple[int, RunFinished]]) -> None:
    """One line per run outcome, with its ids and how late it started."""
    say_lines(log.bind(), "run.finished", (_outcome(aid, msg) for aid, msg in finished))


def _outcome(aid: int, msg: RunFinished) -> dict[str, Any]:
    ref = msg.ref
    start_us = msg.start_us
    return {
        "runid": ref.runid,
        "task_id": ref.task_id,
        "aid": aid,
        "status": msg.status,
        "code": msg.code,
        "signal": msg.signal,
        "reason": msg.reason or None,
        "attempt": ref.attempt,
        "start_late_ms": (start_us - ref.sched_us) / 1000 if start_us else None,
        "duration_ms": (msg.end_us - start_us) / 1000 if start_us else None,
        "output_bytes": msg.output_bytes,
    }
