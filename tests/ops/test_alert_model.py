"""The alerts' pure decisions: throttling, recovery, the dead-man's last fire, signatures."""

from __future__ import annotations

import hashlib
import hmac

import pytest

from center.alerts.model import (
    AGENT_OFFLINE,
    RUN_FAILED,
    AlertState,
    Channel,
    Finding,
    clear,
    evaluate,
    last_fire_us,
    occur,
    sign,
)
from center.cronexpr import parse_schedule

S = 1_000_000
HOUR = 3600


def channel(**values: object) -> Channel:
    base: dict[str, object] = {
        "id": 1,
        "gid": 7,
        "name": "c",
        "kind": "webhook",
        "target": "http://x/",
        "secret": "s",
        "events": frozenset({RUN_FAILED, AGENT_OFFLINE}),
        "throttle_s": HOUR,
    }
    return Channel(**(base | values))  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("state", "key", "now_s", "sent", "suppressed"),
    [
        (AlertState(), "r1", 100, True, 0),  # first occurrence: sent
        (AlertState(True, True, "r1", 100 * S, 0, 100 * S), "r2", 200, False, 1),  # in window
        (AlertState(True, True, "r1", 100 * S, 0, 100 * S), "r1", 200, False, 0),  # same key
        (
            AlertState(True, True, "r2", 100 * S, 4, 100 * S),
            "r3",
            100 + HOUR,
            True,
            0,
        ),  # window over
        (
            AlertState(True, False, "open", 100 * S, 1, 150 * S),
            "open",
            100 + HOUR,
            True,
            0,
        ),  # throttled condition, told later
        (AlertState(True, False, "open", 100 * S, 1, 150 * S), "open", 200, False, 1),
    ],
)
def test_occur_throttles_per_window(
    state: AlertState, key: str, now_s: int, sent: bool, suppressed: int
) -> None:
    """An occurrence sends at most one alert per throttle window and counts the others."""
    new, send = occur(state, key, now_s * S, HOUR)
    assert send is sent
    assert new.suppressed == suppressed and new.is_open


@pytest.mark.parametrize(
    ("state", "sent"),
    [
        (AlertState(), False),  # nothing open: nothing to recover
        (AlertState(True, True, "r1", 1, 2, 1), True),  # alerted: recovery
        (AlertState(True, False, "r1", 1, 2, 1), False),  # only throttled ones: silent
    ],
)
def test_clear_recovers_only_after_a_sent_alert(state: AlertState, sent: bool) -> None:
    """A recovery goes out only when its alert went out; a silent clear keeps the count."""
    new, send = clear(state)
    assert send is sent and not new.is_open
    assert new.suppressed == (0 if sent else state.suppressed)


def test_evaluate_scopes_findings_to_the_channel_group_and_events() -> None:
    """A finding reaches channels of its group that listen to its event, nobody else."""
    mine, other_group, deaf = channel(), channel(id=2, gid=8), channel(id=3, events=frozenset())
    finding = Finding(RUN_FAILED, "rule:1", 7, "failed", key="run-a")
    changed, notes = evaluate([mine, other_group, deaf], {}, [finding], 10 * S)
    assert [n.channel.id for n in notes] == [1]
    assert list(changed) == [(1, RUN_FAILED, "rule:1")]


def test_evaluate_closes_a_condition_nobody_reports_any_more() -> None:
    """An open agent_offline for an agent that vanished is cleared with a recovery."""
    states = {(1, AGENT_OFFLINE, "agent:9"): AlertState(True, True, "open", S, 0, S)}
    changed, notes = evaluate([channel()], states, [], 10 * S)
    assert [(n.kind, n.finding.subject) for n in notes] == [("recovery", "agent:9")]
    assert not changed[(1, AGENT_OFFLINE, "agent:9")].is_open


@pytest.mark.parametrize(
    ("rule", "before", "not_before", "expected"),
    [
        ("*/10 * * * * *", "2026-01-01T00:00:25", "2025-01-01T00:00:00", "2026-01-01T00:00:20"),
        ("0 3 * * *", "2026-01-02T02:00:00", "2025-01-01T00:00:00", "2026-01-01T03:00:00"),
        ("0 3 * * *", "2026-01-02T03:00:00", "2025-01-01T00:00:00", "2026-01-02T03:00:00"),
        ("0 0 1 1 *", "2026-06-01T00:00:00", "2025-01-01T00:00:00", "2026-01-01T00:00:00"),
        ("0 3 * * *", "2026-01-02T02:00:00", "2026-01-01T04:00:00", None),  # rule newer
        ("@every 90m", "2026-01-01T02:00:00", "2025-01-01T00:00:00", "2026-01-01T01:30:00"),
    ],
)
def test_last_fire(rule: str, before: str, not_before: str, expected: str | None) -> None:
    """The dead-man check finds the last fire at or before a time, never before the rule."""
    from datetime import UTC, datetime

    def us(text: str) -> int:
        return int(datetime.fromisoformat(text).replace(tzinfo=UTC).timestamp()) * S

    got = last_fire_us(parse_schedule(rule, "UTC"), us(before), us(not_before))
    assert got == (us(expected) if expected else None)


def test_signature_is_hmac_sha256_of_the_body() -> None:
    """The signature header is sha256=<hex HMAC-SHA256 of the exact body bytes>."""
    body = b'{"event":"run_failed"}'
    expected = hmac.new(b"k", body, hashlib.sha256).hexdigest()
    assert sign("k", body) == f"sha256={expected}"
