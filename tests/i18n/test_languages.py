"""The language choice and run-time reasons in zh-CN (pure, table-driven)."""

from __future__ import annotations

import pytest

from i18n.catalogs import catalog
from i18n.languages import Language, accepted, choose_language, parse_language
from i18n.patterns import compile_patterns, translate_text
from i18n.zones import known_zone, wall_clock

EN, ZH = Language.EN, Language.ZH_CN


@pytest.mark.parametrize(
    ("setting", "header", "default", "chosen"),
    [
        ("zh-CN", "en-US,en;q=0.9", EN, ZH),  # the user's setting wins
        ("", "zh-CN,zh;q=0.9,en;q=0.8", EN, ZH),
        ("", "en-GB,en;q=0.9", ZH, EN),
        ("", "fr-FR,de;q=0.9", ZH, ZH),  # nothing we have: the admin's default
        ("", "fr;q=1, zh-TW;q=0.5, en;q=0.7", EN, EN),  # q decides, not order
        ("", "zh-Hans-CN", EN, ZH),
        ("", "", EN, EN),
        ("", "en;q=0, zh;q=0.1", EN, ZH),  # q=0 means "not this one"
        ("xx", "zh", EN, ZH),  # an unknown setting is no choice
        ("", "en;q=abc, zh", EN, ZH),  # a malformed weight drops that entry only
    ],
)
def test_choose_language(setting: str, header: str, default: Language, chosen: Language) -> None:
    assert choose_language(setting, header, default) is chosen


def test_accepted_keeps_order_among_equals() -> None:
    assert accepted("en, zh") == [EN, ZH]
    assert parse_language("ZH_cn") is ZH
    assert parse_language("ja") is None


EXACT = {
    "no such rule": "没有这条规则",
    "cannot parse {expr}: {err}": "无法解析 {expr}：{err}",
    "field {name} must be 1-{top}": "字段 {name} 必须在 1-{top} 之间",
    "unknown time zone {value!r}": "未知时区 {value!r}",
    "{x}: {y}": "{x}：{y}",
}
PATTERNS = compile_patterns(EXACT)


@pytest.mark.parametrize(
    ("english", "chinese"),
    [
        ("no such rule", "没有这条规则"),
        ("cannot parse 61 * * * *: no such rule", "无法解析 61 * * * *：没有这条规则"),
        ("field x must be 1-10", "字段 x 必须在 1-10 之间"),
        ("unknown time zone 'Mars/Base'", "未知时区 'Mars/Base'"),
        ("something we never wrote", "something we never wrote"),
        ("a: b", "a: b"),  # "{x}: {y}" has too few words of its own to be a pattern
        ("", ""),
    ],
)
def test_translate_text(english: str, chinese: str) -> None:
    assert translate_text(english, EXACT, PATTERNS) == chinese


def test_english_catalog_is_the_identity() -> None:
    words = catalog(EN)
    assert words.gettext("Rules") == "Rules"
    assert words.reason("no such rule") == "no such rule"
    assert catalog(ZH).gettext("Rules") == "规则"


@pytest.mark.parametrize(
    ("us", "zone", "zoned", "text"),
    [
        (1_767_225_600_000_000, "UTC", False, "2026-01-01 00:00:00"),
        (1_767_225_600_000_000, "Asia/Shanghai", True, "2026-01-01 08:00:00 Asia/Shanghai"),
        (1_767_225_600_000_000, "Mars/Base", True, "2026-01-01 00:00:00 UTC"),
    ],
)
def test_wall_clock(us: int, zone: str, zoned: bool, text: str) -> None:
    assert wall_clock(us, zone, with_zone=zoned) == text
    assert known_zone("Asia/Shanghai") and not known_zone("Mars/Base")
