"""Limits across the fleet: the pure admission (a fleet-wide cap, concurrency keys), the
holder book, and the leader's admission over both."""

from __future__ import annotations

import pytest

from center.admission import (
    GO,
    WAIT,
    KeyLoad,
    admit,
    admit_keys,
    at_instant,
    fleet_capped,
    key_full,
    rule_keys,
)
from center.commands import DONE, FAILED, ManualArgs, manual_runs
from center.dispatcher import DispatchQueue
from center.errors import RuleError
from center.fleet_limits import Limits
from center.holders import WAITER_STALE_US, Holder, HolderBook, fleet_slot, key_slot
from center.routing import AgentInfo
from center.rules import Rule, parse_keys, validate_rule
from center.runs import plan_run

S = 1_000_000


def _rule(**values: object) -> Rule:
    base: dict[str, object] = {"id": 5, "rule": "* * * * * *", "execute": "x"}
    return Rule(**(base | {"routing": "round_robin", "process_num": 2} | values))  # type: ignore[arg-type]


def _keyed(**values: object) -> Rule:
    return _rule(**({"routing": "listed", "gid": 1, "concurrency_keys": "db"} | values))


@pytest.mark.parametrize(
    ("overlap", "running", "verdict", "replace"),
    [
        ("skip", ["a"], GO, ""),
        (
            "skip",
            ["a", "b"],
            "2 runs of rule 5 already running across the fleet (process_num=2)",
            "",
        ),
        ("queue", ["a", "b"], WAIT, ""),
        ("replace", ["a", "b"], GO, "a"),
        ("parallel", ["a", "b", "c"], GO, ""),
    ],
)
def test_admit(overlap: str, running: list[str], verdict: str, replace: str) -> None:
    decision = admit(_rule(overlap=overlap), running)
    assert (decision.verdict, decision.replace) == (verdict, replace)


@pytest.mark.parametrize(
    ("values", "capped"),
    [
        ({}, True),
        ({"routing": "listed"}, False),
        ({"is_daemon": True, "rule": ""}, False),
    ],
)
def test_which_rules_are_capped_across_the_fleet(values: dict[str, object], capped: bool) -> None:
    assert fleet_capped(_rule(**values)) is capped
    assert fleet_capped(None) is False


A, B = ("r1", 1), ("r2", 2)


@pytest.mark.parametrize(
    ("load", "why"),
    [
        (KeyLoad("db", 2, (A,)), ""),
        (KeyLoad("db", 2, ()), ""),
        (
            KeyLoad("db", 2, (A, B)),
            "concurrency key db full: 2/2 held by runs r1 (agent 1), r2 (agent 2)",
        ),
        (
            KeyLoad("db", 2, (A,), ahead=1),
            "concurrency key db full: 1/2 held by runs r1 (agent 1); 1 queued before this run",
        ),
        (
            KeyLoad("db", 1, (), ahead=1),
            "concurrency key db full: 0/1 held by no run; 1 queued before this run",
        ),
        (KeyLoad("db", 0, ()), "concurrency key db full: 0/0 held by no run"),
        (KeyLoad("db", None, ()), "concurrency key db does not exist in the rule's group"),
        (
            KeyLoad("db", 6, tuple((f"r{i}", 1) for i in range(7))),
            "concurrency key db full: 7/6 held by runs r0 (agent 1), r1 (agent 1), r2 (agent 1), "
            "r3 (agent 1), r4 (agent 1) and 2 more",
        ),
    ],
)
def test_key_full(load: KeyLoad, why: str) -> None:
    assert key_full(load) == why


@pytest.mark.parametrize(
    ("overlap", "loads", "verdict"),
    [
        ("skip", [KeyLoad("a", 2, (A,)), KeyLoad("b", 1, ())], GO),
        (
            "skip",
            [KeyLoad("a", 2, (A,)), KeyLoad("b", 1, (B,))],
            "concurrency key b full: 1/1 held by runs r2 (agent 2)",
        ),
        ("queue", [KeyLoad("a", 1, (A,))], WAIT),
        ("replace", [KeyLoad("a", 1, (A,))], WAIT),  # a key is never pre-empted
        ("parallel", [KeyLoad("a", 1, (A,))], WAIT),  # nor exceeded by one rule
        ("queue", [KeyLoad("a", None)], WAIT),
        ("skip", [], GO),
    ],
)
def test_admit_keys(overlap: str, loads: list[KeyLoad], verdict: str) -> None:
    assert admit_keys(_keyed(overlap=overlap), loads).verdict == verdict


@pytest.mark.parametrize(
    ("text", "keys", "error"),
    [
        ("", (), ""),
        (" db , cpu-heavy ", ("db", "cpu-heavy"), ""),
        ("db,db", (), "names a key twice"),
        ("db;drop", (), "is not a key name"),
        (",".join(f"k{i}" for i in range(9)), (), "at most 8 keys"),
    ],
)
def test_parse_keys(text: str, keys: tuple[str, ...], error: str) -> None:
    if error:
        with pytest.raises(RuleError, match=error) as info:
            parse_keys(text)
        assert info.value.field == "concurrency_keys"
    else:
        assert parse_keys(text) == keys


def test_a_daemon_holds_no_key() -> None:
    """Keys are held by runs that end: a daemon rule listing one is refused, naming the field."""
    with pytest.raises(RuleError) as info:
        validate_rule(_keyed(is_daemon=True, rule=""))
    assert info.value.field == "concurrency_keys"


def test_rules_with_keys_are_decided_at_their_instant() -> None:
    assert at_instant(_keyed()) and rule_keys(_keyed()) == ("db",)
    assert not at_instant(_keyed(concurrency_keys="")) and not at_instant(None)
    assert at_instant(_rule())  # fleet-capped


def test_book_counts_until_released_and_forgets_holders_past_their_bound() -> None:
    book, slot = HolderBook(), fleet_slot(5, 0)
    book.hold([slot, key_slot(1, "db")], "r1", Holder(7, 0, 100 * S))
    book.hold([slot], "r2", Holder(8, 10 * S, 110 * S))
    book.hold([fleet_slot(5, 1)], "shard-1", Holder(9, 10 * S, 110 * S))
    assert book.holders(slot, 20 * S) == [("r1", 7), ("r2", 8)] and book.agent_of("r2") == 8
    book.release("r1")
    assert book.holders(slot, 20 * S) == [("r2", 8)] and book.holders(key_slot(1, "db"), 0) == []
    assert book.holders(fleet_slot(5, 1), 20 * S) == [("shard-1", 9)]
    assert book.holders(slot, 111 * S) == [], "no end within its bound: forgotten"
    assert not book.holds("r2") and book.agent_of("r2") == 0


def test_waiters_keep_their_place_and_leave_when_no_longer_seen() -> None:
    book, slot = HolderBook(), key_slot(1, "db")
    book.wait([slot], "w1", 0)
    book.wait([slot], "w2", 0)
    book.wait([slot], "w1", S)  # seen again: keeps its place
    assert book.waiting(slot) == ["w1", "w2"]
    assert (book.ahead(slot, "w1", S), book.ahead(slot, "w2", S), book.ahead(slot, "new", S)) == (
        0,
        1,
        2,
    )
    book.hold([slot], "w1", Holder(1, S, 10 * S))
    assert book.waiting(slot) == ["w2"]
    assert book.ahead(slot, "new", S + WAITER_STALE_US + 1) == 0, "w2 (not seen for 2 s) is gone"


def _run(task_id: int, sched_s: int, aid: int = 1):  # type: ignore[no-untyped-def]
    return plan_run(task_id, sched_s * S, aid)


def test_limits_admit_up_to_the_limit_across_agents_then_by_policy() -> None:
    """Limit 2 over rules of one group: two go (on any agents), then skip says why, queue
    waits its turn first come first served, and an ended run makes room."""
    limits = Limits(lost_after_s=3600)
    limits.keys = {(1, "db"): 2}
    skip, queue = _keyed(id=1), _keyed(id=2, overlap="queue")
    assert limits.admit(_run(1, 1, aid=1), skip, S).verdict == GO
    assert limits.admit(_run(2, 1, aid=2), queue, S).verdict == GO
    full = limits.admit(_run(1, 2), skip, 2 * S).verdict
    assert full.startswith("concurrency key db full: 2/2 held by runs 1-1000000-1-0-0 (agent 1)")
    assert limits.admit(_run(2, 2), queue, 2 * S).verdict == WAIT
    assert limits.admit(_run(2, 3), queue, 3 * S).verdict == WAIT
    limits.ended("1-1000000-1-0-0")
    assert limits.admit(_run(2, 3), queue, 3 * S).verdict == WAIT, "the older waiter goes first"
    assert limits.admit(_run(1, 3), skip, 3 * S).verdict != GO, "nor does a newcomer"
    assert limits.admit(_run(2, 2), queue, 3 * S).verdict == GO
    assert limits.admit(_run(2, 2), queue, 3 * S).verdict == GO, "sent again: still its slot"
    assert limits.admit(_run(2, 3), queue, 3 * S).verdict == WAIT


def test_limits_fleet_cap_and_keys_together() -> None:
    """A fleet-capped rule with a key: the key is checked first, and a replace stops the
    oldest run of its own cap (on its agent), never a run of another rule."""
    limits = Limits(lost_after_s=3600)
    limits.keys = {(1, "db"): 5}
    rule = _rule(gid=1, concurrency_keys="db", process_num=1, overlap="replace")
    assert limits.admit(_run(5, 1, aid=3), rule, S).verdict == GO
    decision = limits.admit(_run(5, 2, aid=4), rule, 2 * S)
    assert (decision.verdict, decision.replace, decision.replace_aid) == (GO, "5-1000000-3-0-0", 3)
    assert limits.book.holders(key_slot(1, "db"), 2 * S) == [("5-2000000-4-0-0", 4)]
    limits.keys = {}
    assert limits.admit(_run(5, 3), rule, 3 * S).verdict == WAIT, "the key was deleted"


# ---------------------------------------------------------------- manual runs with extras


def _manual(**values: object) -> Rule:
    return Rule(**({"id": 9, "rule": "@yearly", "execute": "x", "agents": (3,)} | values))  # type: ignore[arg-type]


def test_manual_runs_carry_params_env_and_run_at() -> None:
    """The command's args become the runs' params and env, planned at run_at (or now)."""
    agents = {3: AgentInfo(id=3, name="a", ip="127.0.0.1", port=1, status=1)}
    extra = ManualArgs.of({"params": "--day 1", "env": {"B": "2", "A": "1"}, "run_at_us": 50 * S})
    out = manual_runs(_manual(allow_params=True), agents, 9, 10 * S, extra)
    assert out.status == DONE and "planned at" in out.result
    (run,) = out.runs
    assert (run.sched_us, run.trigger, run.params) == (50 * S, "manual", "--day 1")
    assert run.env == '{"A": "1", "B": "2"}' and run.env_override == {"A": "1", "B": "2"}
    refused = manual_runs(_manual(), agents, 9, 10 * S, extra)
    assert refused.status == FAILED and refused.result.startswith("params:")
    now = manual_runs(_manual(), agents, 9, 10 * S)
    assert now.runs[0].sched_us == 10 * S and now.runs[0].params == ""


@pytest.mark.parametrize(
    "args",
    [{"env": {"LD_PRELOAD": "x"}}, {"params": "'open"}, {"params": 5}, {"run_at_us": "soon"}],
)
def test_manual_args_are_checked_again_at_the_center(args: dict[str, object]) -> None:
    with pytest.raises(ValueError):
        ManualArgs.of(args)


def test_a_killed_planned_run_leaves_the_queue() -> None:
    """A run-at killed while planned is never handed to the dispatcher."""
    queue = DispatchQueue()
    keep, kill = plan_run(1, 5 * S, 1, trigger="manual"), plan_run(2, 5 * S, 1, trigger="manual")
    queue.add([keep, kill])
    queue.cancel([kill.runid, "not-queued"])
    assert queue.pop_due(6 * S) == [keep] and len(queue) == 0
