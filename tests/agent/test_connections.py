"""Connections to the agent: authentication, fencing, protocol errors, event delivery and acks."""

from __future__ import annotations

import asyncio
import dataclasses
import os
from collections.abc import Callable

import pytest
import structlog

from agent.config import AgentConfig
from agent.decisions import MAX_EPOCH_STEP
from agent.service import AgentService
from protocol import auth
from protocol.codec import encode
from protocol.errors import AuthError, ConnectionClosed
from protocol.messages import (
    Ack,
    AgentState,
    Auth,
    Challenge,
    Error,
    Hello,
    Kill,
    Ping,
    Pong,
    RunFinished,
    RunStarted,
)
from protocol.stream import Connection
from tests.agent.peer import WAIT_S, CenterPeer, exec_msg, running, stopped, wait_for

WRONG = (b"not-the-cluster-secret-at-all",)


async def _closed(peer: CenterPeer) -> list[object]:
    """Everything the agent still sends before it closes the connection."""
    out: list[object] = []
    with pytest.raises(ConnectionClosed):
        while True:
            out.append(await peer.recv())
    return out


async def test_state_then_pong(center: CenterPeer) -> None:
    """A ping gets a pong echoing sent_ms, with the agent's load figures."""
    await center.send(Ping(epoch=1, sent_ms=1234))
    pong = await center.expect(Pong)
    assert pong.sent_ms == 1234
    assert pong.resources.procs == 0 and pong.resources.outbox == 0
    assert 0 <= pong.resources.mem_pct <= 100


async def test_wrong_secret_client_refuses_agent(agent: AgentService) -> None:
    """A center with another secret finds the agent's proof wrong and never proves itself."""
    with pytest.raises(AuthError, match="does not know the cluster secret"):
        await CenterPeer.connect(agent.port, secrets=WRONG)


async def test_wrong_secret_cannot_exec(agent: AgentService) -> None:
    """A peer that fails the proof gets an auth error and a closed connection; nothing runs."""
    async with asyncio.timeout(WAIT_S):
        reader, writer = await asyncio.open_connection("127.0.0.1", agent.port)
        conn = Connection(reader, writer)
        nonce = os.urandom(auth.NONCE_BYTES)
        conn.send(Hello(role="center", name="intruder", nonce=nonce))
        await conn.drain()
        challenge = await conn.recv()
        assert isinstance(challenge, Challenge)
        proof = auth.client_proof(WRONG[0], nonce, challenge.nonce)
        msg = exec_msg("/usr/bin/id")
        writer.write(encode(Auth(proof=proof)) + encode(msg))
        reply = await conn.recv()
        assert isinstance(reply, Error) and reply.code == "auth"
        with pytest.raises(ConnectionClosed):
            await conn.recv()
        await conn.close()
    assert agent.control.runs == {}
    assert agent.outbox.count == 0 and not agent.outbox.seen(msg.ref.runid)


async def test_exec_before_handshake_is_refused(agent: AgentService) -> None:
    """An exec sent instead of a hello is refused and closes the connection; nothing runs."""
    async with asyncio.timeout(WAIT_S):
        reader, writer = await asyncio.open_connection("127.0.0.1", agent.port)
        conn = Connection(reader, writer)
        conn.send(exec_msg("/usr/bin/id"))
        await conn.drain()
        reply = await conn.recv()
        assert isinstance(reply, Error) and reply.code == "auth"
        with pytest.raises(ConnectionClosed):
            await conn.recv()
        await conn.close()
    assert agent.control.runs == {} and agent.outbox.count == 0


async def test_handshake_refusal_logged_once(agent: AgentService) -> None:
    """A refused handshake is one `agent.handshake_refused` line with the peer and reason."""
    with structlog.testing.capture_logs() as logs:
        with pytest.raises(AuthError):
            await CenterPeer.connect(agent.port, secrets=WRONG)
        await wait_for(lambda: any(e["event"] == "agent.handshake_refused" for e in logs))
    refused = [e for e in logs if e["event"] == "agent.handshake_refused"]
    assert len(refused) == 1
    assert refused[0]["peer"].startswith("127.0.0.1:") and refused[0]["reason"]


async def test_garbage_closes_only_that_connection(agent: AgentService) -> None:
    """Bad bytes close that connection with a frame error; another connection keeps working."""
    good = await CenterPeer.connect(agent.port)
    bad = await CenterPeer.connect(agent.port)
    try:
        await bad.expect(AgentState)
        bad.conn._writer.write(b"this is not a frame\r\n")
        rest = await _closed(bad)
        assert any(isinstance(m, Error) and m.code == "frame" for m in rest)
        finished = await good.run(exec_msg("/usr/bin/id -un"))
        assert finished.output == b"nobody\n"
    finally:
        await good.close()
        await bad.close()


async def test_unexpected_call_closes_connection(center: CenterPeer) -> None:
    """A message only an agent sends (run_started) is a protocol error for that connection."""
    msg = exec_msg("/usr/bin/true")
    await center.send(RunStarted(seq=1, ref=msg.ref, pid=1, start_us=1))
    rest = await _closed(center)
    assert any(isinstance(m, Error) and m.code == "unknown_call" for m in rest)


async def test_bad_params_closes_connection(agent: AgentService) -> None:
    """An exec with a field of the wrong type closes that connection with bad_params."""
    peer = await CenterPeer.connect(agent.port)
    try:
        payload = b"\x82\xa4call\xa4exec\xa6params\x81\xa5epoch\xa3one"  # {"epoch": "one"}
        peer.conn._writer.write(b"$%d\r\n%b\r\n" % (len(payload), payload))
        rest = await _closed(peer)
        assert any(isinstance(m, Error) and m.code == "bad_params" for m in rest)
    finally:
        await peer.close()
    assert agent.control.runs == {}


async def test_stale_epoch_refused(center: CenterPeer) -> None:
    """After epoch 5, an exec or kill with epoch 4 gets stale_epoch; the connection stays up."""
    await center.sync(epoch=5)
    stale = exec_msg("/usr/bin/true", epoch=4)
    await center.send(stale)
    error = await center.expect(Error)
    assert error.code == "stale_epoch" and "epoch 4 is below 5" in error.message
    await center.send(Kill(epoch=3, task_id=7))
    assert (await center.expect(Error)).code == "stale_epoch"
    finished = await center.run(exec_msg("/usr/bin/true", epoch=5))
    assert finished.status == "success"
    assert not any(getattr(m, "ref", None) == stale.ref for m in center.seen)


async def test_implausible_epoch_jump_refused(center: CenterPeer) -> None:
    """After epoch 5, a ping and an exec with a forged huge epoch are not obeyed: epoch 5 still
    runs (a holder of the secret cannot lock the real leader out)."""
    await center.sync(epoch=5)
    forged = 5 + MAX_EPOCH_STEP + 1
    await center.sync(epoch=forged)  # a ping: answered, its epoch not noted
    await center.send(exec_msg("/usr/bin/true", epoch=forged))
    error = await center.expect(Error)
    assert error.code == "stale_epoch" and "jumps more than" in error.message
    finished = await center.run(exec_msg("/usr/bin/true", epoch=5))
    assert finished.status == "success"


async def test_higher_epoch_is_durable(
    make_config: Callable[..., AgentConfig], agent: AgentService
) -> None:
    """The highest epoch survives a restart and is reported in AgentState."""
    peer = await CenterPeer.connect(agent.port)
    await peer.expect(AgentState)
    await peer.run(exec_msg("/usr/bin/true", epoch=9))
    await peer.close()
    await stopped(agent)
    async with running(make_config()) as again:
        peer = await CenterPeer.connect(again.port)
        state = await peer.expect(AgentState)
        assert state.epoch == 9 and state.agent_name == "test-agent"
        await peer.send(exec_msg("/usr/bin/true", epoch=8))
        assert (await peer.expect(Error)).code == "stale_epoch"
        await peer.close()


async def test_unacked_events_resent_on_reconnect_until_acked(agent: AgentService) -> None:
    """Events not acked are resent, in seq order, on the next connection; acked ones are not."""
    first = await CenterPeer.connect(agent.port)
    await first.expect(AgentState)
    msg = exec_msg("/usr/bin/id -un")
    finished = await first.run(msg)
    started = await first.expect(RunStarted, msg.ref.runid)
    await first.close()

    second = await CenterPeer.connect(agent.port)
    state = await second.expect(AgentState)
    assert state.running == []
    again = [await second.expect(RunStarted), await second.expect(RunFinished)]
    assert again == [started, finished]
    assert (await second.sync(epoch=1)) == []
    await second.send(Ack(seqs=[started.seq, finished.seq]))
    await wait_for(lambda: agent.outbox.count == 0)
    await second.close()

    third = await CenterPeer.connect(agent.port)
    await third.expect(AgentState)
    assert (await third.sync(epoch=1)) == []
    await third.close()


async def test_results_survive_restart(
    make_config: Callable[..., AgentConfig], agent: AgentService
) -> None:
    """An agent restarted on the same state dir resends unacked results and still knows the
    run ids it has seen (a repeated exec after the restart runs nothing)."""
    peer = await CenterPeer.connect(agent.port)
    await peer.expect(AgentState)
    msg = exec_msg("/usr/bin/id -un", epoch=2)
    finished = await peer.run(msg)
    await peer.close()
    await stopped(agent)

    async with running(make_config()) as again:
        peer = await CenterPeer.connect(again.port)
        await peer.expect(AgentState)
        assert (await peer.expect(RunFinished, msg.ref.runid)) == finished
        await peer.send(msg)
        later = await peer.sync(epoch=2)
        assert [m for m in later if getattr(m, "ref", None) == msg.ref] == []
        await peer.ack_all()
        await wait_for(lambda: again.outbox.count == 0)
        await peer.close()


async def test_events_follow_the_leader(agent: AgentService) -> None:
    """Run events go to the connection whose center sent the highest epoch."""
    old = await CenterPeer.connect(agent.port, name="old-leader")
    new = await CenterPeer.connect(agent.port, name="new-leader")
    try:
        await old.sync(epoch=3)
        await new.sync(epoch=4)
        msg = exec_msg("/usr/bin/true", epoch=4)
        await old.send(msg)  # sent via the old leader's connection, reported to the new one
        await new.expect(RunFinished, msg.ref.runid)
        assert [m for m in await old.sync(epoch=3) if getattr(m, "ref", None) == msg.ref] == []
    finally:
        await old.close()
        await new.close()


async def test_state_lists_running_runs(agent: AgentService, center: CenterPeer) -> None:
    """A new connection's AgentState lists the run ids still running."""
    msg = exec_msg("/bin/sleep 300")
    await center.send(msg)
    await center.expect(RunStarted, msg.ref.runid)
    other = await CenterPeer.connect(agent.port)
    try:
        state = await other.expect(AgentState)
        assert state.running == [msg.ref.runid]
        pong = await center.sync(epoch=1)
        assert pong == []
    finally:
        await other.close()
    await center.send(Kill(epoch=1, task_id=7, runid=msg.ref.runid))
    await center.expect(RunFinished, msg.ref.runid)


async def test_live_output_chunks(center: CenterPeer) -> None:
    """Output of a running process arrives as RunOutput chunks at increasing offsets."""
    msg = exec_msg("echo one; sleep 0.6; echo two", shell=True)
    finished = await center.run(msg)
    chunks = [m for m in center.seen if getattr(m, "runid", None) == msg.ref.runid]
    assert b"".join(c.data for c in chunks) == b"one\ntwo\n" == finished.output
    assert [c.offset for c in chunks] == [0, 4][: len(chunks)]  # 2 unless the tick ran late


async def test_empty_runid_refused(center: CenterPeer) -> None:
    """An exec without a run id is answered with an error and runs nothing."""
    msg = exec_msg("/usr/bin/true")
    await center.send(dataclasses.replace(msg, ref=dataclasses.replace(msg.ref, runid="")))
    assert (await center.expect(Error)).code == "bad_exec"
    assert [m for m in await center.sync(epoch=1) if isinstance(m, RunStarted)] == []


async def test_leader_gone_events_resent_to_successor(agent: AgentService) -> None:
    """When the leader's connection ends, the remaining connection gets its unacked events."""
    standby = await CenterPeer.connect(agent.port, name="standby")
    leader = await CenterPeer.connect(agent.port, name="leader")
    try:
        await standby.sync(epoch=3)
        await leader.sync(epoch=4)
        msg = exec_msg("/usr/bin/true", epoch=4)
        finished = await leader.run(msg)
        await leader.close()
        assert (await standby.expect(RunFinished, msg.ref.runid)) == finished
    finally:
        await standby.close()
        await leader.close()
