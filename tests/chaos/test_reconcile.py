"""An agent that reconnects with finished runs in its outbox: their results win over `lost`."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

import pytest
from sqlalchemy import insert, select
from sqlalchemy.ext.asyncio import AsyncEngine

from center import store
from center.runs import plan_run, planned_row
from center.tables import agents, task_process
from protocol import statuses
from protocol.messages import AgentState, Ping, Pong, RunFinished, RunOutput
from protocol.stream import Connection, accept_handshake
from tests.chaos.known_bugs import RECONCILE_RACE
from tests.chaos.procs import now_us
from tests.integration.cluster import SECRET, add_rule, poll, running_center

pytestmark = pytest.mark.timeout(60)
S = 1_000_000
WRITE_S = 1.0  # every write of agent reports takes this long (a busy database)


class FakeAgent:
    """The agent side of the protocol, scripted: state, some live output (its write is slow),
    then, 0.3 s later, the result of a run that ended while disconnected, then pongs."""

    def __init__(self, finished: RunFinished) -> None:
        self.finished = finished
        self.port = 0
        self._tasks: set[asyncio.Task[None]] = set()

    @contextlib.asynccontextmanager
    async def serving(self) -> AsyncIterator[FakeAgent]:
        server = await asyncio.start_server(self._connected, "127.0.0.1", 0)
        self.port = int(server.sockets[0].getsockname()[1])
        try:
            yield self
        finally:
            server.close()
            await asyncio.wait_for(asyncio.gather(*self._tasks, return_exceptions=True), 10)

    async def _connected(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        conn = Connection(reader, writer, max_frame_bytes=1 << 20)
        with contextlib.suppress(Exception):
            await self._script(conn)
        await conn.close()

    async def _script(self, conn: Connection) -> None:
        await accept_handshake(conn, (SECRET.encode(),), name="agent-1", expect_role="center")
        conn.send(AgentState(epoch=0, running=[], agent_name="agent-1"))
        conn.send(RunOutput(runid=self.finished.ref.runid, offset=0, data=b"tail"))
        await conn.drain()
        await asyncio.sleep(0.3)  # the center is now writing the output chunk
        conn.send(self.finished)  # the outbox resend, always before the first pong
        await conn.drain()
        async with asyncio.timeout(20):
            while True:
                message = await conn.recv()
                if isinstance(message, Ping):
                    conn.send(Pong(sent_ms=message.sent_ms))
                    await conn.drain()


async def _running_run(engine: AsyncEngine, port: int) -> tuple[Any, RunFinished]:
    """An approved agent at `port`, and a run of it left `running` before it disconnected."""
    stamp = now_us()
    async with engine.begin() as conn:
        result = await conn.execute(
            insert(agents).values(name="agent-1", ip="127.0.0.1", port=port, status=1)
        )
        aid = int(result.inserted_primary_key[0])  # type: ignore[index]
    task_id = await add_rule(engine, [aid], rule="@at 2099-01-01T00:00:00Z")
    run = plan_run(task_id, stamp - 3 * S, aid)
    row = planned_row(run, 1, stamp - 2 * S) | {"status": statuses.RUNNING, "start": stamp - 3 * S}
    async with engine.begin() as conn:
        await conn.execute(insert(task_process).values(**row))
    finished = RunFinished(
        seq=1,
        ref=run.ref,
        status=statuses.SUCCESS,
        start_us=stamp - 3 * S,
        end_us=stamp - S,
        code=0,
    )
    return run, finished


async def _final(engine: AsyncEngine, runid: str) -> Any:
    async with engine.connect() as conn:
        query = select(task_process).where(task_process.c.runid == runid)
        row = (await conn.execute(query)).mappings().one()
    return row if row["status"] in statuses.FINAL else None


async def test_results_resent_on_reconnect_are_stored_before_reconciling(
    db_url: str, engine: AsyncEngine, monkeypatch: pytest.MonkeyPatch
):
    """A run that finished while its agent was cut off ends `success` (not `lost`) when the
    agent reconnects, even if the center was busy writing earlier reports at that moment."""
    real = store.record_reports

    async def slow_write(*args: Any, **kwargs: Any) -> None:
        await asyncio.sleep(WRITE_S)
        await real(*args, **kwargs)

    monkeypatch.setattr(store, "record_reports", slow_write)
    fake = FakeAgent(RunFinished(seq=0, ref=plan_run(0, 0, 0).ref, status="", end_us=0))
    async with fake.serving():
        run, fake.finished = await _running_run(engine, fake.port)
        # The scripted agent speaks plain text: this is about reconciling, not the link.
        async with running_center(db_url, insecure_plaintext=True):
            row = await poll(lambda: _final(engine, run.runid), 20)
    assert row["status"] == statuses.SUCCESS, f"regression of {RECONCILE_RACE}: {dict(row)}"
