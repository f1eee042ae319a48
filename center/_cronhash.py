"""Jenkins-style `H` in cron fields: each H item becomes plain cron text from a stable hash."""

from __future__ import annotations

import hashlib
import re

from center._cronfields import DOM, DOW, HOUR, MINUTE, MONTH, SECOND, _Field
from center.errors import RuleError

# Positions count from the seconds field, which a 5-field rule lacks: `H * * * *` and
# `0 H * * * *` hash the minute at the same position, so both give the same minute.
_FIELDS = (SECOND, MINUTE, HOUR, DOM, MONTH, DOW)
# As in Jenkins: an H day of the month stays within 1-28, a day every month has, so that
# whether a rule can fire never depends on its id.
_DOM_TOP = 28
_H_ITEM = re.compile(r"[Hh](?:\((\d{1,2})-(\d{1,2})\))?(?:/(\d{1,2}))?", re.ASCII)


def has_hash(text: str) -> bool:
    """Whether a cron text has an H item (no month or day name starts with H)."""
    return any(item[:1] in ("H", "h") for field in text.split() for item in field.split(","))


def hash_value(seed: int, *parts: object) -> int:
    """A stable 64-bit number for (seed, parts): the same on every center and every run
    (Python's hash() is salted per process, so it would not do)."""
    key = ":".join(str(part) for part in (seed, *parts))
    return int.from_bytes(hashlib.sha256(key.encode()).digest()[:8], "big")


def expand_hashes(text: str, seed: int) -> str:
    """The rule with every H item replaced by plain cron text; other fields unchanged.

    A text that is not 5 or 6 fields is returned as it is, for the parser to refuse.
    """
    fields = text.split()
    if len(fields) not in (5, 6):
        return text
    first = 6 - len(fields)
    return " ".join(
        _expand_field(field, _FIELDS[first + i], first + i, seed) for i, field in enumerate(fields)
    )


def _expand_field(text: str, spec: _Field, position: int, seed: int) -> str:
    items = text.split(",")
    return ",".join(
        _expand_item(item, spec, hash_value(seed, position, k)) if item[:1] in ("H", "h") else item
        for k, item in enumerate(items)
    )


def _expand_item(item: str, spec: _Field, value: int) -> str:
    match = _H_ITEM.fullmatch(item)
    if match is None:
        raise _error(spec, f"{item!r} is not H, H(a-b), H/n or H(a-b)/n")
    top = _DOM_TOP if spec is DOM else spec.star_hi
    lo, hi = spec.lo, top
    if match[1] is not None:
        lo, hi = int(match[1]), int(match[2])
        if not spec.lo <= lo <= hi <= top:
            raise _error(spec, f"range in {item!r} must lie within {spec.lo}-{top}{_why(spec)}")
    if match[3] is None:
        return str(lo + value % (hi - lo + 1))
    step = int(match[3])
    if not 1 <= step <= spec.star_hi - spec.lo:
        raise _error(spec, f"step {step} in {item!r} is out of range 1-{spec.star_hi - spec.lo}")
    start = lo + value % min(step, hi - lo + 1)
    return f"{start}-{hi}/{step}"


def _why(spec: _Field) -> str:
    return " (H days stay within 1-28, which every month has)" if spec is DOM else ""


def _error(spec: _Field, reason: str) -> RuleError:
    return RuleError("rule", f"{spec.name} field: {reason}")
