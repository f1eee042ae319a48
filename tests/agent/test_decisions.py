"""Pure process-model decisions as tables: overlap, backoff and health, desired daemon state."""

from __future__ import annotations

import pytest

from agent.config import AgentConfig
from agent.decisions import (
    MAX_EPOCH_STEP,
    DaemonPolicy,
    Health,
    Overlap,
    RuleLoad,
    after_exit,
    daemon_exec,
    decide_overlap,
    epoch_refusal,
    exit_summary,
    launch_key,
    plan_wanted,
)
from agent.outbox import Outbox
from protocol.messages import DaemonsWanted, RunFinished, RunRef, RunSpec
from tests.test_purity import _problems

POLICY = DaemonPolicy(backoff_s=1.0, backoff_max_s=8.0, stable_s=30.0, crashloop_after=3)


def _spec(overlap: str = "skip", process_num: int = 1, **kw: object) -> RunSpec:
    kw.setdefault("command", "/bin/true")
    return RunSpec(task_id=4, overlap=overlap, process_num=process_num, **kw)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("overlap", "process_num", "load", "expected"),
    [
        ("skip", 1, RuleLoad(0, 0, 0), Overlap.START),
        ("skip", 1, RuleLoad(1, 1, 0), Overlap.SKIP),
        ("skip", 0, RuleLoad(0, 0, 0), Overlap.START),  # 0 means 1
        ("parallel", 2, RuleLoad(1, 1, 0), Overlap.START),
        ("parallel", 2, RuleLoad(2, 2, 0), Overlap.SKIP),
        ("queue", 1, RuleLoad(1, 1, 0), Overlap.QUEUE),
        ("queue", 1, RuleLoad(1, 1, 1), Overlap.SKIP),
        ("queue", 2, RuleLoad(1, 1, 1), Overlap.SKIP),  # a slot is promised to the waiting run
        ("queue", 3, RuleLoad(1, 1, 1), Overlap.START),  # the cap rose since
        ("replace", 1, RuleLoad(1, 1, 0), Overlap.REPLACE_RUNNING),
        ("replace", 1, RuleLoad(1, 0, 1), Overlap.REPLACE_WAITING),
        ("replace", 2, RuleLoad(2, 1, 1), Overlap.REPLACE_RUNNING),
        ("nonsense", 1, RuleLoad(1, 1, 0), Overlap.SKIP),
    ],
)
def test_decide_overlap(overlap: str, process_num: int, load: RuleLoad, expected: Overlap) -> None:
    """Each policy's decision at and below the cap."""
    assert decide_overlap(_spec(overlap, process_num), load)[0] is expected


def test_skip_reasons() -> None:
    """A skip says why: the cap reached, or a run already queued."""
    assert decide_overlap(_spec("parallel", 2), RuleLoad(2, 2, 0))[1] == (
        "2 runs of rule 4 already running (process_num=2)"
    )
    assert decide_overlap(_spec("queue"), RuleLoad(1, 1, 1))[1] == (
        "a run of rule 4 is already queued"
    )


def test_backoff_doubles_to_the_cap_and_flags_a_crash_loop() -> None:
    """Quick deaths double the delay up to the cap; the third in a row is a crash loop."""
    health, delays, looping = Health(), [], []
    for _ in range(6):
        health = after_exit(health, uptime_s=0.1, requested=False, policy=POLICY)
        delays.append(health.delay_s)
        looping.append(health.crash_looping(POLICY))
    assert delays == [1.0, 2.0, 4.0, 8.0, 8.0, 8.0]
    assert looping == [False, False, True, True, True, True]


@pytest.mark.parametrize(
    ("before", "uptime_s", "requested", "after"),
    [
        (Health(5, 8.0), 30.0, False, Health(0, 1.0)),  # stayed up: starts over
        (Health(2, 4.0), 0.5, True, Health(2, 1.0)),  # killed on request: no failure
        (Health(0, 0.0), 0.0, False, Health(1, 1.0)),  # never started counts as a death
    ],
)
def test_after_exit(before: Health, uptime_s: float, requested: bool, after: Health) -> None:
    """Stable runs reset, requested kills restart soon without counting, others count."""
    assert after_exit(before, uptime_s, requested, POLICY) == after


def _finished(**kw: object) -> RunFinished:
    ref = RunRef(runid="r", task_id=4, sched_us=1)
    return RunFinished(seq=0, ref=ref, end_us=2, **kw)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("event", "summary"),
    [
        (_finished(status="failed", start_us=1, code=1, output=b"a\nboom  \n\n"), "exit 1: boom"),
        (_finished(status="failed", start_us=1, signal=9), "signal SIGKILL"),
        (
            _finished(status="failed", reason="run_user 'x': no such user"),
            "cannot start: run_user 'x': no such user",
        ),
        (_finished(status="success", start_us=1, code=0, output=b"\xffbye"), "exit 0: \ufffdbye"),
    ],
)
def test_exit_summary(event: RunFinished, summary: str) -> None:
    """The last exit text: how it ended, then the last non-blank output line."""
    assert exit_summary(event) == summary


def test_launch_key_ignores_what_needs_no_restart() -> None:
    """process_num, timeouts, grace, output cap and updated_us never replace instances."""
    base = _spec(env={"A": "1", "B": "2"})
    same = _spec(
        process_num=5,
        timeout_s=3.0,
        kill_grace_s=1.0,
        output_max_bytes=10,
        updated_us=99,
        env={"B": "2", "A": "1"},
    )
    assert launch_key(base) == launch_key(same)
    for change in (
        {"command": "/bin/false"},
        {"shell": True},
        {"run_user": "nobody"},
        {"env": {"A": "2"}},
        {"cwd": "/tmp"},
    ):
        assert launch_key(_spec(**change)) != launch_key(base)


def test_plan_wanted() -> None:
    """A complete set replaces; an update adds, changes, and removes what it stops."""
    a, b, c = (RunSpec(task_id=t, command="x") for t in (1, 2, 3))
    current = {1: a, 2: b}
    assert plan_wanted(current, DaemonsWanted(epoch=1, specs=[c], complete=True)) == {3: c}
    changed = RunSpec(task_id=2, command="y")
    update = DaemonsWanted(epoch=1, specs=[changed, c], stopped=[1, 3])
    assert plan_wanted(current, update) == {2: changed}
    assert current == {1: a, 2: b}


def test_daemon_exec_identity() -> None:
    """A daemon start's run id comes from its start time, agent and instance; no timeout."""
    msg = daemon_exec(_spec(timeout_s=5.0), index=2, aid=7, start_us=123, epoch=3)
    assert msg.ref.runid == "4-123-7-0-2" and msg.ref.sched_us == 123
    assert (msg.ref.trigger, msg.ref.instance, msg.epoch, msg.spec.timeout_s) == (
        "daemon",
        2,
        3,
        0.0,
    )


def test_daemon_settings_make_the_policy() -> None:
    """agent_daemon_* settings build the policy; a cap below the first delay is raised to it."""
    config = AgentConfig(
        secret="0123456789abcdef",
        agent_daemon_backoff_s=2,
        agent_daemon_backoff_max_s=1,
        agent_daemon_crashloop_after=5,
    )
    assert config.daemon_policy() == DaemonPolicy(2.0, 2.0, 30.0, 5)


def test_outbox_keeps_the_wanted_daemons(tmp_path) -> None:
    """The wanted daemon set survives reopening the outbox; none stored reads as None."""
    box = Outbox.open(tmp_path)
    assert box.load_daemons() is None
    saved = DaemonsWanted(epoch=2, specs=[_spec(env={"K": "v"})], complete=True, aid=7)
    box.commit([], daemons=saved)
    box.close()
    box = Outbox.open(tmp_path)
    assert box.load_daemons() == saved
    box.close()


def test_decisions_module_is_pure() -> None:
    """agent.decisions imports no event loop, database or clock."""
    assert _problems("agent.decisions", set()) == []


@pytest.mark.parametrize(
    ("epoch", "highest", "refused"),
    [
        (5, 5, ""),
        (6, 5, ""),
        (4, 5, "below"),
        (5 + MAX_EPOCH_STEP, 5, ""),
        (6 + MAX_EPOCH_STEP, 5, "jumps"),
        (2**62, -1, ""),  # nothing seen yet: the first center is trusted
        (2**62, 0, "jumps"),
    ],
)
def test_epoch_refusal(epoch: int, highest: int, refused: str) -> None:
    reason = epoch_refusal(epoch, highest)
    assert (refused in reason) if refused else reason == ""
