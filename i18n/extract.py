"""What needs a translation: every marked string of the templates and the code, and every
literal reason given to an error, as msgids (`make messages` lists the missing ones; a test
fails while any has no zh-CN entry)."""

from __future__ import annotations

import ast
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType

from jinja2.ext import babel_extract

ROOT = Path(__file__).resolve().parent.parent
# Where the words live: the admin's pages and code, the center's reasons and alert phrases,
# the CLI. (The agent's words reach people only inside run reasons, which show as recorded.)
TEMPLATE_GLOB = "admin/templates/**/*.html"
CODE_DIRS = ("admin", "center", "ctl", "i18n")
# The callables whose argument is a text people read, and which argument it is: the marks
# `_` / `N_`, and every error that carries a reason to a person (admin, center, ctl).
TEXT_ARGS: Mapping[str, int] = MappingProxyType(
    {
        "_": 0,
        "N_": 0,
        "AdminError": 0,
        "BadRequest": 0,
        "Unauthorized": 0,
        "Forbidden": 0,
        "NotFound": 0,
        "Conflict": 0,
        "Invalid": 1,
        "RuleError": 1,
        "CtlError": 0,
        "Failed": 0,
        "UsageError": 0,
        "AuthRefused": 0,
        "Unreachable": 0,
        "say": 0,  # ctl.words.say: what the CLI prints, looked up then filled in
    }
)
# The shared vocabulary: a status, policy or kind shows in pages as its value, translated.
ENUM_FILES = ("protocol/vocabulary.py",)
_KEYWORDS = frozenset({"reason", "message"})
# Jinja's i18n extension with the settings the admin's environment uses.
JINJA_OPTIONS: Mapping[str, str] = MappingProxyType(
    {"trimmed": "true", "trim_blocks": "true", "lstrip_blocks": "true"}
)


@dataclass(frozen=True, slots=True)
class Found:
    msgid: str
    where: str  # path:line


def _callee(node: ast.Call) -> str:
    if isinstance(node.func, ast.Name):
        return node.func.id
    if isinstance(node.func, ast.Attribute):
        return node.func.attr
    return ""


def _text_arg(node: ast.Call, index: int) -> ast.expr | None:
    for keyword in node.keywords:
        if keyword.arg in _KEYWORDS:
            return keyword.value
    return node.args[index] if len(node.args) > index else None


def as_msgids(node: ast.expr) -> list[str]:
    """The msgid(s) of a text argument: a literal, an f-string with `{expr}` placeholders, or
    either branch of `a if c else b`; [] for text made elsewhere."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return [node.value]
    if isinstance(node, ast.JoinedStr):
        parts = []
        for value in node.values:
            if isinstance(value, ast.Constant):
                parts.append(str(value.value))
            elif isinstance(value, ast.FormattedValue):
                parts.append("{" + ast.unparse(value.value) + "}")
        return ["".join(parts)]
    if isinstance(node, ast.IfExp):
        return as_msgids(node.body) + as_msgids(node.orelse)
    return []


def from_python(path: Path) -> Iterator[Found]:
    tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
    where = path.relative_to(ROOT)
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call):
            continue
        index = TEXT_ARGS.get(_callee(node))
        if index is None:
            continue
        arg = _text_arg(node, index)
        for msgid in as_msgids(arg) if arg is not None else []:
            if msgid.strip():
                yield Found(msgid, f"{where}:{node.lineno}")


def from_enums(path: Path) -> Iterator[Found]:
    """The values of every StrEnum of a module."""
    tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
    where = path.relative_to(ROOT)
    for node in tree.body:
        if not isinstance(node, ast.ClassDef):
            continue
        if not any(isinstance(b, ast.Name) and b.id == "StrEnum" for b in node.bases):
            continue
        for item in node.body:
            value = item.value if isinstance(item, ast.Assign) else None
            if isinstance(value, ast.Constant) and isinstance(value.value, str):
                yield Found(value.value, f"{where}:{item.lineno}")


def from_template(path: Path) -> Iterator[Found]:
    where = path.relative_to(ROOT)
    with path.open("rb") as handle:
        for line, _func, message, _comments in babel_extract(
            handle, ("_", "gettext", "ngettext"), [], dict(JINJA_OPTIONS)
        ):
            texts = message if isinstance(message, tuple) else (message,)
            for text in texts:
                if text:
                    yield Found(text, f"{where}:{line}")


def everything(root: Path = ROOT) -> dict[str, list[str]]:
    """msgid → where it appears, over the templates and the code."""
    found: dict[str, list[str]] = {}
    sources: list[Iterator[Found]] = [from_template(p) for p in sorted(root.glob(TEMPLATE_GLOB))]
    sources += [from_enums(root / name) for name in ENUM_FILES]
    for folder in CODE_DIRS:
        sources += [from_python(p) for p in sorted((root / folder).rglob("*.py"))]
    for source in sources:
        for item in source:
            found.setdefault(item.msgid, []).append(item.where)
    return found
