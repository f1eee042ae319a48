"""Alert events, throttling and recovery decisions, payloads and signatures (pure: no I/O)."""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any

from center.timing import FireTimes
from i18n.marks import N_
from protocol.vocabulary import AlertChannelKind

# Marked: an email's subject, the admin's pages and a summary name an event by its name.
RUN_FAILED = N_("run_failed")
RUN_TIMEOUT = N_("run_timeout")
CRASH_LOOPING = N_("crash_looping")
AGENT_OFFLINE = N_("agent_offline")
DID_NOT_START = N_("did_not_start")
CALENDAR_ENDING = N_("calendar_ending")
EVENTS = (RUN_FAILED, RUN_TIMEOUT, CRASH_LOOPING, AGENT_OFFLINE, DID_NOT_START, CALENDAR_ENDING)
# Conditions: every check sees all that hold now, so an open one no longer seen is over.
# The others are events (one per failed run), over when the rule's next run succeeds.
CONDITIONS = frozenset({CRASH_LOOPING, AGENT_OFFLINE, DID_NOT_START, CALENDAR_ENDING})
ALERT, RECOVERY, TEST = "alert", "recovery", "test"
WEBHOOK, EMAIL = AlertChannelKind.WEBHOOK, AlertChannelKind.EMAIL
DINGTALK, WECOM = AlertChannelKind.DINGTALK, AlertChannelKind.WECOM
FEISHU, SLACK = AlertChannelKind.FEISHU, AlertChannelKind.SLACK
PENDING, SENT, FAILED = "pending", "sent", "failed"  # alert_notification.status
KINDS = tuple(AlertChannelKind)
CHAT_KINDS = (DINGTALK, WECOM, FEISHU, SLACK)
SIGNED_CHAT_KINDS = (DINGTALK, FEISHU)  # the others have no signature: the URL is the secret
MENTION_KINDS = (DINGTALK, WECOM)  # the robots that can @ people
SIGNATURE_HEADER = "X-UnitedCron-Signature"
_US = 1_000_000
# How far back the dead-man check looks for a rule's last fire, widening step by step so that
# a rule firing every second walks at most a minute of fires.
_LOOKBACK_US = (60 * _US, 3600 * _US, 86400 * _US, 32 * 86400 * _US, 366 * 86400 * _US)

StateKey = tuple[int, str, str]  # (channel id, event, subject)


@dataclass(frozen=True, slots=True)
class Channel:
    """An enabled row of alert_channel, with its group's name."""

    id: int
    gid: int
    name: str
    kind: str
    target: str
    secret: str
    events: frozenset[str]
    throttle_s: int = 3600
    grace_s: int = 60
    group_name: str = ""
    create_time: int = 0


@dataclass(frozen=True, slots=True)
class Finding:
    """What a check saw: an occurrence of `event` for `subject`, or (`cleared`) that it is over.

    `key` tells occurrences apart (a runid, a fire time); `channel_id` limits a finding to one
    channel (the dead-man check depends on each channel's grace)."""

    event: str
    subject: str
    gid: int | None
    summary: str
    key: str = "open"
    cleared: bool = False
    channel_id: int | None = None
    detail: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class AlertState:
    """A row of alert_state: is the condition open, was an alert sent, what was suppressed."""

    is_open: bool = False
    alerted: bool = False
    last_key: str = ""
    last_sent_us: int = 0
    suppressed: int = 0
    opened_us: int = 0


@dataclass(frozen=True, slots=True)
class Note:
    """A notification to queue: `kind` alert or recovery, with the count suppressed before it."""

    channel: Channel
    finding: Finding
    kind: str
    suppressed: int


def occur(state: AlertState, key: str, now_us: int, throttle_s: int) -> tuple[AlertState, bool]:
    """An occurrence: (new state, send an alert?). At most one alert per throttle window."""
    window_passed = not state.last_sent_us or now_us - state.last_sent_us >= throttle_s * _US
    # Seen before: nothing new, except that a condition whose first alert was throttled is
    # told once the window ends.
    if state.is_open and state.last_key == key and (state.alerted or not window_passed):
        return state, False
    opened_us = state.opened_us if state.is_open else now_us
    if window_passed:
        return AlertState(True, True, key, now_us, 0, opened_us), True
    suppressed = state.suppressed + (0 if state.last_key == key else 1)
    return replace(
        state, is_open=True, last_key=key, suppressed=suppressed, opened_us=opened_us
    ), False


def clear(state: AlertState) -> tuple[AlertState, bool]:
    """The condition is over: (new state, send a recovery?). Only after an alert that was sent."""
    if not state.is_open:
        return state, False
    if state.alerted:
        return replace(state, is_open=False, alerted=False, last_key="", suppressed=0), True
    return replace(state, is_open=False, last_key=""), False


def _concerns(channel: Channel, finding: Finding) -> bool:
    if finding.channel_id is not None and finding.channel_id != channel.id:
        return False
    return finding.gid == channel.gid and finding.event in channel.events


def evaluate(
    channels: Iterable[Channel],
    states: Mapping[StateKey, AlertState],
    findings: list[Finding],
    now_us: int,
) -> tuple[dict[StateKey, AlertState], list[Note]]:
    """Apply findings to each channel's states: the states that changed, the notes to send."""
    run = _Evaluation(states, now_us)
    for channel in channels:
        seen: set[StateKey] = set()
        for finding in findings:
            if _concerns(channel, finding):
                seen.add((channel.id, finding.event, finding.subject))
                run.apply(channel, finding)
        for key, state in states.items():
            if _vanished(channel, key, state, seen):
                summary = N_(f"{key[2]}: {key[1]} is over (no longer present)")
                run.apply(channel, Finding(key[1], key[2], channel.gid, summary, cleared=True))
    return run.changed, run.notes


class _Evaluation:
    def __init__(self, states: Mapping[StateKey, AlertState], now_us: int) -> None:
        self.states, self.now_us = states, now_us
        self.changed: dict[StateKey, AlertState] = {}
        self.notes: list[Note] = []

    def apply(self, channel: Channel, finding: Finding) -> None:
        key = (channel.id, finding.event, finding.subject)
        old = self.changed.get(key) or self.states.get(key, AlertState())
        if finding.cleared:
            new, send = clear(old)
        else:
            new, send = occur(old, finding.key, self.now_us, channel.throttle_s)
        if new != old:
            self.changed[key] = new
        if send:
            kind = RECOVERY if finding.cleared else ALERT
            self.notes.append(Note(channel, finding, kind, old.suppressed))


def _vanished(channel: Channel, key: StateKey, state: AlertState, seen: set[StateKey]) -> bool:
    """An open condition of this channel that no check reported at all (rule or agent gone)."""
    return (
        key[0] == channel.id
        and key[1] in CONDITIONS
        and key[1] in channel.events
        and state.is_open
        and key not in seen
    )


def last_fire_us(schedule: FireTimes, before_us: int, not_before_us: int) -> int | None:
    """The rule's last fire in (not_before_us, before_us]; None if there was none."""
    for window_us in _LOOKBACK_US:
        start_us = max(before_us - window_us, not_before_us)
        fire = schedule.next_fire_us(start_us)
        if fire is not None and fire <= before_us:
            while True:
                following = schedule.next_fire_us(fire)
                if following is None or following > before_us:
                    return fire
                fire = following
        if start_us == not_before_us:
            return None
    return None


def iso_us(us: int) -> str:
    return (
        datetime.fromtimestamp(us / _US, UTC).isoformat(timespec="seconds").replace("+00:00", "Z")
    )


def payload(note: Note, now_us: int) -> dict[str, Any]:
    """The JSON body a webhook receives (and an email shows) for one note."""
    finding, channel = note.finding, note.channel
    return {
        "event": finding.event,
        "state": note.kind,
        "summary": ("RECOVERED: " if note.kind == RECOVERY else "") + finding.summary,
        "subject": finding.subject,
        "group": {"id": channel.gid, "name": channel.group_name},
        "channel": {"id": channel.id, "name": channel.name},
        "suppressed": note.suppressed,
        "at_us": now_us,
        "at": iso_us(now_us),
        **dict(finding.detail),
    }


def probe_payload(channel: Channel, now_us: int) -> dict[str, Any]:
    """What "send a test" queues: proves the address, the secret and the receiver work."""
    finding = Finding(
        N_("test"),
        "channel:" + str(channel.id),
        channel.gid,
        N_(f"test notification of channel {channel.name}"),
    )
    return payload(Note(channel, finding, TEST, 0), now_us)


def body_bytes(data: Mapping[str, Any]) -> bytes:
    return json.dumps(data, sort_keys=True, separators=(",", ":")).encode()


def sign(secret: str, body: bytes) -> str:
    """The signature header's value: `sha256=` and the hex HMAC-SHA256 of the body."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def parse_events(text: str) -> frozenset[str]:
    """The `events` column: a comma list; unknown names are ignored (a newer admin's)."""
    return frozenset(e.strip() for e in text.split(",") if e.strip() in EVENTS)


def channel_from_row(row: Any) -> Channel:
    return Channel(
        id=row["id"],
        gid=row["gid"],
        name=row["name"],
        kind=row["kind"],
        target=row["target"],
        secret=row["secret"],
        events=parse_events(row["events"]),
        throttle_s=row["throttle_s"],
        grace_s=row["grace_s"],
        group_name=row.get("group_name") or "",
        create_time=row["create_time"],
    )


def notification_row(channel_id: int, data: dict[str, Any], now_us: int) -> dict[str, Any]:
    return {
        "channel_id": channel_id,
        "event": data["event"],
        "subject": str(data.get("subject", ""))[:64],
        "kind": data["state"],
        "payload": json.dumps(data, sort_keys=True, default=str),
        "status": PENDING,
        "created_us": now_us,
        "next_try_us": now_us,
    }
