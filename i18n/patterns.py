"""English text with `{placeholders}` as patterns (pure): a reason formatted in English is
matched against the catalog's msgids and re-formatted with the translation's words."""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

PLACEHOLDER = re.compile(r"\{[^{}]*\}")
_MIN_LETTERS = 4  # a pattern must say something of its own to be trusted on any text
_MAX_DEPTH = 3  # a reason quoting a reason quoting a reason: enough, and no runaway


@dataclass(frozen=True, slots=True)
class Pattern:
    msgid: str
    regex: re.Pattern[str]
    names: tuple[str, ...]
    literal_chars: int  # more literal text matches more surely: tried first
    head: str  # the text before the first placeholder, and after the last: a cheap test
    tail: str  # before the regex (every pattern is tried on every reason)

    def match(self, text: str) -> re.Match[str] | None:
        if not (text.startswith(self.head) and text.endswith(self.tail)):
            return None
        return self.regex.match(text)


def compile_pattern(msgid: str) -> Pattern | None:
    """The pattern of a msgid with placeholders; None for plain text (looked up exactly)."""
    names = tuple(PLACEHOLDER.findall(msgid))
    if not names:
        return None
    literals = PLACEHOLDER.split(msgid)
    if sum(ch.isalpha() for part in literals for ch in part) < _MIN_LETTERS:
        return None  # "{a}: {b}" would match any text with a colon: exact lookups only
    body = "(.*?)".join(re.escape(part) for part in literals)
    regex = re.compile(f"^{body}$", re.DOTALL)
    chars = sum(len(part) for part in literals)
    return Pattern(msgid, regex, names, chars, literals[0], literals[-1])


def compile_patterns(msgids: Iterable[str]) -> tuple[Pattern, ...]:
    found = [p for p in (compile_pattern(m) for m in msgids) if p is not None]
    return tuple(sorted(found, key=lambda p: (-p.literal_chars, p.msgid)))


def fill(template: str, names: tuple[str, ...], values: tuple[str, ...]) -> str:
    """The translation with each placeholder replaced by what the English text had there."""
    by_name = dict(zip(names, values, strict=True))
    return PLACEHOLDER.sub(lambda m: by_name.get(m.group(0), m.group(0)), template)


def translate_text(
    text: str,
    exact: Mapping[str, str],
    patterns: tuple[Pattern, ...],
    depth: int = 0,
) -> str:
    """`text` in the catalog's language: an exact entry, else the pattern reading that the
    catalog's words cover best (its placeholder values translated too: they are often reasons
    themselves), else as is."""
    return _best(text, exact, patterns, depth, {}).text


@dataclass(frozen=True, slots=True)
class _Reading:
    covered: int  # characters of the English text that catalog words account for
    text: str


def _best(
    text: str,
    exact: Mapping[str, str],
    patterns: tuple[Pattern, ...],
    depth: int,
    seen: dict[tuple[str, int], _Reading],
) -> _Reading:
    """The reading that covers the most of `text`. Not simply the first pattern that
    matches: in `minute field: step 0 in '*/0' is out of range 1-59` the wider pattern
    `{value} is out of range {low}-{high}` matches first but leaves `step 0 in '*/0'`
    English; `{field} field: {reason}` around the step pattern covers it all."""
    found = exact.get(text)
    if found:
        return _Reading(len(text), found)
    if depth >= _MAX_DEPTH or not text:
        return _Reading(0, text)
    if (text, depth) in seen:
        return seen[(text, depth)]
    best = _Reading(0, text)
    for pattern in patterns:
        match = pattern.match(text)
        target = exact.get(pattern.msgid) if match is not None else None
        if match is None or not target:
            continue
        inner = [_best(value, exact, patterns, depth + 1, seen) for value in match.groups()]
        covered = pattern.literal_chars + sum(reading.covered for reading in inner)
        # A tie is two patterns each inside the other: `{k} in {item} is not a week` around
        # `day-of-week field: '9'`, or `{field} field: {reason}` around `'9' in '1#9' is not
        # a week`. The wrapper is the one with less text of its own (patterns come longest
        # first): it is the one whose reason quotes another.
        if covered and covered >= best.covered:
            best = _Reading(covered, fill(target, pattern.names, tuple(r.text for r in inner)))
    seen[(text, depth)] = best
    return best
