"""`unitedcron runs`: the newest runs as a plain table, for operators without the admin."""

from __future__ import annotations

import datetime as dt
from typing import TextIO

from center.store import listing
from center.store.db import create_engine


def _when(us: int) -> str:
    if not us:
        return "-"
    return dt.datetime.fromtimestamp(us / 1e6, dt.UTC).strftime("%Y-%m-%d %H:%M:%S.%f")[:-3]


def printable(text: str) -> str:
    """`text` with control characters shown as escapes: a job's output (or a rule's name) must
    not move the operator's cursor, retitle the terminal or hide earlier lines."""
    return "".join(ch if ch.isprintable() else ascii(ch)[1:-1] for ch in text)


def format_run(row: dict[str, object]) -> str:
    """One run as one line: time, rule, agent, status, code, duration, first output line."""
    start, end, sched = int(row["start"] or 0), int(row["end"] or 0), int(row["sched_us"] or 0)  # type: ignore[call-overload]
    late = f"+{(start - sched) / 1000:.0f}ms" if start else ""
    took = f"{(end - start) / 1000:.0f}ms" if start and end else "-"
    first = str(row["result"] or row["reason"] or "").strip().splitlines()
    code = "-" if row["code"] is None else str(row["code"])
    rule = printable(str(row["rule_name"] or row["task_id"]))[:24]
    agent = printable(str(row["agent_name"] or row["aid"]))[:16]
    output = printable(first[0])[:60] if first else ""
    status = str(row["status"])
    return (
        f"{_when(sched)} {late:>7} {rule:24} {agent:16} {status:10} {code:>4} {took:>8}  {output}"
    )


async def print_runs(db_url: str, *, limit: int, task_id: int | None, out: TextIO) -> None:
    engine = create_engine(db_url)
    try:
        rows = await listing.newest_runs(engine, limit, task_id)
    finally:
        await engine.dispose()
    out.write(
        f"{'scheduled (UTC)':23} {'late':>7} {'rule':24} {'agent':16} {'status':10} "
        f"{'code':>4} {'took':>8}  output\n"
    )
    for row in rows:
        out.write(format_run(row) + "\n")
