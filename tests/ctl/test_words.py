"""ctl's language: --lang, else the POSIX locale, else English; tables aligned in Chinese."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from ctl import words
from ctl.errors import UsageError
from ctl.output import counts, table, width
from i18n.languages import Language


@pytest.fixture
def chinese() -> Iterator[None]:
    words.use(Language.ZH_CN)
    try:
        yield
    finally:
        words.use(Language.EN)


@pytest.mark.parametrize(
    ("given", "environ", "expected"),
    [
        (None, {}, Language.EN),
        (None, {"LANG": "zh_CN.UTF-8"}, Language.ZH_CN),
        (None, {"LANG": "zh_CN.UTF-8", "LC_ALL": "C"}, Language.EN),  # LC_ALL decides
        (None, {"LANG": "en_US.UTF-8", "LC_MESSAGES": "zh_TW.UTF-8"}, Language.ZH_CN),
        (None, {"LANG": "fr_FR.UTF-8"}, Language.EN),
        (None, {"LC_ALL": "", "LANG": "zh_CN.GB18030@pinyin"}, Language.ZH_CN),
        ("zh-CN", {"LANG": "C"}, Language.ZH_CN),
        ("en", {"LANG": "zh_CN.UTF-8"}, Language.EN),  # --lang wins over the locale
    ],
)
def test_choose(given: str | None, environ: dict[str, str], expected: Language):
    assert words.choose(given, environ) == expected


def test_an_unknown_language_is_a_usage_error_naming_the_option():
    with pytest.raises(UsageError) as caught:
        words.choose("klingon", {})
    assert caught.value.field == "--lang" and "en, zh-CN" in caught.value.reason


def test_chinese_tables_align_by_display_width(chinese: None):
    """Headers and state words are Chinese; each Chinese character takes two columns."""
    rows = [{"id": 1, "state": "enabled"}, {"id": 22, "state": "paused"}]
    text = table(rows, [("ID", lambda r: r["id"]), ("STATE", lambda r: words.say(r["state"]))])
    assert text.splitlines() == ["ID  状态", "1   已启用", "22  已暂停"]
    assert width("状态") == 4 and width("ab") == 2
    assert counts({"success": 3, "failed": 1}, ("success",)) == "3 成功，1 失败"
    assert counts({}) == "无"


def test_english_is_the_text_itself():
    """Without a choice (or in English) `say` fills the English template, `reason` keeps it."""
    assert words.say("rule %(id)s (%(name)s) %(state)s", id=7, name="n", state="paused") == (
        "rule 7 (n) paused"
    )
    assert words.reason("no such rule") == "no such rule"
