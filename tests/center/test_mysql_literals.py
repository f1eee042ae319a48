"""The report writes' MySQL string escaping is pymysql's own, character for character."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st
from pymysql.converters import escape_string

from center.store._prepared import _backslashed

SPECIAL = "\0\\\n\r\032\"'%_`;-" + "中文😀"


@settings(max_examples=2000, deadline=None)
@given(st.text(alphabet=st.one_of(st.sampled_from(SPECIAL), st.characters())))
def test_escaping_equals_pymysql(value: str) -> None:
    assert _backslashed(value) == escape_string(value)


def test_every_special_character_in_every_order() -> None:
    for a in SPECIAL:
        for b in SPECIAL:
            assert _backslashed(a + b + "x" + a) == escape_string(a + b + "x" + a)
