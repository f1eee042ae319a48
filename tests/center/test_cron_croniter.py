"""Random valid rules agree with croniter on their next fires in UTC.

Where croniter reads a rule differently on purpose, the generator stays clear of it:
* croniter spells "last Friday" ``L5``; UnitedCron takes the Quartz spelling ``5L``
  (translated below);
* croniter reads an equal range such as ``5-5`` as the whole field, and wraps reversed
  ranges, which UnitedCron rejects: ranges here always have low < high;
* croniter turns a restricted day field that happens to list every day (``1-31``, ``0-6``)
  into ``*`` when the other day field contains a ``*``, switching OR to AND; UnitedCron only
  treats the literal ``*`` and ``?`` as unrestricted. Such rules are skipped;
* croniter ignores a restricted day-of-month when day-of-week uses ``#`` or ``L`` (UnitedCron
  keeps the Vixie OR there too), so such rules get ``*`` as day-of-month;
* croniter refuses ``?`` outside the day fields, and lists mixing ``#`` with plain days.
"""

from __future__ import annotations

import random
from datetime import UTC, datetime

import pytest
from croniter import croniter

from center._cronfields import DOM, DOW, parse_values
from center.cronexpr import parse_schedule

FIRES = 20
RULES_PER_SEED = 40
START_RANGE_S = (946_684_800, 2_208_988_800)  # 2000-01-01 .. 2040-01-01
MONTHS = ["JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC"]
DAYS = ["SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"]


def _value(rng: random.Random, lo: int, hi: int, names: list[str] | None) -> str:
    value = rng.randint(lo, hi)
    if names is not None and rng.random() < 0.3:
        return names[value - lo]
    return str(value)


def _item(rng: random.Random, lo: int, hi: int, names: list[str] | None) -> str:
    kind = rng.random()
    if kind < 0.35:
        return _value(rng, lo, hi, names)
    first, last = sorted(rng.sample(range(lo, hi + 1), 2))
    if kind < 0.55:
        return f"{first}-{last}"
    step = rng.randint(1, min(hi - lo, 15))
    if kind < 0.75:
        return f"*/{step}"
    if kind < 0.9:
        return f"{first}-{last}/{step}"
    return f"{first}/{step}"


def _field(
    rng: random.Random, lo: int, hi: int, star: float, names: list[str] | None = None
) -> str:
    if rng.random() < star:
        return "*"
    return ",".join(_item(rng, lo, hi, names) for _ in range(rng.randint(1, 3)))


def _dom(rng: random.Random) -> str:
    text = _field(rng, 1, 31, 0.5)
    if text == "*" and rng.random() < 0.2:
        return "?"
    return f"{text},L" if text != "*" and rng.random() < 0.1 else text


def _dow(rng: random.Random) -> str:
    kind = rng.random()
    if kind < 0.1:
        return f"{rng.randint(0, 7)}#{rng.randint(1, 5)}"
    if kind < 0.2:
        return f"{rng.randint(0, 7)}L"
    if kind < 0.25:
        return "7"
    return _field(rng, 0, 6, 0.5, DAYS)


def _rule(rng: random.Random, seconds: bool) -> str:
    dow = _dow(rng)
    fields = [
        _field(rng, 0, 59, 0.3),
        _field(rng, 0, 23, 0.4),
        "*" if "#" in dow or "L" in dow else _dom(rng),
        _field(rng, 1, 12, 0.6, MONTHS),
        dow,
    ]
    if seconds:
        fields.insert(0, _field(rng, 0, 59, 0.3))
    return " ".join(fields)


def _lists_every_day(rule: str) -> bool:
    """A restricted day field listing all its values: croniter may read it as `*`."""
    *_, dom, _, dow = rule.split()
    plain_dom = "L" not in dom and dom not in ("*", "?")
    plain_dow = "#" not in dow and "L" not in dow and dow not in ("*", "?")
    return (plain_dom and len(parse_values(dom, DOM)) == 31) or (
        plain_dow and len({day % 7 for day in parse_values(dow, DOW)}) == 7
    )


def _croniter_fires(rule: str, start_s: int) -> list[int]:
    *fields, dow = rule.replace("?", "*").split()
    if dow.endswith("L"):
        dow = f"L{dow[:-1]}"
    spelled = " ".join([*fields, dow])
    seconds_first = len(fields) == 5
    it = croniter(spelled, datetime.fromtimestamp(start_s, UTC), second_at_beginning=seconds_first)
    return [round(it.get_next(float)) for _ in range(FIRES)]


@pytest.mark.parametrize("seconds", [False, True], ids=["5-field", "6-field"])
@pytest.mark.parametrize("seed", range(5))
def test_random_rules_agree_with_croniter(seed: int, seconds: bool) -> None:
    """For random 5-field and seconds-first 6-field rules, 20 consecutive fires equal croniter's."""
    rng = random.Random(seed * 2 + seconds)
    checked = 0
    while checked < RULES_PER_SEED:
        rule = _rule(rng, seconds)
        if _lists_every_day(rule):
            continue
        start_s = rng.randint(*START_RANGE_S)
        ours = parse_schedule(rule).preview_us(start_s * 1_000_000, FIRES)
        assert [fire // 1_000_000 for fire in ours] == _croniter_fires(rule, start_s), rule
        checked += 1
