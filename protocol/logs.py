"""structlog set up once per process: JSON lines, or console output on a terminal."""

from __future__ import annotations

import json
import logging
import sys
from collections.abc import Iterable
from typing import Any

import structlog
import structlog.tracebacks

LEVELS = {
    "debug": logging.DEBUG,
    "info": logging.INFO,
    "warning": logging.WARNING,
    "error": logging.ERROR,
}


NO_LOCALS_TRACEBACKS = structlog.processors.ExceptionRenderer(
    structlog.tracebacks.ExceptionDictTransformer(show_locals=False)
)


def _fallback(obj: Any) -> Any:
    """What JSON cannot hold, as structlog's JSONRenderer shows it: __structlog__(), or repr."""
    try:
        return obj.__structlog__()
    except AttributeError:
        return repr(obj)


# One encoder for every line: `json.dumps(obj, default=…)` builds a new encoder per call, a
# third of a short line's rendering. Same options as dumps' defaults: the same text.
_ENCODER = json.JSONEncoder(default=_fallback)


def _dumps(obj: Any, **_: Any) -> str:
    return _ENCODER.encode(obj)


class _Batch:
    """What `say_lines` needs to render lines as the configured JSON chain would, or None
    when the chain is another one (the console, a test's capture, a level above info)."""

    processors: list[Any] | None = None
    out: Any = None


_BATCH = _Batch()
_STAMPER = structlog.processors.TimeStamper(fmt="iso", utc=True)


def configure_logging(level: str = "info", fmt: str = "auto", stream: Any = None) -> None:
    """`fmt` is json, console, or auto (console on a terminal, JSON otherwise)."""
    out = stream if stream is not None else sys.stderr
    console = fmt == "console" or (fmt == "auto" and out.isatty())
    # Tracebacks never carry frame locals (structlog's and rich's default): a local can be a
    # password (SMTP settings), a rule's env, a token.
    renderer: Any = (
        structlog.dev.ConsoleRenderer(exception_formatter=structlog.dev.plain_traceback)
        if console
        else structlog.processors.JSONRenderer(serializer=_dumps)
    )
    processors: list[Any] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        structlog.processors.StackInfoRenderer(),
    ]
    if not console:
        processors.append(NO_LOCALS_TRACEBACKS)
    processors.append(renderer)
    quiet = LEVELS.get(level.lower(), logging.INFO) > logging.INFO
    _BATCH.processors = None if console or quiet else processors
    _BATCH.out = structlog.PrintLogger(out)
    structlog.configure(
        processors=processors,
        wrapper_class=structlog.make_filtering_bound_logger(
            LEVELS.get(level.lower(), logging.INFO)
        ),
        logger_factory=structlog.PrintLoggerFactory(out),
        cache_logger_on_first_use=False,
    )


def say_lines(logger: Any, event: str, lines: Iterable[dict[str, Any]]) -> None:
    """`logger.info(event, **fields)` for each of `lines`, the same JSON lines at a fraction
    of the cost when the chain is `configure_logging`'s JSON one: the context variables and
    the time (one stamp for all) are taken once, each line is encoded by the one encoder, and
    all are written at once. Any other chain gets each line through `logger.info`. The fields
    carry no `stack_info` nor `exc_info` (the chain would render those); each dict of
    `lines` is the line's own, completed in place."""
    if _BATCH.processors is None or structlog.get_config()["processors"] is not _BATCH.processors:
        for fields in lines:
            logger.info(event, **fields)
        return
    context = structlog.contextvars.merge_contextvars(None, "info", {})
    stamp = _STAMPER(None, "info", {})["timestamp"]
    text = []
    for fields in lines:
        # As the chain builds it: the fields, the event, the context's (never overriding a
        # field), then the level and the time (overriding). `fields` is the caller's to give.
        fields["event"] = event
        for key, value in context.items():
            fields.setdefault(key, value)
        fields["level"] = "info"
        fields["timestamp"] = stamp
        text.append(_ENCODER.encode(fields))
    if text:
        _BATCH.out.msg("\n".join(text))
