"""Reason translation benchmark: the best-covering reading (i18n.patterns) against the first
pattern that matches (the matcher it replaced), over the real zh-CN catalogs.

Run: .venv/bin/python bench/bench_reasons.py
Prints figures only; nothing here asserts a target.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping

from i18n.catalogs import catalog
from i18n.languages import Language
from i18n.patterns import _MAX_DEPTH, Pattern, fill, translate_text

ROUNDS = 5


def first_match(
    text: str, exact: Mapping[str, str], patterns: tuple[Pattern, ...], depth: int = 0
) -> str:
    """The baseline: the first pattern (longest literal text first) that matches."""
    found = exact.get(text)
    if found:
        return found
    if depth >= _MAX_DEPTH or not text:
        return text
    for pattern in patterns:
        match = pattern.regex.match(text)
        target = exact.get(pattern.msgid) if match is not None else None
        if match is not None and target:
            values = tuple(first_match(v, exact, patterns, depth + 1) for v in match.groups())
            return fill(target, pattern.names, values)
    return text


def reasons() -> dict[str, list[str]]:
    n = range(300)
    return {
        "nested (cron field)": [
            f"minute field: step {i} in '*/{i}' is out of range 1-59" for i in n
        ],
        "one pattern": [f"rule {i} is not a node of this workflow" for i in n],
        "no match": [
            f"exit {i}: a long output line that no catalog entry matches at all" for i in n
        ],
        "exact": ["no such rule" for _ in n],
    }


def per_reason_us(translate: Callable[..., str], texts: list[str]) -> float:
    words = catalog(Language.ZH_CN)
    best = float("inf")
    for _ in range(ROUNDS):
        start = time.perf_counter()
        for text in texts:
            translate(text, words.exact, words.patterns)
        best = min(best, (time.perf_counter() - start) / len(texts) * 1e6)
    return best


def main() -> None:
    words = catalog(Language.ZH_CN)
    print(f"zh-CN catalog: {len(words.exact)} entries, {len(words.patterns)} patterns")
    print(f"{'reasons':<22}{'first match µs':>16}{'best reading µs':>17}")
    for kind, texts in reasons().items():
        old, new = per_reason_us(first_match, texts), per_reason_us(translate_text, texts)
        print(f"{kind:<22}{old:>16.1f}{new:>17.1f}")


if __name__ == "__main__":
    main()
