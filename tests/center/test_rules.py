"""Rule validation names the field and the reason; the rule book turns rows into planner work."""

from __future__ import annotations

import dataclasses

import pytest

from center.errors import RuleError
from center.rulebook import RuleBook
from center.rules import Rule, rule_from_row, run_spec, validate_rule

GOOD = Rule(id=1, rule="* * * * *", execute="/bin/true", run_user="nobody")


@pytest.mark.parametrize(
    ("change", "field", "reason_part"),
    [
        ({"rule": "61 * * * *"}, "rule", "61"),
        ({"timezone": "Mars/Base"}, "timezone", "Mars/Base"),
        ({"execute": "   "}, "execute", "empty"),
        ({"execute": "echo 'unbalanced"}, "execute", "split"),
        ({"run_user": "bad user!"}, "run_user", "valid"),
        ({"env": "[1]"}, "env", "object"),
        ({"env": "{not json"}, "env", "JSON"),
        ({"env": '{"UNITEDCRON_RUNID": "x"}'}, "env", "reserved"),
        ({"env": '{"A": 1}'}, "env", "string"),
        ({"env": '{"A": "\\ud800"}'}, "env", "valid Unicode"),
        ({"overlap": "sometimes"}, "overlap", "skip"),
        ({"routing": "random"}, "routing", "listed"),
        ({"process_num": 0}, "process_num", "range"),
        ({"timeout_s": -1.0}, "timeout_s", "range"),
        ({"misfire": "maybe"}, "misfire", "once"),
        ({"env": '{"LD_PRELOAD": "/tmp/x.so"}'}, "env", "dynamic loader"),
        ({"env": '{"GCONV_PATH": "/tmp"}'}, "env", "dynamic loader"),
        ({"env": '{"LD_LIBRARY_PATH": "/opt"}'}, "env", "LD_LIBRARY_PATH"),
        ({"process_num": 257}, "process_num", "range 1-256"),
        ({"shard_total": 10_000}, "shard_total", "range 0-256"),
        ({"rule": "* * * * * *", "shard_total": 11}, "shard_total", "660 runs a minute"),
        ({"limit_nproc": -1}, "limit_nproc", "0 (no limit)"),
        ({"limit_mem_mb": 4}, "limit_mem_mb", "between 16"),
        ({"limit_cpu_s": 10**9}, "limit_cpu_s", "between 1"),
        ({"retry_unknown": "sometimes"}, "retry_unknown", "never, retry"),
    ],
)
def test_bad_fields_are_named_with_a_reason(change, field, reason_part):
    """Each invalid field raises RuleError naming that field and what is wrong."""
    with pytest.raises(RuleError) as info:
        validate_rule(dataclasses.replace(GOOD, **change))
    assert info.value.field == field
    assert reason_part in info.value.reason


def test_fan_out_within_bounds_is_accepted():
    """An every-second rule with 10 shards (600 runs a minute) is at the bound, not over it."""
    validate_rule(dataclasses.replace(GOOD, rule="* * * * * *", shard_total=10))
    validate_rule(dataclasses.replace(GOOD, rule="*/5 * * * *", shard_total=256))


def test_shell_rules_may_use_shell_syntax():
    """Quotes that a shell would accept are fine in shell mode, even unbalanced for shlex."""
    assert (
        validate_rule(dataclasses.replace(GOOD, shell=True, execute="echo 'a' | wc -c")) is not None
    )


def test_daemon_rules_need_no_schedule():
    """A daemon rule has no schedule to parse."""
    assert validate_rule(dataclasses.replace(GOOD, is_daemon=True, rule="")) is None


def test_a_rule_without_a_schedule_is_valid():
    """It runs by hand, after its parent, or as a workflow's step: nothing to plan."""
    assert validate_rule(dataclasses.replace(GOOD, rule="  ")) is None


def test_row_mapping_and_run_spec():
    """A crontab row becomes a Rule, and the run spec carries what the agent needs."""
    rule = rule_from_row(
        {
            "id": 4,
            "rule": "@hourly",
            "execute": "backup --all",
            "run_user": "nobody",
            "is_daemon": 0,
            "shell": 1,
            "env": '{"A": "b"}',
            "unknown_column": 1,
        },
        agents=(3, 2),
    )
    assert rule.shell is True and rule.agents == (2, 3)
    spec = run_spec(rule)
    assert (spec.task_id, spec.command, spec.env, spec.shell) == (
        4,
        "backup --all",
        {"A": "b"},
        True,
    )


def test_rulebook_plans_valid_rules_and_records_errors_once():
    """A broken rule gets its error stored once and is unplanned; good rules are planned."""
    book = RuleBook()
    bad = dataclasses.replace(GOOD, id=2, rule="not a cron")
    changes = book.update([GOOD, bad], complete=True)
    assert [t for t, _ in changes.plan] == [1]
    assert 2 in changes.unplan and changes.errors[2].startswith("rule:")
    stored_bad = dataclasses.replace(bad, error=changes.errors[2])
    again = book.update([GOOD, stored_bad], complete=True)
    assert not again, "unchanged rows (with their stored error) need no work"


def test_rulebook_pause_fix_and_delete():
    """Pausing unplans, fixing clears the error, a row gone from a complete load is unplanned."""
    book = RuleBook()
    book.update([GOOD], complete=True)
    paused = book.update([dataclasses.replace(GOOD, status=0, update_time=5)], complete=False)
    assert paused.unplan == [1] and not paused.plan
    broken = book.update([dataclasses.replace(GOOD, rule="x", update_time=6)], complete=False)
    fixed = book.update(
        [dataclasses.replace(GOOD, update_time=7, error=broken.errors[1])], complete=False
    )
    assert fixed.errors == {1: ""} and [t for t, _ in fixed.plan] == [1]
    gone = book.update([], complete=True)
    assert gone.unplan == [1] and book.rules == {}
