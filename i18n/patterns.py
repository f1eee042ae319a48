"""English text with `{placeholders}` as patterns (pure): a reason formatted in English is
matched against the catalog's msgids and re-formatted with the translation's words."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping
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
    return Pattern(msgid, regex, names, sum(len(part) for part in literals))


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
    """`text` in the catalog's language: an exact entry, else the first pattern it matches
    (its placeholder values translated too: they are often reasons themselves), else as is."""
    found = exact.get(text)
    if found:
        return found
    if depth >= _MAX_DEPTH or not text:
        return text
    inner: Callable[[str], str] = lambda value: translate_text(value, exact, patterns, depth + 1)  # noqa: E731
    for pattern in patterns:
        match = pattern.regex.match(text)
        if match is None:
            continue
        target = exact.get(pattern.msgid)
        if not target:
            continue
        return fill(target, pattern.names, tuple(inner(v) for v in match.groups()))
    return text
