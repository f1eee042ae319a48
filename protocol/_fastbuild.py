"""Generated builders for well-formed params: straight-line type checks, no per-field calls.

A builder returns the message when every field present has exactly its type (ints within
64 bits, floats finite); for anything else it raises `Slow`, and the generic validator runs
instead to name the field and the reason. Both accept the same inputs; this one is cheaper.
"""

from __future__ import annotations

import dataclasses
import math
import types
import typing
from collections.abc import Callable
from typing import Any

Builder = Callable[[Any], Any]
_BUILDERS: dict[type, Builder] = {}
_MISSING: Any = object()


class Slow(Exception):
    """Not the common well-formed case: the generic validator decides and explains."""


def builder(cls: type) -> Builder:
    """The cached builder of a message or nested dataclass."""
    found = _BUILDERS.get(cls)
    if found is None:
        found = _BUILDERS[cls] = _compile(cls)
    return found


_ITEM = {
    int: "type({x}) is int and LO <= {x} <= HI",
    str: "type({x}) is str",
    bytes: "type({x}) is bytes",
    bool: "type({x}) is bool",
}


def _test(tp: Any, var: str) -> str:
    """An expression true when `var` already has type `tp`; '' when it needs a conversion."""
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if tp in _ITEM:
        return f"({_ITEM[tp].format(x=var)})"
    if origin is list and args[0] in _ITEM:
        item = _ITEM[args[0]].format(x="x")
        return f"(type({var}) is list and all({item} for x in {var}))"
    if origin is dict and args[1] in _ITEM:
        item = _ITEM[args[1]].format(x="x")
        return f"(type({var}) is dict and all(type(k) is str and {item} for k, x in {var}.items()))"
    if origin in (types.UnionType, typing.Union) and len(args) == 2 and type(None) in args:
        inner = _test(next(a for a in args if a is not type(None)), var)
        return f"({var} is None or {inner})" if inner else ""
    return ""


def _convert(tp: Any, var: str, env: dict[str, Any]) -> list[str]:
    """Statements converting `var` in place, raising Slow when they cannot."""
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if tp is float:
        return [
            f"if type({var}) is int:",
            f"    if not LO <= {var} <= HI: raise Slow",
            f"    {var} = float({var})",
            f"if type({var}) is not float or not isfinite({var}): raise Slow",
        ]
    if dataclasses.is_dataclass(tp):
        env[f"b_{var}"] = builder(typing.cast(type, tp))
        return [f"{var} = b_{var}({var})"]
    if origin is list and dataclasses.is_dataclass(args[0]):
        env[f"b_{var}"] = builder(typing.cast(type, args[0]))
        return [f"if type({var}) is not list: raise Slow", f"{var} = [b_{var}(x) for x in {var}]"]
    raise TypeError(f"no fast path for field type {tp!r}")


def _field(i: int, f: dataclasses.Field[Any], tp: Any, cls: type, env: dict[str, Any]) -> list[str]:
    var = f"v{i}"
    out = [f"{var} = g({f.name!r}, M)"]
    if f.default is not dataclasses.MISSING:
        env[f"d{i}"] = f.default
        out.append(f"if {var} is M: {var} = d{i}")
    elif f.default_factory is not dataclasses.MISSING:
        env[f"d{i}"] = f.default_factory
        out.append(f"if {var} is M: {var} = d{i}()")
    else:
        out.append(f"if {var} is M: raise Slow")
    test = _test(tp, var)
    if test:
        out.append(f"elif not {test}: raise Slow")
        if typing.get_origin(tp) in (list, dict):  # a copy: messages never alias input
            out.append(f"else: {var} = {typing.get_origin(tp).__name__}({var})")
    else:
        out.append("else:")
        out += ["    " + line for line in _convert(tp, var, env)]
    # The slot's own descriptor: frozen dataclasses refuse plain attribute assignment.
    env[f"s{i}"] = cls.__dict__[f.name].__set__
    out.append(f"s{i}(o, {var})")
    return out


def _compile(cls: type) -> Builder:
    env: dict[str, Any] = {
        "Slow": Slow,
        "M": _MISSING,
        "LO": -(1 << 63),
        "HI": (1 << 63) - 1,
        "isfinite": math.isfinite,
        "new": object.__new__,
        "CLS": cls,
    }
    hints = typing.get_type_hints(cls)
    body = ["if type(p) is not dict: raise Slow", "g = p.get", "o = new(CLS)"]
    for i, f in enumerate(dataclasses.fields(cls)):
        body += _field(i, f, hints[f.name], cls, env)
    source = "def build(p):\n" + "".join(f"    {line}\n" for line in body) + "    return o\n"
    exec(source, env)
    return typing.cast(Builder, env["build"])
