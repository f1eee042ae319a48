"""What the API answers, as pydantic models: the OpenAPI document gets a schema for every 2xx
answer. Each model names the fields a client relies on, typed with the shared vocabulary;
other columns pass through unchanged (extra="allow"), so answers keep their shape."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict

from protocol.vocabulary import (
    AgentStatus,
    CalendarFallback,
    CalendarMode,
    CommandKind,
    Misfire,
    Overlap,
    RetryUnknown,
    Routing,
    RuleStatus,
    RunStatus,
    Trigger,
)


class Out(BaseModel):
    model_config = ConfigDict(extra="allow")


class AgentOut(Out):
    """An agent: `status` -1 deleted, 0 pending or disabled, 1 enabled, 2 unreachable."""

    id: int
    name: str
    gid: int | None = None
    status: AgentStatus
    cert_serial: str = ""  # built-in PKI: its certificate's serial (hex), "" before approval
    cert_not_after: int = 0  # µs since the epoch
    cert_fingerprint: str = ""  # SHA-256 of the certificate (hex)


class GroupOut(Out):
    id: int
    name: str
    retention_days: int | None = None


class RuleOut(Out):
    """A rule with every column of `crontab` (see the README's rule reference)."""

    id: int
    gid: int | None = None
    name: str
    rule: str
    execute: str
    status: RuleStatus
    overlap: Overlap | None = None
    routing: Routing | None = None
    misfire: Misfire | None = None
    retry_unknown: RetryUnknown | None = None
    calendar_mode: CalendarMode | None = None
    calendar_fallback: CalendarFallback | None = None
    warning: str = ""  # one rule read alone: its calendar's data runs out soon


class CalendarOut(Out):
    id: int
    gid: int
    name: str
    base: str
    include: str
    exclude: str


class DrainOut(Out):
    aid: int
    drain: int
    unplaced: list[int]  # services this drain leaves without an agent (confirmed)


class PlacementOut(Out):
    """One instance of a fleet service (`aid` 0: unplaced, `reason` says why)."""

    instance: int
    aid: int
    agent: str
    state: str  # running, starting, crash_looping, unplaced
    reason: str
    since_us: int


class PreviewOut(Out):
    """Fire times as wall-clock text of the rule's zone, and as µs since the epoch; `warning`:
    the calendar's data runs out ("cn-workdays has no data after 2026-12-31 …")."""

    fires: list[str]
    fires_us: list[int] = []
    warning: str = ""


class RunOut(Out):
    """One run on one agent (`task_process`)."""

    id: int
    runid: str
    task_id: int
    aid: int
    status: RunStatus
    trigger: Trigger | None = None
    sched_us: int


class OutputOut(Out):
    """Live output from an offset; `final` once the run has ended."""


class CommandOut(Out):
    """A command for the leader center (run now, kill), and what became of it."""

    id: int
    kind: CommandKind | None = None
    status: str | None = None


class KeyOut(Out):
    """A concurrency key; in lists also `holders` (runs dispatched or running, any agent),
    `queue` (runs past their instant waiting for room) and `rules` (that hold it)."""

    id: int
    gid: int
    key: str
    limit: int


class UserOut(Out):
    id: int
    name: str
    language: str = ""  # "" (Accept-Language, then the admin's default), "en" or "zh-CN"
    timezone: str = ""  # "" (the admin's default) or an IANA name


class PreferencesOut(Out):
    language: str
    timezone: str


class GrantOut(Out):
    id: int


class TokenOut(Out):
    """An API token; `token` itself only in the answer that creates it."""

    id: int


class ChannelOut(Out):
    id: int
    gid: int
    name: str
    kind: str


class NotificationOut(Out):
    id: int


class AuditOut(Out):
    id: int
    action: str
