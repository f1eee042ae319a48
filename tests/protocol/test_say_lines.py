"""Outcome lines written in one go read exactly as the JSON chain writes them one by one."""

from __future__ import annotations

import io
import json
import re
from collections.abc import Iterator

import pytest
import structlog

from protocol.logs import configure_logging, say_lines

STAMP = re.compile(r'"timestamp": "[^"]+"')


@pytest.fixture
def json_logs() -> Iterator[io.StringIO]:
    saved = structlog.get_config()
    out = io.StringIO()
    configure_logging("info", "json", stream=out)
    try:
        yield out
    finally:
        structlog.configure(**saved)
        structlog.contextvars.clear_contextvars()


def test_batched_lines_equal_the_chains_lines(json_logs: io.StringIO) -> None:
    log = structlog.get_logger("test")
    fields = [
        {"runid": "7-1-1-0-0", "status": "failed", "code": 3, "reason": 'it\'s "odd" é 中'},
        {"runid": "8-1-1-0-0", "status": "success", "code": 0, "reason": None, "aid": 2},
    ]
    with structlog.contextvars.bound_contextvars(center="c1", status="shadowed"):
        for one in fields:
            log.info("run.finished", **one)
        say_lines(log, "run.finished", [dict(one) for one in fields])
    lines = json_logs.getvalue().splitlines()
    assert len(lines) == 4
    one_by_one, batched = lines[:2], lines[2:]
    assert [STAMP.sub("", x) for x in batched] == [STAMP.sub("", x) for x in one_by_one]
    assert json.loads(batched[0])["status"] == "failed"  # a field wins over the context


def test_another_chain_gets_each_line_through_the_logger() -> None:
    with structlog.testing.capture_logs() as logs:
        say_lines(structlog.get_logger("test"), "run.finished", [{"runid": "a"}, {"runid": "b"}])
    assert [(e["event"], e["runid"]) for e in logs] == [
        ("run.finished", "a"),
        ("run.finished", "b"),
    ]
