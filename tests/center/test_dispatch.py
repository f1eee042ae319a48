"""Dispatch decisions: send to a connected agent, wait for a reconnecting one, else say why not."""

from __future__ import annotations

import dataclasses

import pytest

from center.dispatch_loop import DISPATCH_IDLE_S, DISPATCH_STEP_S, wait_for
from center.dispatcher import FLUSH_EVERY, DispatchQueue, decide_dispatch, exec_for
from center.rules import Rule, run_spec
from center.runs import plan_run
from protocol.codec import MessageDecoder, encode
from protocol.messages import Exec, make_runid

RULE = Rule(id=1, rule="* * * * *", execute="/bin/true", run_user="nobody", agents=(1, 2))
S = 1_000_000


def test_queue_orders_by_time_and_ignores_repeats():
    """Runs come out at their time, in time order; a run queued twice comes out once."""
    q = DispatchQueue()
    a, b = plan_run(1, 2 * S, 1), plan_run(1, 1 * S, 1)
    q.add([a, b, a])
    assert q.pop_due(S - 1) == []
    assert q.pop_due(2 * S) == [b, a]
    assert len(q) == 0


def _frame(epoch: int):
    return lambda run, rule: encode(exec_for(run, run_spec(rule), epoch))


def test_decide_sends_waits_skips_and_misses():
    """Connected → exec; disconnected within grace → wait; past grace → missed; paused → skipped."""
    now = 100 * S
    due = [
        plan_run(1, now, 1),
        plan_run(1, now, 2),
        plan_run(1, now - 20 * S, 2),
        plan_run(9, now, 1),
    ]
    out = decide_dispatch(
        due,
        now_us=now,
        rules={1: RULE},
        connected=lambda aid: aid == 1,
        grace_us=10 * S,
        frame_of=_frame(7),
    )
    [frame] = MessageDecoder().feed(b"".join(out.frames[1]))
    assert isinstance(frame, Exec) and frame.epoch == 7 and frame.ref.runid == due[0].runid
    assert frame.spec.command == "/bin/true"
    assert out.sent == [due[0].runid]
    assert out.waiting == [due[1]]
    assert list(out.missed) == [due[2].runid] and "not connected" in out.missed[due[2].runid]
    assert list(out.skipped) == [due[3].runid]


def test_a_big_batch_goes_to_each_agent_in_slices_in_order():
    """Each agent's frames are flushed every FLUSH_EVERY as they are decided; what is left
    stays in `frames`; together, every sent run once, in order."""
    now = 100 * S
    due = [plan_run(1, now + i, 1) for i in range(2 * FLUSH_EVERY + 5)] + [plan_run(1, now, 2)]
    flushed: list[tuple[int, list[bytes]]] = []
    out = decide_dispatch(
        due,
        now_us=now,
        rules={1: RULE},
        connected=lambda aid: True,
        grace_us=10 * S,
        frame_of=_frame(1),
        flush=lambda aid, frames: flushed.append((aid, frames)),
    )
    assert [(aid, len(frames)) for aid, frames in flushed] == [(1, FLUSH_EVERY)] * 2
    assert len(out.frames[1]) == 5 and len(out.frames[2]) == 1
    to_1 = b"".join(f for _, frames in flushed for f in frames) + b"".join(out.frames[1])
    assert [m.ref.runid for m in MessageDecoder().feed(to_1)] == [r.runid for r in due[:-1]]
    assert out.sent == [r.runid for r in due]


def test_paused_rule_is_skipped_at_dispatch_time():
    """A rule paused between planning and its time is not sent."""
    paused = dataclasses.replace(RULE, status=0)
    out = decide_dispatch(
        [plan_run(1, S, 1)],
        now_us=S,
        rules={1: paused},
        connected=lambda aid: True,
        grace_us=0,
        frame_of=_frame(1),
    )
    assert not out.sent and "paused" in next(iter(out.skipped.values()))


def test_runids_are_deterministic():
    """The same fire planned by two leaders gets the same run id, so it dedupes."""
    assert make_runid(3, 5 * S, 2) == plan_run(3, 5 * S, 2).runid == f"3-{5 * S}-2-0-0"
    assert plan_run(3, 5 * S, 2, attempt=1).runid != plan_run(3, 5 * S, 2).runid


def test_the_dispatch_loop_waits_long_then_one_precise_step() -> None:
    assert wait_for(None, 0) == DISPATCH_IDLE_S
    assert wait_for(-5, 0) == 0  # overdue: at once
    assert wait_for(30_000, 0) == pytest.approx(0.03)  # within a step: to the instant
    assert wait_for(100_000, 0) == pytest.approx(DISPATCH_STEP_S)
    assert wait_for(700_000, 0) == pytest.approx(0.7 - DISPATCH_STEP_S)  # woken a step early
    assert wait_for(60_000_000, 0) == DISPATCH_IDLE_S
