"""Pure modules stay pure: no event loop, no database, no sockets, no clock, no environment.

The check reads source with `ast` instead of importing it, so it also catches imports hidden in
functions and works before the module's dependencies are installed.
"""

from __future__ import annotations

import ast
import importlib.util
import sys
from pathlib import Path

import pytest

PURE_MODULES = [
    # (module, why it must be pure)
    ("protocol.framing", "sans-IO frame decoder"),
    ("protocol.codec", "sans-IO message codec"),
    ("protocol.messages", "message dataclasses and validation"),
    ("protocol.auth", "handshake maths"),
    ("protocol.statuses", "run status constants"),
    ("center.cronexpr", "cron maths take `now` as an argument"),
    ("center._cronhash", "H fields from a stable hash of the rule id"),
    ("center.calendars", "calendars are data passed in"),
    ("center.timing", "fire times composed from schedule, calendar and jitter"),
    ("center.planner", "planning takes `now` as an argument"),
    ("center.rules", "rule validation"),
    ("center.routing", "agent choice"),
    ("center.decisions", "misfire and overlap decisions"),
    ("center.silence", "lost runs of silent agents take `now` as an argument"),
    ("center.report_writes", "a batch's writes decided from the rows read before"),
    ("agent.runspec", "run-spec validation"),
    ("admin.permissions", "permission checks"),
    ("admin.sso.roles", "directory groups mapped to roles"),
    ("admin.sso.ldap_names", "LDAP escaping and injection checks"),
    ("admin.dag_svg", "workflow graph layout"),
    ("admin.flowfields", "workflow field and graph checks"),
    ("admin.flowstate", "flow run node states"),
]
FORBIDDEN_IMPORTS = frozenset(
    {"asyncio", "sqlalchemy", "aiosqlite", "aiomysql", "socket", "subprocess", "threading"}
)
# Dotted names after resolving import aliases; referencing one (called or not) reads the world.
FORBIDDEN_NAMES = frozenset(
    {
        "time.time",
        "time.time_ns",
        "time.monotonic",
        "time.monotonic_ns",
        "time.perf_counter",
        "datetime.datetime.now",
        "datetime.datetime.utcnow",
        "datetime.datetime.today",
        "datetime.date.today",
        "datetime.now",
        "datetime.utcnow",
        "os.environ",
        "os.getenv",
    }
)
PROJECT_PACKAGES = ("protocol", "center", "agent", "admin")


def _source_path(module: str) -> Path | None:
    try:
        spec = importlib.util.find_spec(module)
    except ModuleNotFoundError:  # the parent package does not exist yet
        return None
    return Path(spec.origin) if spec is not None and spec.origin else None


def _imported_modules(tree: ast.Module, module: str) -> list[tuple[int, str]]:
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # relative import: resolve against this module's package
                package = module.rsplit(".", node.level)[0]
                base = f"{package}.{base}" if base else package
            out.append((node.lineno, base))
            out += [(node.lineno, f"{base}.{alias.name}") for alias in node.names]
    return out


def _aliases(tree: ast.Module) -> dict[str, str]:
    """Local name -> dotted name it stands for (`import time as t`, `from os import environ`)."""
    out = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                local = alias.asname or alias.name.split(".")[0]
                out[local] = alias.name if alias.asname else local
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            for alias in node.names:
                out[alias.asname or alias.name] = f"{node.module}.{alias.name}"
    return out


def _dotted(node: ast.expr) -> str | None:
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        base = _dotted(node.value)
        return f"{base}.{node.attr}" if base else None
    return None


def _forbidden_names(tree: ast.Module) -> list[tuple[int, str]]:
    aliases, out = _aliases(tree), []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and not node.level:
            out += [
                (node.lineno, f"{node.module}.{alias.name}")
                for alias in node.names
                if f"{node.module}.{alias.name}" in FORBIDDEN_NAMES
            ]
        if not isinstance(node, ast.Name | ast.Attribute):
            continue
        name = _dotted(node)
        if name is None:
            continue
        head, _, rest = name.partition(".")
        resolved = f"{aliases.get(head, head)}.{rest}" if rest else aliases.get(head, head)
        if resolved in FORBIDDEN_NAMES or name in FORBIDDEN_NAMES:
            out.append((node.lineno, resolved))
    return sorted(set(out))


def _is_forbidden_import(name: str) -> bool:
    return name.split(".", maxsplit=1)[0] in FORBIDDEN_IMPORTS


def _problems(
    module: str, seen: set[str], packages: tuple[str, ...] = PROJECT_PACKAGES
) -> list[str]:
    """Forbidden imports in `module` and in the project modules it imports, transitively."""
    path = _source_path(module)
    if path is None or module in seen:
        return []
    seen.add(module)
    source = path.read_text()
    lines = source.splitlines()
    tree = ast.parse(source, filename=str(path))
    out = []
    for lineno, name in _imported_modules(tree, module):
        where = f"{path}:{lineno}: {lines[lineno - 1].strip()}"
        if _is_forbidden_import(name):
            out.append(f"imports {name.split('.')[0]}: {where}")
        elif name.split(".", maxsplit=1)[0] in packages:
            out += [f"{p} (via {module})" for p in _problems(_module_of(name), seen, packages)]
    return out


def _module_of(name: str) -> str:
    """`pkg.mod.Name` -> `pkg.mod` when Name is not itself a module."""
    return name if _source_path(name) is not None else name.rsplit(".", 1)[0]


@pytest.mark.parametrize(("module", "why"), PURE_MODULES, ids=[m for m, _ in PURE_MODULES])
def test_pure_module_has_no_io_imports_or_clock_reads(module: str, why: str) -> None:
    """A pure module imports no I/O module, even indirectly, and reads neither clock nor env."""
    path = _source_path(module)
    if path is None:
        pytest.skip(f"{module} does not exist yet")
    source = path.read_text()
    lines = source.splitlines()
    problems = _problems(module, set())
    problems += [
        f"uses {name}: {path}:{lineno}: {lines[lineno - 1].strip()}"
        for lineno, name in _forbidden_names(ast.parse(source))
    ]
    assert not problems, f"{module} must stay pure ({why}):\n" + "\n".join(problems)


IMPURE_SAMPLES = [
    ("import asyncio", "imports asyncio"),
    ("from sqlalchemy.ext import asyncio as sa", "imports sqlalchemy"),
    ("def f():\n    import subprocess", "imports subprocess"),
    ("import time\nx = time.time()", "uses time.time"),
    ("import time as t\nx = t.monotonic()", "uses time.monotonic"),
    ("from time import monotonic\nx = monotonic()", "uses time.monotonic"),
    ("from datetime import datetime\nx = datetime.now()", "uses datetime.datetime.now"),
    ("import datetime as dt\nx = dt.datetime.utcnow()", "uses datetime.datetime.utcnow"),
    ("import os\nx = os.environ['HOME']", "uses os.environ"),
    ("from os import environ", "uses os.environ"),
]


@pytest.mark.parametrize(("source", "finding"), IMPURE_SAMPLES)
def test_checker_catches_impurity(source: str, finding: str) -> None:
    """The checker itself flags each kind of forbidden import or call, aliases included."""
    tree = ast.parse(source)
    found = [
        f"imports {n.split('.')[0]}"
        for _, n in _imported_modules(tree, "m")
        if _is_forbidden_import(n)
    ]
    found += [f"uses {name}" for _, name in _forbidden_names(tree)]
    assert finding in found


def test_checker_allows_pure_code() -> None:
    """Arithmetic on a `now` argument and datetime types without clock reads pass the checker."""
    tree = ast.parse(
        "from datetime import datetime, timedelta\n"
        "import time\n"
        "def next_fire(now: datetime) -> datetime:\n"
        "    return now + timedelta(seconds=time.timezone)\n"
    )
    assert _forbidden_names(tree) == []
    assert not any(_is_forbidden_import(n) for _, n in _imported_modules(tree, "m"))


def test_checker_follows_project_imports(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A pure module that imports an impure project module is flagged, naming the chain."""
    package = tmp_path / "purityfake"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "pure.py").write_text("from purityfake.helper import thing\n")
    (package / "helper.py").write_text("import socket\nthing = socket\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    importlib.invalidate_caches()
    try:
        (problem,) = _problems("purityfake.pure", set(), ("purityfake",))
    finally:
        sys.modules.pop("purityfake", None)  # find_spec imported the parent package
    assert problem.startswith("imports socket: ")
    assert "helper.py:1: import socket (via purityfake.pure)" in problem
