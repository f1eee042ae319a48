"""Hypothesis strategies built from the message dataclasses' type hints.

A new message class, or a new field, is covered without touching this file; a field type it
cannot build fails loudly so that the strategy is extended rather than silently skipped.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from typing import Any

import msgpack
from hypothesis import strategies as st

from protocol.messages import MESSAGES, Message

INT64_MIN, INT64_MAX = -(1 << 63), (1 << 63) - 1
UINT64_MAX = (1 << 64) - 1


def for_type(tp: Any) -> st.SearchStrategy[Any]:
    """A strategy of valid values for one field type."""
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    scalars: dict[Any, st.SearchStrategy[Any]] = {
        int: st.integers(INT64_MIN, INT64_MAX),
        float: st.floats(allow_nan=False, allow_infinity=False),
        str: st.text(max_size=12),
        bytes: st.binary(max_size=40),
        bool: st.booleans(),
    }
    if tp in scalars:
        return scalars[tp]
    if dataclasses.is_dataclass(tp):
        return for_dataclass(tp)  # type: ignore[arg-type]
    if origin is list:
        return st.lists(for_type(args[0]), max_size=3)
    if origin is dict:
        return st.dictionaries(for_type(args[0]), for_type(args[1]), max_size=3)
    if origin in (types.UnionType, typing.Union) and type(None) in args:
        (inner,) = (a for a in args if a is not type(None))
        return st.none() | for_type(inner)
    raise TypeError(f"no strategy for field type {tp!r}: extend tests/protocol/strategies.py")


def for_dataclass(cls: type) -> st.SearchStrategy[Any]:
    hints = typing.get_type_hints(cls)
    fields = {f.name: for_type(hints[f.name]) for f in dataclasses.fields(cls)}
    return st.builds(cls, **fields)


def messages_of(cls: type[Message]) -> st.SearchStrategy[Message]:
    return for_dataclass(cls)


any_message: st.SearchStrategy[Message] = st.sampled_from(list(MESSAGES.values())).flatmap(
    messages_of
)

wire_ints = st.integers(INT64_MIN, UINT64_MAX)  # all that msgpack can carry
map_keys = st.text(max_size=6) | st.binary(max_size=6) | wire_ints
msgpack_values: st.SearchStrategy[Any] = st.recursive(
    st.none()
    | st.booleans()
    | wire_ints
    | st.floats()
    | st.text(max_size=10)
    | st.binary(max_size=10)
    | st.builds(msgpack.ExtType, st.integers(0, 127), st.binary(max_size=8)),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(map_keys, children, max_size=4)
    ),
    max_leaves=12,
)


@st.composite
def envelopes(draw: st.DrawFn) -> dict[str, Any]:
    """Envelopes that get past msgpack: a known call, params that mix real field names and junk."""
    cls = draw(st.sampled_from(list(MESSAGES.values())))
    names = [f.name for f in dataclasses.fields(cls)]  # type: ignore[arg-type]
    params = draw(
        st.dictionaries(st.sampled_from(names) | st.text(max_size=6), msgpack_values, max_size=6)
        | msgpack_values
    )
    if draw(st.booleans()) and isinstance(params, dict):
        # Half of the time start from a valid message so that the checks go deep.
        valid = draw(messages_of(cls)).to_params()
        params = {**valid, **params}
    return {"call": cls.CALL, "params": params}


def wrong_value(tp: Any) -> Any:
    """One value that is certainly not acceptable for a field of type `tp`."""
    origin = typing.get_origin(tp)
    if origin in (types.UnionType, typing.Union):
        (inner,) = (a for a in typing.get_args(tp) if a is not type(None))
        return wrong_value(inner)
    wrong: dict[Any, Any] = {
        int: "1",
        float: "1.0",
        str: 1,
        bytes: "x",
        bool: 1,
        list: {},
        dict: [],
    }
    if dataclasses.is_dataclass(tp):
        return "not a map"
    return wrong[origin or tp]


def field_paths(cls: type, prefix: str = "") -> list[tuple[str, Any]]:
    """(dotted path, type) of every field, descending into nested dataclasses (not into lists)."""
    hints = typing.get_type_hints(cls)
    out = []
    for f in dataclasses.fields(cls):  # type: ignore[arg-type]
        path, tp = f"{prefix}{f.name}", hints[f.name]
        out.append((path, tp))
        if dataclasses.is_dataclass(tp):
            out += field_paths(tp, f"{path}.")  # type: ignore[arg-type]
    return out


def sample_value(tp: Any) -> Any:
    """One fixed valid value for a field type, for table tests that need no search."""
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    fixed: dict[Any, Any] = {int: 7, float: 1.5, str: "x", bytes: b"\x00\xff", bool: True}
    if tp in fixed:
        return fixed[tp]
    if dataclasses.is_dataclass(tp):
        return sample_message(tp)  # type: ignore[arg-type]
    if origin is list:
        return [sample_value(args[0])]
    if origin is dict:
        return {sample_value(args[0]): sample_value(args[1])}
    if origin in (types.UnionType, typing.Union):
        (inner,) = (a for a in args if a is not type(None))
        return sample_value(inner)
    raise TypeError(f"no sample for field type {tp!r}: extend tests/protocol/strategies.py")


def sample_message(cls: type) -> Any:
    hints = typing.get_type_hints(cls)
    return cls(**{f.name: sample_value(hints[f.name]) for f in dataclasses.fields(cls)})  # type: ignore[arg-type]
