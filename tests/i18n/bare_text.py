"""Text in a template that no translation reaches: words outside `_()` and `{% trans %}`."""

from __future__ import annotations

import re
from html.parser import HTMLParser
from pathlib import Path

_TRANS = re.compile(r"{%-?\s*trans\b.*?{%-?\s*endtrans\s*-?%}", re.DOTALL)
_COMMENT = re.compile(r"{#.*?#}", re.DOTALL)
_EXPR = re.compile(r"{{.*?}}", re.DOTALL)
# An expression right after a tag's name or an attribute (`<label{{ invalid("x") }}>`) makes
# attributes, not text: a space keeps the tag parsable.
_ATTRS_EXPR = re.compile(r"(?<=[\w\"'])(?<!=\")(?<!=')({{.*?}})", re.DOTALL)
_STATEMENT = re.compile(r"{%.*?%}", re.DOTALL)
_WORD = re.compile(r"[A-Za-z][A-Za-z']+")
# Attributes people read; the rest (class, id, href, name, value of a field…) are code.
READ_ATTRS = frozenset({"title", "placeholder", "aria-label", "alt", "data-confirm"})
# Inside these, text is code or data shown as it is.
CODE_TAGS = frozenset({"code", "pre", "kbd", "script", "style", "samp"})
# Names that stay as they are in every language.
ALLOWED = frozenset(
    {
        "UnitedCron",
        "TOTP",
        "API",
        "CSRF",
        "JSON",
        "URL",
        "HTTP",
        "HTTPS",
        "SQL",
        "SVG",
        "CA",
        "OIDC",
        "LDAP",
        "SSO",
        "PKI",
        "TLS",
        "IANA",
        "UTC",
        "ID",
        "CPU",
        "RSS",
        "DingTalk",
        "WeCom",
        "Feishu",
        "Lark",
        "Slack",
        "Webhook",
        "cron",
        "Bearer",
        "Authorization",
        "CSV",
        "YAML",
        "stdout",
        "stderr",
        "PID",
        "ms",
        "KiB",
        "MiB",
        "GiB",
        "p50",
        "p95",
        "p99",
        "vs",
        "cgroup",
    }
)


class _Collector(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.code_depth = 0
        self.found: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in CODE_TAGS:
            self.code_depth += 1
        for name, value in attrs:
            if name in READ_ATTRS and value:
                self.found.append(value)

    def handle_endtag(self, tag: str) -> None:
        if tag in CODE_TAGS and self.code_depth:
            self.code_depth -= 1

    def handle_data(self, data: str) -> None:
        if not self.code_depth:
            self.found.append(data)


def bare_words(source: str) -> list[str]:
    """The texts of a template that hold a word no translation covers."""
    # A statement can sit inside a tag (`<label{% if bad %} class="invalid"{% endif %}>`):
    # it becomes a space, so the tag still parses; an expression becomes a mark.
    text = _TRANS.sub("\x00", _COMMENT.sub("", source))
    text = _STATEMENT.sub(" ", _EXPR.sub("\x00", _ATTRS_EXPR.sub(" ", text)))
    collector = _Collector()
    collector.feed(text)
    out = []
    for chunk in collector.found:
        words = [w for w in _WORD.findall(chunk) if w not in ALLOWED]
        if words:
            out.append(" ".join(chunk.replace("\x00", "…").split()))
    return out


def bare_text_of(folder: Path) -> dict[str, list[str]]:
    return {
        path.name: found
        for path in sorted(folder.glob("*.html"))
        if (found := bare_words(path.read_text(encoding="utf-8")))
    }
