"""The operations' pure modules stay pure, checked like tests/test_purity.py checks the rest."""

from __future__ import annotations

import pytest

from tests.test_purity import test_pure_module_has_no_io_imports_or_clock_reads as check

PURE = [
    ("center.alerts.model", "throttling, recovery and last-fire decisions take `now`"),
    ("center._import_rows", "mapping the original's rows"),
    ("center.alerts.targets", "which addresses alerts may reach, given resolved addresses"),
    ("center.alerts.chat", "chat robots' layouts, signatures and replies take `now` and data"),
    ("center.alerts.chat_text", "the words of chat alerts"),
]


@pytest.mark.parametrize(("module", "why"), PURE, ids=[m for m, _ in PURE])
def test_ops_pure_modules(module: str, why: str) -> None:
    """Alert decisions and the import's row mapping import no I/O and read no clock."""
    check(module, why)
