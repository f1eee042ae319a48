"""H in cron fields and jitter_s: stable, spread, in range, in order (pure, table-driven)."""

from __future__ import annotations

import itertools
from collections import Counter
from datetime import UTC, datetime

import pytest

from center import cronexpr
from center.cronexpr import parse_schedule
from center.errors import RuleError
from center.planner import Planner
from center.timing import Timing, build_timing

T0 = 1_767_225_600_000_000  # 2026-01-01T00:00:00Z in µs
S = 1_000_000


def _utc(us: int) -> datetime:
    return datetime.fromtimestamp(us / S, UTC)


@pytest.mark.parametrize(
    ("expr", "check"),
    [
        ("H * * * *", lambda d: d.second == 0),
        ("H(0-29) 2 * * *", lambda d: d.minute <= 29 and d.hour == 2),
        ("H/15 * * * *", lambda d: d.minute % 15 == _utc(0).minute % 15 or True),
        ("0 H(10-20) * * *", lambda d: 10 <= d.hour <= 20 and d.minute == 0),
        ("0 0 H * *", lambda d: 1 <= d.day <= 28),
        ("0 0 H/7 * *", lambda d: 1 <= d.day <= 28),
        ("0 0 * H *", lambda d: d.day == 1 or True),
        ("0 0 * * H", lambda d: d.hour == 0),
        ("H * * * * *", lambda d: True),
        ("H(30-39) H(5-9) * * * *", lambda d: 30 <= d.second <= 39 and 5 <= d.minute <= 9),
        ("h,30 * * * *", lambda d: True),
    ],
)
def test_h_fields_stay_in_their_range_for_every_seed(expr, check):
    """Whatever the rule id, an H field takes values within its field (day-of-month 1-28)."""
    for seed in range(1, 60):
        fires = parse_schedule(expr, seed=seed).preview_us(T0, 5)
        assert len(fires) == 5
        assert all(check(_utc(f)) for f in fires), (expr, seed)


@pytest.mark.parametrize(
    ("expr", "seed", "expansion"),
    [
        # pinned: a change of the hash would move every H rule's times in every cluster
        ("H * * * *", 42, "51 * * * *"),
        ("H/15 * * * *", 42, "12-59/15 * * * *"),
        ("H H * * *", 7, "14 17 * * *"),
    ],
)
def test_h_expansion_is_pinned(expr, seed, expansion):
    """The value is a Weyl step of the seed plus SHA-256 of (position, item), scaled by its top
    bits: the same on every center and every release."""
    assert parse_schedule(expr, seed=seed).expansion == expansion


def test_h_steps_keep_their_step():
    """H/15 fires four times an hour, 15 minutes apart; H(0-29)/10 three times in 0-29."""
    for seed in range(1, 30):
        minutes = [
            _utc(f).minute for f in parse_schedule("H/15 * * * *", seed=seed).preview_us(T0, 4)
        ]
        assert [(b - a) % 60 for a, b in itertools.pairwise(minutes)] == [15, 15, 15]
        within = [
            _utc(f).minute
            for f in parse_schedule("H(0-29)/10 * * * *", seed=seed).preview_us(T0, 3)
        ]
        assert all(m <= 29 for m in within) and within[1] - within[0] == 10


def test_h_in_the_seconds_field():
    """A 6-field rule's H second: once a minute at a second of its own, not always 0."""
    seconds = set()
    for seed in range(1, 40):
        fires = parse_schedule("H * * * * *", seed=seed).preview_us(T0, 3)
        assert [b - a for a, b in itertools.pairwise(fires)] == [60 * S, 60 * S]
        seconds.add(_utc(fires[0]).second)
    assert len(seconds) > 15


def test_same_times_on_two_centers():
    """Two centers (separate parses, caches emptied between, separate Planners) plan H rules
    at the same instants."""
    exprs = ["H * * * *", "H H * * *", "H(0-29)/10 H * * 1-5", "H H(8-18) * * * *"]

    def plan() -> list[tuple[int, int]]:
        cronexpr._parse_cached.cache_clear()
        cronexpr._compile_fields.cache_clear()
        planner = Planner()
        for task_id in range(1, 201):
            planner.set_rule(task_id, parse_schedule(exprs[task_id % 4], seed=task_id), T0)
        return [(f.task_id, f.sched_us) for f in planner.due(T0 + 86_400 * S)]

    assert plan() == plan()


def test_thousand_h_rules_spread_over_the_hour():
    """Rules 1..1000 all saying `H * * * *`: no minute gets more than twice the mean."""
    minutes = Counter(
        _utc(parse_schedule("H * * * *", seed=i).next_fire_us(T0 - 1) or 0).minute
        for i in range(1, 1001)
    )
    mean = 1000 / 60
    assert len(minutes) == 60 and max(minutes.values()) <= 2 * mean
    assert max(minutes.values()) <= 20  # the Weyl step spreads consecutive ids evenly


def test_h_rules_do_not_share_the_planner_memo_wrongly():
    """Two H rules with the same text but different ids fire at their own minutes in one
    Planner (Schedule equality includes the expansion)."""
    a, b = parse_schedule("H * * * *", seed=1), parse_schedule("H * * * *", seed=2)
    assert a.expansion != b.expansion and a != b
    planner = Planner()
    planner.set_rule(1, a, T0)
    planner.set_rule(2, b, T0)
    fires = {f.task_id: f.sched_us for f in planner.due(T0 + 3600 * S)}
    assert fires == {1: a.next_fire_us(T0), 2: b.next_fire_us(T0)} and fires[1] != fires[2]


def test_no_seed_is_seed_zero():
    """An unsaved rule (no id) previews with seed 0."""
    assert parse_schedule("H H * * *").expansion == parse_schedule("H H * * *", seed=0).expansion


@pytest.mark.parametrize(
    ("expr", "reason"),
    [
        ("H(5-1) * * * *", "within 0-59"),
        ("H(0-60) * * * *", "within 0-59"),
        ("0 0 H(1-31) * *", "1-28"),
        ("H/0 * * * *", "step 0"),
        ("H/60 * * * *", "step 60"),
        ("Hx * * * *", "is not H"),
        ("H(1-2 * * * *", "is not H"),
        ("0 0 * * H(0-7)", "within 0-6"),
    ],
)
def test_bad_h_is_refused_naming_the_rule(expr, reason):
    with pytest.raises(RuleError) as caught:
        parse_schedule(expr, seed=3)
    assert caught.value.field == "rule" and reason in caught.value.reason


def test_names_with_h_are_not_h():
    """THU is a day name, not an H item."""
    assert parse_schedule("0 0 * * THU").expansion == ""


# ---------------------------------------------------------------- jitter


@pytest.mark.parametrize(
    ("expr", "jitter_s"),
    [("* * * * *", 60), ("*/10 * * * * *", 7), ("0 9 * * *", 3600), ("@every 30s", 30)],
)
def test_jitter_offsets_are_in_range_stable_and_in_order(expr, jitter_s):
    """Each fire moves by an offset in [0, jitter_s), whole milliseconds, the same for the
    same (rule, fire); fires stay strictly increasing; next_fire_us(f - 1) == f."""
    # a plain fire at or up to jitter_s before T0 may land after it
    plain = parse_schedule(expr).preview_us(T0 - jitter_s * S - 1, 60)
    times = build_timing(expr, seed=11, jitter_s=jitter_s)
    again = build_timing(expr, seed=11, jitter_s=jitter_s)
    fires = times.preview_us(T0, 50)
    assert fires == again.preview_us(T0, 50)
    offsets = [f - max(p for p in plain if p <= f) for f in fires]
    assert all(0 <= o < jitter_s * S and o % 1000 == 0 for o in offsets)
    assert len(set(offsets)) > 1
    assert all(a < b for a, b in itertools.pairwise(fires))
    assert all(times.next_fire_us(f - 1) == f for f in fires)
    other = build_timing(expr, seed=12, jitter_s=jitter_s).preview_us(T0, 50)
    assert other != fires  # another rule, other offsets


def test_jitter_longer_than_the_gap_is_refused():
    with pytest.raises(RuleError) as caught:
        build_timing("*/10 * * * * *", seed=1, jitter_s=11)
    assert caught.value.field == "jitter_s" and "10 s" in caught.value.reason
    with pytest.raises(RuleError) as caught:
        build_timing("@daily", jitter_s=-1)
    assert caught.value.field == "jitter_s"


def test_plain_rules_stay_plain_schedules():
    """No calendar and no jitter: the shared Schedule itself, so the memo is shared as before."""
    assert build_timing("*/5 * * * *", seed=9) is parse_schedule("*/5 * * * *")
    assert isinstance(build_timing("*/5 * * * *", seed=9, jitter_s=5), Timing)
    # jitter keys the memo on the rule: equal rules with different ids are not equal
    assert build_timing("@hourly", seed=1, jitter_s=5) != build_timing(
        "@hourly", seed=2, jitter_s=5
    )
