"""PlannedRun.ref_params: the exec's ref map made without a RunRef, as params_of makes it."""

from __future__ import annotations

import pytest

from center.runs import PlannedRun
from protocol.codec import encode_exec
from protocol.messages import params_of
from protocol.vocabulary import Trigger

RUNS = [
    PlannedRun(runid="r1", task_id=7, aid=2, sched_us=1_700_000_000_000_000),
    PlannedRun(
        runid="r2",
        task_id=8,
        aid=3,
        sched_us=5,
        attempt=2,
        instance=1,
        trigger=Trigger.RETRY,
        first_runid="r0",
        parent_runid="p",
        flow_runid="f",
        env='{"A": "b"}',
    ),
]


@pytest.mark.parametrize("run", RUNS)
def test_ref_params_are_params_of_the_ref_in_order(run: PlannedRun) -> None:
    assert list(run.ref_params().items()) == list(params_of(run.ref).items())


@pytest.mark.parametrize("run", RUNS)
def test_an_exec_encodes_the_same_from_either(run: PlannedRun) -> None:
    spec = b"\x80"  # an empty map: the spec's bytes are copied as they are
    assert encode_exec(3, run.ref_params(), spec) == encode_exec(3, run.ref, spec)


def test_env_override_of_no_env_is_empty_and_of_bad_json_too() -> None:
    assert RUNS[0].env_override == {}
    assert RUNS[1].env_override == {"A": "b"}
    assert PlannedRun(runid="x", task_id=1, aid=1, sched_us=1, env="[").env_override == {}
