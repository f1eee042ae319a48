"""The API's request bodies. Field names are the database columns; unknown fields are refused."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

from admin.errors import Invalid
from admin.permissions import ROLES
from admin.web import Int32
from center.rules import NOT_UNICODE, is_unicode


class Body(BaseModel):
    model_config = ConfigDict(extra="forbid")

    @field_validator("*")
    @classmethod
    def _unicode(cls, value: Any) -> Any:
        """JSON can spell lone surrogates (`"\\ud800"`): refused here, not a 500 at the database."""
        if not is_unicode(value):
            raise ValueError(NOT_UNICODE)
        return value

    def changes(self, nullable: frozenset[str] = frozenset()) -> dict[str, Any]:
        """The fields the client sent; null only where the column takes it."""
        values = self.model_dump(exclude_unset=True)
        for name, value in values.items():
            if value is None and name not in nullable:
                raise Invalid(name, "must not be null")
        return values


class LoginIn(Body):
    username: str
    password: str
    totp_code: str = Field(default="", max_length=16, description="For accounts with TOTP")
    name: str = Field(default="", max_length=64, description="A label for the token")
    expires_in_days: Int32 | None = Field(default=None, description="Default: the admin's setting")


class PasswordIn(Body):
    current_password: str
    new_password: str


class PreferencesIn(Body):
    """Both are replaced; a field left out is "" (not chosen)."""

    language: str = Field(default="", description='"", "en" or "zh-CN"')
    timezone: str = Field(default="", description='"" or an IANA name')


class GroupIn(Body):
    name: str
    description: str = ""
    retention_days: Int32 = 30


class GroupPatch(Body):
    name: str | None = None
    description: str | None = None
    retention_days: Int32 | None = None


class AgentPatch(Body):
    status: Int32 | None = Field(default=None, description="1 enabled, 0 disabled")
    gid: Int32 | None = None
    labels: dict[str, Any] | None = None


class ApproveIn(Body):
    gid: Int32


class DrainIn(Body):
    confirm: bool = Field(
        default=False, description="drain even if a fleet service is left without an agent"
    )


class RulePatch(Body):
    """Every field of a rule; see the README's rule reference for meanings and defaults."""

    gid: Int32 | None = None
    name: str | None = None
    rule: str | None = None
    execute: str | None = None
    run_user: str | None = None
    process_num: Int32 | None = None
    is_daemon: bool | None = None
    status: Int32 | None = Field(default=None, description="1 enabled, 0 paused")
    timezone: str | None = None
    shell: bool | None = None
    env: dict[str, Any] | str | None = Field(default=None, description="JSON object")
    cwd: str | None = None
    timeout_s: float | None = None
    kill_grace_s: float | None = None
    retries: Int32 | None = None
    retry_backoff_s: float | None = None
    overlap: str | None = None
    output_max_bytes: Int32 | None = None
    routing: str | None = None
    failover: bool | None = None
    selector: str | None = None
    shard_total: Int32 | None = None
    misfire: str | None = None
    misfire_window_s: Int32 | None = None
    depends_on: Int32 | None = None
    depends_when: str | None = None
    retry_unknown: str | None = Field(
        default=None, description="never (at most once) or retry (at least once)"
    )
    limit_mem_mb: Int32 | None = Field(default=None, description="address space, 0 = none")
    limit_cpu_s: Int32 | None = Field(default=None, description="CPU seconds, 0 = none")
    limit_nofile: Int32 | None = Field(default=None, description="open files, 0 = none")
    limit_nproc: Int32 | None = Field(default=None, description="processes of the user")
    max_per_agent: Int32 | None = Field(
        default=None, description="fleet services: instances on one agent at most, 0 = no cap"
    )
    partition_stop_s: Int32 | None = Field(
        default=None, description="fleet services: at most N, stop after this long cut off"
    )
    description: str | None = None
    agents: list[Int32] | None = Field(default=None, description="Ids of the target agents")
    # calendars and spread
    calendar: str | None = Field(default=None, description="a group calendar or a built-in")
    calendar_mode: str | None = Field(default=None, description="only | except")
    calendar_fallback: str | None = Field(
        default=None, description="past the calendar's data: skip | weekdays"
    )
    jitter_s: Int32 | None = Field(default=None, description="offset per fire in [0, jitter_s)")
    # Shared limits and parameters
    concurrency_keys: str | None = Field(
        default=None, description="the group's concurrency keys its runs hold, comma-separated"
    )
    allow_params: bool | None = Field(default=None, description="run now may take params, env")

    def rule_changes(self) -> dict[str, Any]:
        return self.changes(frozenset({"depends_on"}))


class RuleIn(RulePatch):
    """A new rule: `gid`, `name`, `execute` and (unless a daemon) `rule` are required."""

    gid: Int32 | None = Field(description="The group the rule belongs to")
    name: str | None = Field(description="A name for people")
    execute: str | None = Field(description="The command")


class KeyIn(Body):
    """A group's concurrency key: at most `limit` runs of the rules holding it at once."""

    key: str = Field(max_length=64, description="letters, digits, _ . : -")
    limit: Int32 = 1
    description: str = ""


class KeyPatch(Body):
    limit: Int32 | None = None
    description: str | None = None


class RunNowIn(Body):
    """Run now, with arguments and env overrides (rules with allow_params), or at a time."""

    params: str | None = Field(default=None, description="appended to the command, split like it")
    env: dict[str, Any] | str | None = Field(default=None, description="JSON object of overrides")
    run_at: str | None = Field(
        default=None, description="ISO time with an offset (Z, +08:00): run once then, not now"
    )


class UserIn(Body):
    name: str
    password: str
    superadmin: bool = False


class UserPatch(Body):
    superadmin: bool | None = None
    status: Int32 | None = Field(default=None, description="1 active, 0 disabled")
    password: str | None = Field(default=None, description="A new password (sessions end)")
    totp_required: bool | None = Field(default=None, description="A TOTP code at every login")
    totp_reset: bool | None = Field(default=None, description="Forget the enrolled TOTP app")


class GrantIn(Body):
    user_id: Int32 | None = None
    username: str | None = None
    gid: Int32
    role: str = Field(description=" | ".join(ROLES))


class CalendarPatch(Body):
    """A group's calendar: `base` (weekdays, cn-workdays, cn-holidays or ""), plus `include`,
    less `exclude`: dates and ranges (2026-10-01..2026-10-07) by commas or lines."""

    name: str | None = None
    description: str | None = None
    base: str | None = None
    include: str | None = None
    exclude: str | None = None


class CalendarIn(CalendarPatch):
    gid: Int32
    name: str | None = Field(description="Letters, digits, '-', '_', '.'; unique in the group")
