"""The API's error reasons in the reader's language: zh-CN when asked, with the English in
`reason_en`; English exactly as before when not. The real app on SQLite, over httpx."""

from __future__ import annotations

import asyncio
import re
from typing import Any

import httpx
import pytest

from i18n.catalogs import catalog
from i18n.languages import Language
from i18n.patterns import compile_patterns, translate_text
from tests.admin.seed import PASSWORD, World

CJK = re.compile(r"[\u4e00-\u9fff]")
ZH = {"Accept-Language": "zh-CN,zh;q=0.9,en;q=0.8"}


@pytest.fixture
def empty_db_url(sqlite_url: str) -> str:
    return sqlite_url  # the words do not depend on the backend


@pytest.fixture
async def auth(api: httpx.AsyncClient, world: World) -> dict[str, str]:
    """A token got the way a script gets one: POST /api/v1/auth/token."""
    async with asyncio.timeout(10):
        answer = await api.post(
            "/api/v1/auth/token", json={"username": "admin", "password": PASSWORD}
        )
    assert answer.status_code == 201, answer.text
    return {"Authorization": f"Bearer {answer.json()['token']}"}


async def _both(
    api: httpx.AsyncClient, method: str, url: str, headers: dict[str, str], **kwargs: Any
) -> tuple[int, dict[str, Any], dict[str, Any]]:
    """The same request asked in zh-CN and with no language: (status, zh error, en error)."""
    async with asyncio.timeout(10):
        zh = await api.request(method, url, headers=headers | ZH, **kwargs)
        en = await api.request(method, url, headers=headers, **kwargs)
    assert zh.status_code == en.status_code, (zh.text, en.text)
    return zh.status_code, zh.json()["error"], en.json()["error"]


def _new_rule(world: World, **changes: Any) -> dict[str, Any]:
    return {"gid": world.alpha, "name": "r", "rule": "@hourly", "execute": "/bin/true"} | changes


async def test_a_broken_cron_expression_is_explained_in_chinese(
    api: httpx.AsyncClient, world: World, auth: dict[str, str]
):
    """A 422 for a bad minute names the field `rule` and the cron field (分钟) in Chinese; the
    English stays in reason_en, and without the header the reason is the English one."""
    body = _new_rule(world, rule="61 * * * *")
    status, zh, en = await _both(api, "POST", "/api/v1/rules", auth, json=body)
    assert status == 422
    assert en == {"field": "rule", "reason": "minute field: 61 is out of range 0-59"}
    assert zh["field"] == "rule" and zh["reason_en"] == en["reason"]
    assert CJK.search(zh["reason"]) and "分钟" in zh["reason"], zh
    assert "61" in zh["reason"] and "0-59" in zh["reason"]


@pytest.mark.parametrize(
    ("changes", "field", "english", "chinese"),
    [
        ({"rule": "*/0 * * * *"}, "rule", "minute field: step 0 in '*/0'", "步长"),
        ({"timezone": "Mars/Olympus"}, "timezone", "unknown time zone", "未知时区"),
        ({"env": {"UNITEDCRON_X": "1"}}, "env", "reserved", "保留"),
        ({"process_num": "many"}, "process_num", "must be an integer", "整数"),
        ({"process_num": 2**40}, "process_num", "must be at most 2147483647", "不能大于"),
        ({"colour": "blue"}, "colour", "xtra", "字段"),
        ({"gid": 999999}, "gid", "no such group", "分组"),
    ],
)
async def test_rule_reasons_in_both_languages(
    api: httpx.AsyncClient,
    world: World,
    auth: dict[str, str],
    changes: dict[str, Any],
    field: str,
    english: str,
    chinese: str,
):
    """Center rule errors, pydantic's type errors and admin checks: each is Chinese in zh-CN,
    with no English sentence left in it."""
    status, zh, en = await _both(
        api, "POST", "/api/v1/rules", auth, json=_new_rule(world, **changes)
    )
    assert status == 422 and en["field"] == zh["field"] == field
    assert english in en["reason"] and "reason_en" not in en
    assert chinese in zh["reason"] and zh["reason_en"] == en["reason"], zh
    assert not re.search(r"\b(is|must|of|the|field)\b", zh["reason"]), zh


async def test_a_missing_field_is_chinese(
    api: httpx.AsyncClient, world: World, auth: dict[str, str]
):
    """Pydantic's `missing` becomes our short reason, in the reader's language."""
    body = {k: v for k, v in _new_rule(world).items() if k != "gid"}
    status, zh, en = await _both(api, "POST", "/api/v1/rules", auth, json=body)
    assert status == 422
    assert en == {"field": "gid", "reason": "is required"}
    assert zh == {"field": "gid", "reason": "为必填项", "reason_en": "is required"}


@pytest.mark.parametrize(
    ("url", "english", "chinese"),
    [
        ("/api/v1/rules/999999", "no such rule", "不存在该规则"),
        ("/api/v1/rules/abc", "no such object", "对象不存在"),
        ("/api/v1/workflows/999999", "no such workflow", "不存在该工作流"),
        ("/api/v1/nothing", "no such page", "页面不存在"),
    ],
)
async def test_an_unknown_id_is_chinese(
    api: httpx.AsyncClient, auth: dict[str, str], url: str, english: str, chinese: str
):
    status, zh, en = await _both(api, "GET", url, auth)
    assert status == 404
    assert en["reason"] == english and zh["reason"] == chinese and zh["reason_en"] == english


async def test_refusals_before_any_user_is_known_are_chinese(api: httpx.AsyncClient, world: World):
    """A wrong password, and a body sent with no credential at all (answered before the app
    reads it): the browser's language is all there is to go by."""
    body = {"username": "admin", "password": "wrong"}
    status, zh, en = await _both(api, "POST", "/api/v1/auth/token", {}, json=body)
    assert status == 401 and en["reason"] == "wrong username or password"
    assert zh["reason"] == "用户名或密码错误"
    status, zh, en = await _both(api, "POST", "/api/v1/rules", {}, json={})
    assert status == 401 and en == {"field": None, "reason": "authentication required"}
    assert zh["reason"] == "需要身份认证" and zh["reason_en"] == en["reason"]


ZH_WORDS = catalog(Language.ZH_CN)


@pytest.mark.parametrize(
    ("english", "chinese"),
    [
        # a center reason inside a center reason: the cron field around the step's problem
        (
            "minute field: step 0 in '*/0' is out of range 1-59",
            "分钟字段：'*/0' 中的步长 0 超出范围 1-59",
        ),
        (
            "day-of-week field: '9' in '1#9' is not a week of the month 1-5",
            "星期字段：'1#9' 中的 '9' 不是月内第几周（1-5）",
        ),
        # a center reason inside an admin reason (a workflow's edges line)
        ("line 3: minute field: 61 is out of range 0-59", "第 3 行：分钟字段：61 超出范围 0-59"),
        (
            "line 2: write one edge a line: PARENT -> CHILD [success|failure|always]",
            "第 2 行：每行写一条连线：PARENT -> CHILD [success|failure|always]",
        ),
        # a center constant inside a center reason
        (
            "value of LANG must be valid Unicode text (a lone surrogate such as \\ud800 is not)",
            "LANG 的值必须是有效的 Unicode 文本（不能含 \\ud800 这类孤立代理项）",
        ),
        # a vocabulary word and a marked object name inside admin reasons
        ("your role does not allow edit on this rule", "你的角色不允许对此规则执行“编辑”操作"),
        ("no such alert channel", "不存在该告警渠道"),
    ],
)
def test_nested_reasons_are_translated_whole(english: str, chinese: str) -> None:
    assert ZH_WORDS.reason(english) == chinese


def test_the_wrapper_is_the_pattern_with_less_text_of_its_own() -> None:
    """Two readings that cover the same words: the outer pattern is the generic one."""
    exact = {
        "{name} field: {reason}": "{name}字段：{reason}",
        "{k} in {item} is not a week": "{item} 中的 {k} 不是周",
        "{value} is out of range {low}-{high}": "{value} 超出范围 {low}-{high}",
        "step {step} in {item} is out of range 1-{top}": "{item} 中的步长 {step} 超出范围 1-{top}",
        "day": "日",
    }
    patterns = compile_patterns(exact)
    assert translate_text("day field: 9 in x is not a week", exact, patterns) == (
        "日字段：x 中的 9 不是周"
    )
    assert translate_text("day field: step 0 in y is out of range 1-5", exact, patterns) == (
        "日字段：y 中的步长 0 超出范围 1-5"
    )
