"""Pydantic's validation errors as the API's own short reasons, marked for the catalogs (pure)."""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import Any

from i18n.marks import N_

# pydantic's error `type` → our reason; `{name}` is filled from the error's `ctx`. Pydantic's
# own messages ("Input should be a valid integer, unable to parse string as an integer") are
# long, name no field and have no translation; these are short and are in the catalogs.
_REASONS: Mapping[str, str] = MappingProxyType(
    {
        "missing": N_("is required"),
        "int_parsing": N_("must be an integer"),
        "int_type": N_("must be an integer"),
        "int_from_float": N_("must be an integer, not a fraction"),
        "float_parsing": N_("must be a number"),
        "float_type": N_("must be a number"),
        "bool_parsing": N_("must be true or false"),
        "bool_type": N_("must be true or false"),
        "string_type": N_("must be text"),
        "string_too_long": N_("is longer than {max_length} characters"),
        "string_too_short": N_("is shorter than {min_length} characters"),
        "greater_than_equal": N_("must be at least {ge}"),
        "greater_than": N_("must be more than {gt}"),
        "less_than_equal": N_("must be at most {le}"),
        "less_than": N_("must be less than {lt}"),
        "literal_error": N_("must be {expected}"),
        "enum": N_("must be {expected}"),
        "list_type": N_("must be a list"),
        "too_long": N_("has more than {max_length} items"),
        "dict_type": N_("must be a JSON object"),
        "model_type": N_("must be a JSON object"),
        "model_attributes_type": N_("must be a JSON object"),
        # "xtra" kept: clients and tests look for pydantic's word
        "extra_forbidden": N_("is not a field here (extra inputs are not permitted)"),
        "json_invalid": N_("the body is not valid JSON: {error}"),
    }
)
# Errors that carry our own reason: a validator's ValueError (e.g. center.rules.NOT_UNICODE).
_OWN = frozenset({"value_error", "assertion_error"})


def pydantic_reason(error: Mapping[str, Any]) -> str:
    """Our reason for one of pydantic's errors, else pydantic's own message."""
    kind = str(error.get("type", ""))
    ctx = error.get("ctx") or {}
    fallback = str(error.get("msg") or "invalid")
    if kind in _OWN:
        return str(ctx.get("error") or fallback)
    template = _REASONS.get(kind)
    if template is None:
        return fallback
    try:
        return template.format_map({str(k): str(v) for k, v in ctx.items()})
    except (KeyError, IndexError, ValueError):  # a ctx without the value the text names
        return fallback
