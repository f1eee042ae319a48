"""Every text people read has a zh-CN entry, and no template text escapes translation."""

from __future__ import annotations

from pathlib import Path

import pytest

from i18n.__main__ import missing
from i18n.catalogs import catalog, po_files, read_entries
from i18n.languages import Language
from i18n.patterns import PLACEHOLDER
from tests.i18n.bare_text import bare_text_of, bare_words

TEMPLATES = Path(__file__).resolve().parents[2] / "admin" / "templates"


def test_every_text_has_a_zh_cn_entry() -> None:
    """Template strings, error reasons, the vocabulary, CLI words and alert phrases: run
    `python -m i18n --only <path> --write i18n/zh_CN/<part>.po` and fill the entries in."""
    texts = missing()
    shown = "\n".join(f"{places[0]}: {msgid!r}" for msgid, places in list(texts.items())[:40])
    assert not texts, f"{len(texts)} text(s) without a zh-CN entry:\n{shown}"


def test_no_template_text_escapes_translation() -> None:
    found = bare_text_of(TEMPLATES)
    shown = "\n".join(f"{name}: {texts}" for name, texts in found.items())
    assert not found, f"text outside _() or {{% trans %}}:\n{shown}"


def test_translations_keep_their_placeholders() -> None:
    """A translation that drops or renames `{x}` / `%(x)s` would show a wrong or broken text."""
    wrong = []
    for msgid, text in catalog(Language.ZH_CN).exact.items():
        for pattern in (PLACEHOLDER.pattern, r"%\(\w+\)s"):
            import re

            if sorted(re.findall(pattern, msgid)) != sorted(re.findall(pattern, text)):
                wrong.append((msgid, text))
    assert not wrong, wrong[:20]


@pytest.mark.parametrize(
    ("source", "bare"),
    [
        ("<p>{{ _('Rules') }}</p>", []),
        ("<p>{% trans n=3 %}{{ n }} rules{% endtrans %}</p>", []),
        ("<p>Rules</p>", ["Rules"]),
        ('<input placeholder="deploy script">', ["deploy script"]),
        ('<input name="deploy" class="wide">', []),
        ("<code>echo hello</code>", []),
        ("<td>{{ r.name }} · UTC</td>", []),
        ("{# a comment #}<b>{{ x }}</b>", []),
        ("<p>{{ a }} of {{ b }}</p>", ["… of …"]),
    ],
)
def test_bare_words_table(source: str, bare: list[str]) -> None:
    assert bare_words(source) == bare


def test_a_text_in_several_catalogs_reads_the_same_in_each() -> None:
    """The catalogs are merged: a text two files translate differently would read one way or
    the other by file order."""
    translations: dict[str, dict[str, str]] = {}
    for path in po_files(Language.ZH_CN):
        for msgid, text in read_entries([path]).items():
            translations.setdefault(msgid, {})[path.name] = text
    differ = {m: t for m, t in translations.items() if len(set(t.values())) > 1}
    assert not differ, differ
