"""Rules in from the store: a full load streamed into rules, a poll that reads nothing when
nothing changed, and the rule book's indexes and memoised checks."""

from __future__ import annotations

import gc
from typing import Any

import pytest
from sqlalchemy import event, insert
from sqlalchemy.engine import Engine
from sqlalchemy.ext.asyncio import AsyncEngine

from center import store
from center.bulk import many_objects
from center.cronexpr import parse_schedule
from center.errors import RuleError
from center.planner import Planner
from center.rulebook import RuleBook
from center.rules import Rule, RuleFactory, validate_rule
from center.store.workflows import workflows_stamp
from center.tables import calendar, center_command, crontab, crontab_agent, workflow

T0 = 1_767_225_600_000_000  # 2026-01-01T00:00:00Z in µs


def _row(i: int, **values: object) -> dict[str, object]:
    row = {"id": i, "name": f"r{i}", "rule": "0 * * * *", "execute": "/bin/true"}
    return row | {"create_time": 10 * i, "update_time": 10 * i} | values


async def test_full_load_streams_every_rule_with_its_targets(engine: AsyncEngine):
    """Every row comes back as a Rule with its sorted targets, booleans as booleans, floats as
    floats; repeated texts are one object shared by the rules; `since` reads only newer."""
    async with engine.begin() as conn:
        await conn.execute(insert(crontab), [_row(i) for i in range(1, 7)])
        await conn.execute(
            insert(crontab),
            [_row(7, shell=1, is_daemon=1, timeout_s=2.5, env='{"A": "b"}', status=0)],
        )
        await conn.execute(
            insert(crontab_agent), [{"task_id": 1, "aid": 3}, {"task_id": 1, "aid": 2}]
        )
    rules = {r.id: r for r in await store.load_rules(engine)}
    assert sorted(rules) == list(range(1, 8))
    assert rules[1].agents == (2, 3) and rules[2].agents == ()
    seven = rules[7]
    assert seven.shell is True and seven.is_daemon is True and seven.failover is True
    assert seven.timeout_s == 2.5 and seven.env == '{"A": "b"}' and seven.status == 0
    assert rules[3] == Rule(id=3, name="r3", rule="0 * * * *", execute="/bin/true", update_time=30)
    assert rules[2].execute is rules[3].execute and rules[2].rule is rules[5].rule
    newer = await store.load_rules(engine, since_us=50)
    assert sorted(r.id for r in newer) == [6, 7]


async def test_a_rule_made_during_a_full_load_never_comes_without_its_targets(
    engine: AsyncEngine, other_writer: Engine
):
    """A rule and its target committed together while a full load runs: the load has it with
    its target or not at all (a later poll reads it), never with none. The load once read
    the targets first, so such a rule ran nowhere until its next edit."""
    async with engine.begin() as conn:
        await conn.execute(insert(crontab), [_row(1)])
        await conn.execute(insert(crontab_agent), [{"task_id": 1, "aid": 4}])
    made: list[str] = []

    def make_rule_between_reads(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        if made:
            return
        made.append(statement)
        with other_writer.begin() as writer:  # another connection, committed at once
            writer.execute(insert(crontab), [_row(2)])
            writer.execute(insert(crontab_agent), [{"task_id": 2, "aid": 5}])

    event.listen(engine.sync_engine, "after_cursor_execute", make_rule_between_reads)
    try:
        rules = {r.id: r for r in await store.load_rules(engine)}
    finally:
        event.remove(engine.sync_engine, "after_cursor_execute", make_rule_between_reads)
    assert made, "the rule was made while the load ran"
    assert rules[1].agents == (4,)
    assert 2 not in rules or rules[2].agents == (5,)
    assert (await store.load_rules(engine, since_us=10))[0].agents == (5,)


async def test_probe_sees_the_newest_rule_and_calendar_changes(engine: AsyncEngine):
    """The poll's probe: the newest update_time, and a calendars fingerprint that moves when
    a calendar is added."""
    assert await store.rules_probe(engine) == ((0, 0, 0), 0, (0, 0), 0)
    async with engine.begin() as conn:
        await conn.execute(insert(crontab), [_row(1), _row(2)])
    first = await store.rules_probe(engine)
    assert first.newest_rule_us == 20
    async with engine.begin() as conn:
        await conn.execute(
            insert(calendar).values(gid=1, name="x", base="weekdays", update_time=99)
        )
    assert (await store.rules_probe(engine)).calendars == (1, 99, 1) != first.calendars


async def test_probe_sees_the_workflows_stamp_and_the_oldest_pending_command(
    engine: AsyncEngine,
):
    """The same probe stands for the workflows' and the commands' polls: the stamp is
    workflows_stamp's, and the oldest command still pending is named (0 once none is)."""
    async with engine.begin() as conn:
        await conn.execute(
            insert(workflow).values(id=4, gid=1, name="w", create_time=77, update_time=77)
        )
        for kind in ("run", "kill"):
            await conn.execute(insert(center_command).values(kind=kind, task_id=1, created_us=1))
    probe = await store.rules_probe(engine)
    assert probe.workflows == await workflows_stamp(engine) == (77, 1)
    pending = await store.pending_commands(engine)
    assert probe.pending_command == pending[0].id
    for command in pending:
        await store.finish_command(engine, command.id, "done", "", 2)
    assert (await store.rules_probe(engine)).pending_command == 0


def test_factory_refuses_columns_not_starting_with_id():
    """The factory reads the id from a row's first column: anything else is refused."""
    with pytest.raises(ValueError, match="start with id"):
        RuleFactory(["name", "id"])


def test_rule_book_indexes_daemons_and_errors():
    """Daemon rules and rules in error are indexed as they change, not found by a scan."""
    book = RuleBook()
    daemon = Rule(id=1, rule="", execute="/bin/sleep 9", is_daemon=True)
    broken = Rule(id=2, rule="0 0 30 2 *", execute="/bin/true")
    book.update([daemon, broken, Rule(id=3, rule="* * * * *", execute="x")], complete=True)
    assert set(book.daemons) == {1} and book.in_error == {2}
    book.update([Rule(id=2, rule="* * * * *", execute="x", update_time=5)], complete=False)
    assert book.in_error == set()
    book.update([Rule(id=3, rule="* * * * *", execute="x")], complete=True)
    assert book.daemons == {} and set(book.rules) == {3}


def test_checks_are_memoised_yet_still_refuse():
    """Rules alike but for their id share one verdict, and a bad field is refused every time
    (from the memo too), naming the field."""
    bad = Rule(id=1, rule="* * * * *", execute="/bin/true", env="[1]")
    for task_id in (1, 2):
        with pytest.raises(RuleError) as caught:
            validate_rule(Rule(id=task_id, rule=bad.rule, execute=bad.execute, env=bad.env))
        assert caught.value.field == "env"
    assert validate_rule(Rule(id=3, rule="* * * * *", execute="/bin/true")) is not None


def test_planner_load_plans_like_one_rule_at_a_time():
    """A leader's bulk load gives the fires set_rule would, rules that never fire left out."""
    rules = [
        (1, parse_schedule("*/2 * * * * *")),
        (2, parse_schedule("*/3 * * * * *")),
        (3, parse_schedule("@at 2020-01-01T00:00:00Z")),
    ]
    one, many = Planner(), Planner()
    for task_id, schedule in rules:
        one.set_rule(task_id, schedule, T0)
    many.load(rules, T0)
    assert len(many) == len(one) == 2
    assert many.due(T0 + 7_000_000) == one.due(T0 + 7_000_000)


def test_many_objects_restores_the_collector():
    """The cyclic collector is off inside the block and as it was after it."""
    assert gc.isenabled()
    with many_objects():
        assert not gc.isenabled()
    assert gc.isenabled()
    gc.unfreeze()  # what the block froze: the test run's objects
