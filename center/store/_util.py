"""Small helpers shared by the store modules."""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from typing import Any

from sqlalchemy import literal_column

_IN_CHUNK = 500


def new_id(result: Any) -> int:
    """The primary key an INSERT of one row produced."""
    key = result.inserted_primary_key
    if key is None:
        raise RuntimeError("INSERT returned no primary key")
    return int(key[0])


def _chunks(items: Sequence[Any], size: int = _IN_CHUNK) -> Iterable[Sequence[Any]]:
    for i in range(0, len(items), size):
        yield items[i : i + size]


def _statuses_sql(guard: frozenset[str]) -> list[Any]:
    # executemany() refuses an expanding IN parameter; these are fixed identifiers, not input.
    return [literal_column(f"'{s}'") for s in sorted(guard)]


def _json(text: str | None, default: Any) -> Any:
    try:
        value = json.loads(text or "null")
    except ValueError:
        return default
    return value if isinstance(value, type(default)) else default
