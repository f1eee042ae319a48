"""Jenkins-style `H` in cron fields: each H item becomes plain cron text from a stable hash
of the rule's id (its seed), the field's position and the item's place in the field."""

from __future__ import annotations

import hashlib
import re

from center._cronfields import DOM, DOW, HOUR, MINUTE, MONTH, SECOND, _Field
from center.errors import RuleError
from i18n.marks import N_

# Positions count from the seconds field, which a 5-field rule lacks: `H * * * *` and
# `0 H * * * *` hash the minute at the same position, so both give the same minute.
_FIELDS = (SECOND, MINUTE, HOUR, DOM, MONTH, DOW)
# As in Jenkins: an H day of the month stays within 1-28, a day every month has, so that
# whether a rule can fire never depends on its id.
_DOM_TOP = 28
# Per field position: the fractional part of the square root of the n-th prime, in 64-bit
# fixed point (SHA-256's initial words). seed × this, mod 2^64, is a Weyl sequence: rules with
# consecutive ids land evenly over a field (1,000 `H * * * *` rules: 16-17 a minute, where a
# plain hash gives up to 31), and the fields of one rule are unrelated to each other.
_WEYL = (
    0x6A09E667F3BCC909,
    0xBB67AE8584CAA73B,
    0x3C6EF372FE94F82B,
    0xA54FF53A5F1D36F1,
    0x510E527FADE682D1,
    0x9B05688C2B3E6C1F,
)
_MASK_64 = (1 << 64) - 1
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


def spread_value(seed: int, position: int, item: int) -> int:
    """A 64-bit number for one H item of one rule: an even spread over consecutive seeds, and
    a start (SHA-256 of the position and item) of its own for each field and item."""
    return (seed * _WEYL[position] + hash_value(0, position, item)) & _MASK_64


def _scaled(value: int, size: int) -> int:
    """value (64 bits) scaled to 0..size-1 by its top bits, where the spread is even."""
    return (value * size) >> 64


def _expand_field(text: str, spec: _Field, position: int, seed: int) -> str:
    items = text.split(",")
    return ",".join(
        _expand_item(item, spec, spread_value(seed, position, k))
        if item[:1] in ("H", "h")
        else item
        for k, item in enumerate(items)
    )


def _expand_item(item: str, spec: _Field, value: int) -> str:
    match = _H_ITEM.fullmatch(item)
    if match is None:
        raise _error(spec, N_(f"{item!r} is not H, H(a-b), H/n or H(a-b)/n"))
    top = _DOM_TOP if spec is DOM else spec.star_hi
    lo, hi = spec.lo, top
    if match[1] is not None:
        lo, hi = int(match[1]), int(match[2])
        if not spec.lo <= lo <= hi <= top:
            raise _error(spec, _outside(item, spec, top))
    if match[3] is None:
        return str(lo + _scaled(value, hi - lo + 1))
    step = int(match[3])
    if not 1 <= step <= spec.star_hi - spec.lo:
        raise _error(
            spec, N_(f"step {step} in {item!r} is out of range 1-{spec.star_hi - spec.lo}")
        )
    start = lo + _scaled(value, min(step, hi - lo + 1))
    return f"{start}-{hi}/{step}"


def _outside(item: str, spec: _Field, top: int) -> str:
    # whole sentences, not a sentence and a tail: each is one entry of the catalogs
    if spec is DOM:
        return N_(
            f"range in {item!r} must lie within {spec.lo}-{top}"
            " (H days stay within 1-28, which every month has)"
        )
    return N_(f"range in {item!r} must lie within {spec.lo}-{top}")


def _error(spec: _Field, reason: str) -> RuleError:
    return RuleError("rule", f"{spec.name} field: {reason}")
