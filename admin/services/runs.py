"""Runs: the history, one run with its output, a live tail of its output, and kill."""

from __future__ import annotations

import asyncio
import codecs
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from admin.actor import Actor
from admin.errors import Conflict, NotFound
from admin.permissions import Action
from admin.queries import rules, runs, workflows
from admin.queries.runs import RunFilter
from admin.services import audited
from i18n.marks import N_
from protocol import statuses
from protocol.clock import now_us
from protocol.vocabulary import CommandKind, CommandStatus

# A tail ends after this long; the browser's EventSource reconnects where it left off.
TAIL_MAX_S = 300.0
KEEPALIVE_S = 15.0


async def list_runs(engine: AsyncEngine, actor: Actor, f: RunFilter) -> list[dict[str, Any]]:
    async with engine.connect() as conn:
        return await runs.list_runs(conn, actor.scope, f)


async def _visible(
    conn: AsyncConnection, actor: Actor, run_id: int, action: Action
) -> dict[str, Any]:
    row = await runs.run_by_id(conn, run_id)
    if row is None:
        raise NotFound("no such run")
    actor.require(action, row["rule_gid"], N_("run"))
    return row


async def get_run(engine: AsyncEngine, actor: Actor, run_id: int) -> dict[str, Any]:
    """The run with its output and the kill commands sent for it."""
    async with engine.connect() as conn:
        row = await _visible(conn, actor, run_id, Action.VIEW)
        row["commands"] = await runs.commands_for(conn, runid=row["runid"])
    row["final"] = row["status"] in statuses.FINAL
    return row


async def kill_run(engine: AsyncEngine, actor: Actor, run_id: int) -> dict[str, Any]:
    """Ask the leader center to stop a run that is going on."""
    now = now_us()
    async with engine.begin() as conn:
        run = await _visible(conn, actor, run_id, Action.RUN)
        if run["status"] in statuses.FINAL:
            raise Conflict(f"the run is over already ({run['status']})")
        values = {
            "kind": CommandKind.KILL,
            "task_id": run["task_id"],
            "runid": run["runid"],
            "aid": run["aid"],
            "user_id": actor.user.id,
            "created_us": now,
            "status": CommandStatus.PENDING,
        }
        command_id = await runs.insert_command(conn, values)
        row = await runs.command_by_id(conn, command_id)
        target = ("run", run["runid"], run["rule_gid"])
        await audited(conn, actor, now, "run.kill", target, after=row)
    return row or {}


async def get_command(engine: AsyncEngine, actor: Actor, command_id: int) -> dict[str, Any]:
    """A command and how the center carried it out (pending, done or failed, with the result)."""
    async with engine.connect() as conn:
        row = await runs.command_by_id(conn, command_id)
        # A flow_run command's task_id is its workflow's id; every other kind names a rule.
        owner = (
            None
            if row is None
            else await workflows.workflow_by_id(conn, row["task_id"])
            if row["kind"] == CommandKind.FLOW_RUN
            else await rules.rule_by_id(conn, row["task_id"])
        )
    if row is None or (owner is None and not actor.user.superadmin):
        raise NotFound("no such command")
    actor.require(Action.VIEW, owner["gid"] if owner else None, N_("command"))
    return row


def _event(name: str, data: dict[str, Any], event_id: int | None = None) -> str:
    head = f"id: {event_id}\n" if event_id is not None else ""
    return f"{head}event: {name}\ndata: {json.dumps(data)}\n\n"


async def _read_output(
    engine: AsyncEngine, run_id: int, runid: str, offset: int, decoder: codecs.IncrementalDecoder
) -> tuple[str, int, dict[str, Any] | None]:
    """Output text from `offset` on, the offset reached, and the run's state."""
    async with engine.connect() as conn:
        chunks = await runs.output_chunks(conn, runid, offset)
        state = await runs.run_state(conn, run_id)
    parts = []
    for chunk_offset, data in chunks:
        text, offset = _chunk_text(decoder, chunk_offset, data, offset)
        parts.append(text)
    return "".join(parts), offset, state


async def output_since(engine: AsyncEngine, run: dict[str, Any], offset: int) -> dict[str, Any]:
    """The live output from `offset` on; ask again with the `offset` returned."""
    decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
    text, offset, state = await _read_output(engine, run["id"], run["runid"], offset, decoder)
    status = state["status"] if state else run["status"]
    return {"offset": offset, "text": text, "status": status, "final": status in statuses.FINAL}


async def tail(
    engine: AsyncEngine,
    run: dict[str, Any],
    offset: int,
    poll_s: float,
    gone: Callable[[], Awaitable[bool]],
) -> AsyncIterator[str]:
    """Server-sent events: output from `offset` on, then `end` once the run is over.

    The event id is the output offset reached, so a reconnecting EventSource resumes there.
    """
    decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
    loop = asyncio.get_running_loop()
    started = last_sent = loop.time()
    while loop.time() - started < TAIL_MAX_S and not await gone():
        text, offset, state = await _read_output(engine, run["id"], run["runid"], offset, decoder)
        if text:
            yield _event("output", {"text": text}, offset)
            last_sent = loop.time()
        if state is None or state["status"] in statuses.FINAL:
            yield _event("end", dict(state or {"status": "unknown"}))
            return
        if loop.time() - last_sent > KEEPALIVE_S:
            yield ": keepalive\n\n"
            last_sent = loop.time()
        await asyncio.sleep(poll_s)


def _chunk_text(
    decoder: codecs.IncrementalDecoder, chunk_offset: int, data: bytes, offset: int
) -> tuple[str, int]:
    """The text of a chunk past `offset`, noting bytes the agent skipped; and the new offset."""
    note = ""
    if chunk_offset > offset:
        note = f"\n[… {chunk_offset - offset} bytes not shown …]\n"
        decoder.reset()
    else:
        data = data[offset - chunk_offset :]
    return note + decoder.decode(data), max(offset, chunk_offset) + len(data)
