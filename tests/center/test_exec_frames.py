"""Exec frames encoded ahead: byte for byte the Exec's encoding; specs kept only for rules
that fire again soon, and packed again after an edit."""

from __future__ import annotations

import asyncio
import dataclasses

import pytest

from center.dispatcher import exec_for
from center.exec_frames import KEEP_SPEC_US, ExecFrames, soon_again
from center.planner import Fire
from center.rules import Rule, run_spec
from center.runs import plan_run
from protocol.codec import encode

T0 = 1_767_225_600_000_000
S = 1_000_000


@pytest.mark.parametrize(
    ("fires", "kept"),
    [
        ([], set()),
        ([Fire(1, T0, T0 + 60 * S)], {1}),
        ([Fire(1, T0, T0 + KEEP_SPEC_US)], {1}),  # the bound itself is soon
        ([Fire(1, T0, T0 + KEEP_SPEC_US + 1)], set()),  # hourly, daily
        ([Fire(1, T0, None)], set()),  # a one-off: no next fire
        ([Fire(1, T0, T0 + S), Fire(2, T0, T0 + 3600 * S), Fire(3, T0, T0 + 300 * S)], {1, 3}),
    ],
)
def test_soon_again(fires: list[Fire], kept: set[int]) -> None:
    assert soon_again(fires) == kept


def _encoded(frames: ExecFrames, rule: Rule, keep: set[int], sched_us: int = T0) -> bytes:
    run = plan_run(rule.id, sched_us, aid=2)
    asyncio.run(frames.encode_ahead([run], {rule.id: rule}, keep))
    frame = frames.frame_of(run, rule)
    assert frame == encode(exec_for(run, run_spec(rule), 3))  # what the agent must get
    return frame


@pytest.mark.parametrize("soon", [True, False])
def test_frames_are_the_exec_encoded_whether_the_spec_is_kept_or_not(soon: bool) -> None:
    rule = Rule(id=5, rule="* * * * * *", execute="echo one", update_time=10)
    frames = ExecFrames(epoch=3)
    keep = {5} if soon else set()
    _encoded(frames, rule, keep)
    assert (5 in frames._specs) is soon
    _encoded(frames, rule, keep, T0 + S)  # served from the kept spec, or packed again
    edited = dataclasses.replace(rule, execute="echo two", update_time=11)
    _encoded(frames, edited, keep, T0 + 2 * S)  # never the old spec after an edit
