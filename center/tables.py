"""Table definitions shared by the center, the admin and the migrations.

Every time column holds microseconds since the Unix epoch, UTC, as a BIGINT
(the original's `float(10,3)` seconds lost precision); names without a unit
(`start`, `end`, `create_time`, `heart_beat_time`) are kept from the original.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import (
    BigInteger,
    Column,
    Double,
    Float,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    PrimaryKeyConstraint,
    SmallInteger,
    String,
    Table,
    Text,
    UniqueConstraint,
)
from sqlalchemy.dialects import mysql

metadata = MetaData(
    naming_convention={
        "ix": "ix_%(table_name)s_%(column_0_N_name)s",
        "uq": "uq_%(table_name)s_%(column_0_N_name)s",
        "pk": "pk_%(table_name)s",
    }
)

# SQLite only autoincrements an INTEGER PRIMARY KEY; MySQL wants BIGINT for the run table.
BigId = BigInteger().with_variant(Integer(), "sqlite")
LongText = Text().with_variant(mysql.MEDIUMTEXT(), "mysql")
Blob = LargeBinary().with_variant(mysql.MEDIUMBLOB(), "mysql")
# InnoDB for transactions and row locks; utf8mb4 so names and output may hold any character.
# An explicit collation keeps MySQL 8 (utf8mb4_0900_ai_ci) and MariaDB (utf8mb4_general_ci)
# alike. It compares case-insensitively: ids stored in strings (runid) should be lowercase.
MYSQL_OPTIONS: dict[str, Any] = {
    "mysql_engine": "InnoDB",
    "mysql_charset": "utf8mb4",
    "mysql_collate": "utf8mb4_unicode_ci",
}


def _times() -> list[Column[int]]:
    return [
        Column("create_time", BigInteger, nullable=False, server_default="0"),
        Column("update_time", BigInteger, nullable=False, server_default="0"),
    ]


def _calendar_columns() -> list[Column[str]]:
    """A rule's or a workflow's calendar by name ("" = none; a group's own or a built-in),
    used `only` or `except` (CalendarMode), and what a date past its data does
    (CalendarFallback)."""
    return [
        Column("calendar", String(64), nullable=False, server_default=""),
        Column("calendar_mode", String(8), nullable=False, server_default="only"),
        Column("calendar_fallback", String(8), nullable=False, server_default="skip"),
    ]


cron_group = Table(
    "cron_group",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("name", String(64), nullable=False, unique=True),
    Column("description", String(255), nullable=False, server_default=""),
    Column("retention_days", Integer, nullable=False, server_default="30"),
    *_times(),
    sqlite_autoincrement=True,
    **MYSQL_OPTIONS,
)

# status: 0 pending/paused, 1 enabled, 2 unreachable, -1 deleted.
agents = Table(
    "agents",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("gid", Integer, nullable=True, index=True),
    Column("name", String(128), nullable=False, unique=True),
    Column("ip", String(64), nullable=False, server_default=""),
    Column("port", Integer, nullable=False, server_default="0"),
    Column("status", SmallInteger, nullable=False, server_default="0"),
    Column("heart_beat_time", BigInteger, nullable=False, server_default="0"),
    # Labels set by operators (the admin); the agent's own (UNITEDCRON_AGENT_LABELS) are in
    # agent_labels. Routing uses both, an operator's value winning.
    Column("labels", Text, nullable=False, server_default="{}"),
    Column("agent_labels", Text, nullable=False, server_default="{}"),
    Column("version", String(32), nullable=False, server_default=""),
    Column("users", Text, nullable=False, server_default="[]"),
    Column("cpu_pct", Float, nullable=False, server_default="0"),
    Column("mem_pct", Float, nullable=False, server_default="0"),
    Column("load1", Float, nullable=False, server_default="0"),
    Column("procs", Integer, nullable=False, server_default="0"),
    Column("outbox", Integer, nullable=False, server_default="0"),
    Column("last_error", String(500), nullable=False, server_default=""),
    # SHA-256 (hex) of the key the agent first registered with; '' until then, or after an
    # operator forgot it. A registration under this name with another key is refused.
    Column("key_hash", String(64), nullable=False, server_default=""),
    # Built-in PKI: the CSR of its last registration, and the certificate a center signed for it
    # once approved (the serial, expiry and fingerprint are what the admin shows).
    Column("csr_pem", Text, nullable=False, server_default=""),
    Column("cert_pem", Text, nullable=False, server_default=""),
    Column("cert_serial", String(40), nullable=False, server_default=""),
    Column("cert_not_after", BigInteger, nullable=False, server_default="0"),
    Column("cert_fingerprint", String(64), nullable=False, server_default=""),
    # Fleet services: 1 while an operator drains it (no new placements or strategy runs; it is
    # disabled once empty), and why it refuses new work (its own load, memory, process limits).
    Column("drain", SmallInteger, nullable=False, server_default="0"),
    Column("refusing", String(200), nullable=False, server_default=""),
    *_times(),
    sqlite_autoincrement=True,
    **MYSQL_OPTIONS,
)

# status: 1 enabled, 0 paused, -1 deleted. `error` is why the center cannot plan it ("" = fine).
crontab = Table(
    "crontab",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("gid", Integer, nullable=True, index=True),
    Column("name", String(128), nullable=False),
    Column("rule", String(128), nullable=False),
    Column("execute", Text, nullable=False),
    Column("run_user", String(64), nullable=False, server_default=""),
    Column("process_num", Integer, nullable=False, server_default="1"),
    Column("is_daemon", SmallInteger, nullable=False, server_default="0"),
    Column("status", SmallInteger, nullable=False, server_default="1"),
    Column("timezone", String(64), nullable=False, server_default="UTC"),
    Column("shell", SmallInteger, nullable=False, server_default="0"),
    Column("env", Text, nullable=False, server_default="{}"),
    Column("cwd", String(255), nullable=False, server_default=""),
    Column("timeout_s", Double, nullable=False, server_default="0"),
    Column("kill_grace_s", Double, nullable=False, server_default="5"),
    Column("retries", Integer, nullable=False, server_default="0"),
    Column("retry_backoff_s", Double, nullable=False, server_default="10"),
    Column("overlap", String(16), nullable=False, server_default="skip"),
    Column("output_max_bytes", Integer, nullable=False, server_default="262144"),
    Column("routing", String(16), nullable=False, server_default="listed"),
    Column("failover", SmallInteger, nullable=False, server_default="1"),
    Column("selector", String(255), nullable=False, server_default=""),
    Column("shard_total", Integer, nullable=False, server_default="0"),
    Column("misfire", String(8), nullable=False, server_default="skip"),
    Column("misfire_window_s", Integer, nullable=False, server_default="3600"),
    Column("depends_on", Integer, nullable=True, index=True),
    Column("depends_when", String(8), nullable=False, server_default="success"),
    Column("description", String(500), nullable=False, server_default=""),
    Column("error", String(500), nullable=False, server_default=""),
    # Set by the center: why some of its runs are not planned although the rule is valid
    # (an agent whose policy refuses its run_user, no agent to run it); "" when none.
    Column("notice", String(500), nullable=False, server_default=""),
    # never | retry: whether a run whose outcome is unknown (its agent restarted after
    # accepting it) is retried; `never` gives at most once, `retry` at least once.
    Column("retry_unknown", String(8), nullable=False, server_default="never"),
    # Per-run limits applied with setrlimit in the child after the privilege drop; 0 = the
    # agent's default (none unless the agent sets one).
    Column("limit_mem_mb", Integer, nullable=False, server_default="0"),
    Column("limit_cpu_s", Integer, nullable=False, server_default="0"),
    Column("limit_nofile", Integer, nullable=False, server_default="0"),
    Column("limit_nproc", Integer, nullable=False, server_default="0"),
    # Fleet services (a daemon rule with a strategy keeps process_num instances in total):
    # at most this many on one agent (0 = no cap); and, for "at most N", how long an agent
    # cut off from every center keeps them before it stops them itself (0 = keep running).
    Column("max_per_agent", Integer, nullable=False, server_default="0"),
    Column("partition_stop_s", Integer, nullable=False, server_default="0"),
    *_calendar_columns(),
    # A deterministic offset in [0, jitter_s) per fire, from the rule id and the fire time.
    Column("jitter_s", Integer, nullable=False, server_default="0"),
    *_times(),
    # Shared limits and parameters: the group's concurrency keys (comma-separated names) each
    # run holds while it goes on, and whether run now may add params and env overrides.
    Column("concurrency_keys", String(500), nullable=False, server_default=""),
    Column("allow_params", SmallInteger, nullable=False, server_default="0"),
    Index("ix_crontab_update_time", "update_time"),
    sqlite_autoincrement=True,
    **MYSQL_OPTIONS,
)

# Every saved version of a rule: all its columns and targets as JSON (`content`), numbered per
# rule from 1, with who saved it (user_id 0 for a tool: `username` "import", "migration"; `via`
# says how: "" a page, "api token <prefix>"), when and a short summary of what changed.
crontab_version = Table(
    "crontab_version",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("task_id", Integer, nullable=False),
    Column("version", Integer, nullable=False),
    Column("user_id", Integer, nullable=False, server_default="0"),
    Column("username", String(64), nullable=False, server_default=""),
    Column("via", String(64), nullable=False, server_default=""),
    Column("at_us", BigInteger, nullable=False),
    Column("summary", String(255), nullable=False, server_default=""),
    Column("content", LongText, nullable=False),
    UniqueConstraint("task_id", "version"),
    **MYSQL_OPTIONS,
)

crontab_agent = Table(
    "crontab_agent",
    metadata,
    Column("task_id", Integer, nullable=False),
    Column("aid", Integer, nullable=False, index=True),
    PrimaryKeyConstraint("task_id", "aid"),
    **MYSQL_OPTIONS,
)

# A rule's runs in scheduled order: its name is what MySQL index hints need (the convention's).
RULE_RUNS_INDEX = "uq_task_process_task_id_sched_us_aid_attempt_instance"

# One row per run on one agent. status: see protocol/statuses.py.
task_process = Table(
    "task_process",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("task_id", Integer, nullable=False),
    Column("runid", String(64), nullable=False, unique=True),
    Column("aid", Integer, nullable=False, server_default="0"),
    Column("pid", Integer, nullable=False, server_default="0"),
    Column("start", BigInteger, nullable=False, server_default="0"),
    Column("end", BigInteger, nullable=False, server_default="0"),
    Column("code", Integer, nullable=True),
    Column("signal", Integer, nullable=True),
    Column("status", String(16), nullable=False),
    Column("result", LongText, nullable=True),
    Column("sched_us", BigInteger, nullable=False),
    # When to send it, if later than sched_us (a retry after its backoff); 0 = at sched_us.
    Column("due_us", BigInteger, nullable=False, server_default="0"),
    Column("attempt", Integer, nullable=False, server_default="0"),
    Column("instance", Integer, nullable=False, server_default="0"),
    Column("trigger", String(16), nullable=False, server_default="schedule"),
    Column("first_runid", String(64), nullable=False, server_default=""),
    Column("parent_runid", String(64), nullable=False, server_default=""),
    Column("flow_runid", String(64), nullable=False, server_default=""),
    Column("run_user", String(64), nullable=False, server_default=""),
    Column("uid", Integer, nullable=False, server_default="-1"),
    Column("gid", Integer, nullable=False, server_default="-1"),
    Column("output_bytes", BigInteger, nullable=False, server_default="0"),
    Column("truncated", SmallInteger, nullable=False, server_default="0"),
    Column("reason", String(500), nullable=False, server_default=""),
    Column("epoch", BigInteger, nullable=False, server_default="0"),
    Column("created_us", BigInteger, nullable=False, server_default="0"),
    Column("updated_us", BigInteger, nullable=False, server_default="0"),
    # A manual run's arguments appended to the command, and its env overrides (a JSON object);
    # NULL for any other run.
    Column("params", Text, nullable=True),
    Column("env_override", Text, nullable=True),
    # DESIGN's key (task, scheduled time, agent, attempt), plus the instance: a daemon's
    # instances and a sharded rule's shards may share an agent and a start time.
    UniqueConstraint("task_id", "sched_us", "aid", "attempt", "instance", name=RULE_RUNS_INDEX),
    Index("ix_task_process_status_sched_us", "status", "sched_us"),
    Index("ix_task_process_aid_status", "aid", "status"),
    Index("ix_task_process_sched_us", "sched_us"),
    Index("ix_task_process_flow_runid", "flow_runid"),
    # The runs list filtered by rule and status ("the failed runs of this rule").
    Index("ix_task_process_task_id_status", "task_id", "status"),
    **MYSQL_OPTIONS,
)

# Live output chunks, for tailing a run while it goes on; the final result is in task_process.
task_output = Table(
    "task_output",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("runid", String(64), nullable=False),
    Column("offset", BigInteger, nullable=False),
    Column("data", Blob, nullable=False),
    Column("created_us", BigInteger, nullable=False),
    Index("ix_task_output_runid_offset", "runid", "offset"),
    **MYSQL_OPTIONS,
)

# The leader lease: one row; `epoch` only grows; `planned_through_us` is the planning cursor.
leader_lease = Table(
    "leader_lease",
    metadata,
    Column("name", String(32), primary_key=True),
    Column("holder", String(128), nullable=False, server_default=""),
    Column("epoch", BigInteger, nullable=False, server_default="0"),
    Column("expires_us", BigInteger, nullable=False, server_default="0"),
    Column("planned_through_us", BigInteger, nullable=False, server_default="0"),
    Column("updated_us", BigInteger, nullable=False, server_default="0"),
    **MYSQL_OPTIONS,
)

# What the admin asks of the live system; the leader carries it out. status: pending/done/failed.
center_command = Table(
    "center_command",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("kind", String(16), nullable=False),
    Column("task_id", Integer, nullable=False, server_default="0"),
    Column("runid", String(64), nullable=False, server_default=""),
    Column("aid", Integer, nullable=False, server_default="0"),
    Column("user_id", Integer, nullable=False, server_default="0"),
    Column("status", String(16), nullable=False, server_default="pending"),
    Column("result", String(500), nullable=False, server_default=""),
    # What else the command needs, as a JSON object (a workflow run's trigger, params, env).
    Column("args", Text, nullable=False, server_default="{}"),
    Column("created_us", BigInteger, nullable=False),
    Column("done_us", BigInteger, nullable=False, server_default="0"),
    Index("ix_center_command_status_id", "status", "id"),
    **MYSQL_OPTIONS,
)

# What each agent reports of each daemon rule it keeps running.
daemon_state = Table(
    "daemon_state",
    metadata,
    Column("task_id", Integer, nullable=False),
    Column("aid", Integer, nullable=False),
    Column("wanted", Integer, nullable=False, server_default="0"),
    Column("running", Integer, nullable=False, server_default="0"),
    Column("crash_looping", SmallInteger, nullable=False, server_default="0"),
    Column("last_exit", String(500), nullable=False, server_default=""),
    Column("updated_us", BigInteger, nullable=False, server_default="0"),
    PrimaryKeyConstraint("task_id", "aid"),
    **MYSQL_OPTIONS,
)

# ---------------------------------------------------------------- the admin's own tables

# People who use the admin. Names are lower case; status: 1 active, 0 disabled. `source` is
# local, oidc or ldap; an external user has no password ("") and is found by its subject
# (the OIDC `sub`, the LDAP DN). TOTP is for local accounts: the secret is stored encrypted.
admin_user = Table(
    "admin_user",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("name", String(64), nullable=False, unique=True),
    Column("password_hash", String(255), nullable=False),
    Column("superadmin", SmallInteger, nullable=False, server_default="0"),
    Column("status", SmallInteger, nullable=False, server_default="1"),
    *_times(),
    Column("source", String(8), nullable=False, server_default="local"),
    Column("external_subject", String(255), nullable=True),
    Column("totp_secret", String(255), nullable=False, server_default=""),
    Column("totp_required", SmallInteger, nullable=False, server_default="0"),
    Column("totp_last_step", BigInteger, nullable=False, server_default="0"),
    # What the user chose on their account page ("": Accept-Language, then the admin default).
    Column("language", String(8), nullable=False, server_default=""),
    Column("timezone", String(64), nullable=False, server_default=""),
    UniqueConstraint("source", "external_subject", name="uq_admin_user_external"),
    sqlite_autoincrement=True,
    **MYSQL_OPTIONS,
)

# One role per (user, group): viewer, operator or admin.
admin_grant = Table(
    "admin_grant",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("user_id", Integer, nullable=False),
    Column("gid", Integer, nullable=False, index=True),
    Column("role", String(16), nullable=False),
    *_times(),
    UniqueConstraint("user_id", "gid"),
    **MYSQL_OPTIONS,
)

# Logged-in browsers. Only the SHA-256 of the cookie's random id is stored.
admin_session = Table(
    "admin_session",
    metadata,
    Column("id_hash", String(64), primary_key=True),
    Column("user_id", Integer, nullable=False, index=True),
    Column("csrf", String(64), nullable=False),
    Column("client", String(64), nullable=False, server_default=""),
    Column("created_us", BigInteger, nullable=False),
    Column("seen_us", BigInteger, nullable=False),
    Column("expires_us", BigInteger, nullable=False, index=True),
    # "" a full session; "totp" and "enrol" are half-way through a login (no page but that).
    Column("stage", String(8), nullable=False, server_default=""),
    **MYSQL_OPTIONS,
)

# Bearer tokens of the API. Only the SHA-256 of the token is stored; `prefix` identifies it.
api_token = Table(
    "api_token",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("user_id", Integer, nullable=False, index=True),
    Column("name", String(64), nullable=False, server_default=""),
    Column("token_hash", String(64), nullable=False, unique=True),
    Column("prefix", String(16), nullable=False),
    Column("created_us", BigInteger, nullable=False),
    Column("last_used_us", BigInteger, nullable=False, server_default="0"),
    Column("expires_us", BigInteger, nullable=False, server_default="0"),
    Column("revoked_us", BigInteger, nullable=False, server_default="0"),
    sqlite_autoincrement=True,
    **MYSQL_OPTIONS,
)

# Who changed what, when, from where: before/after are JSON objects ("" when none).
audit_log = Table(
    "audit_log",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("at_us", BigInteger, nullable=False, index=True),
    Column("user_id", Integer, nullable=False, server_default="0"),
    Column("username", String(64), nullable=False, server_default=""),
    Column("action", String(32), nullable=False),
    Column("object_type", String(16), nullable=False),
    Column("object_id", String(64), nullable=False, server_default=""),
    Column("gid", Integer, nullable=True, index=True),
    Column("before_json", LongText, nullable=False),
    Column("after_json", LongText, nullable=False),
    Column("client", String(64), nullable=False, server_default=""),
    Index("ix_audit_log_object_type_object_id", "object_type", "object_id"),
    **MYSQL_OPTIONS,
)

# Failed logins per throttle_key ("user:<name>", "addr:<client>"), for backoff.
login_throttle = Table(
    "login_throttle",
    metadata,
    Column("throttle_key", String(160), primary_key=True),
    Column("failures", Integer, nullable=False, server_default="0"),
    Column("last_us", BigInteger, nullable=False, server_default="0"),
    Column("blocked_until_us", BigInteger, nullable=False, server_default="0"),
    **MYSQL_OPTIONS,
)

# ---------------------------------------------------------------- operations (issue 8)

# Where a group's alerts go. kind: `webhook` (target: the URL; the body is signed with `secret`),
# `email` (target: comma-separated addresses), or a chat robot: `dingtalk`, `wecom`, `feishu`,
# `slack` (target: the robot's webhook URL; secret: the platform's signing secret, DingTalk and
# Feishu only; mentions: whom DingTalk and WeCom robots @, a comma list of phone numbers, user
# ids or `all`). events: comma list of center.alerts events.
# throttle_s: at most one alert per (channel, subject, event) in that window; grace_s: how long
# after a fire a rule may take to start before "did not start". status: 1 on, 0 off.
alert_channel = Table(
    "alert_channel",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("gid", Integer, nullable=False, index=True),
    Column("name", String(64), nullable=False),
    Column("kind", String(16), nullable=False),
    Column("target", String(1000), nullable=False),
    Column("secret", String(128), nullable=False, server_default=""),
    Column("mentions", String(500), nullable=False, server_default=""),
    # The language of its messages (en, zh-CN); "" the center's alert_language.
    Column("language", String(8), nullable=False, server_default=""),
    Column("events", String(255), nullable=False),
    Column("throttle_s", Integer, nullable=False, server_default="3600"),
    Column("grace_s", Integer, nullable=False, server_default="60"),
    Column("status", SmallInteger, nullable=False, server_default="1"),
    *_times(),
    UniqueConstraint("gid", "name"),
    sqlite_autoincrement=True,
    **MYSQL_OPTIONS,
)

# What the leader remembers per (channel, event, subject) so that a new leader neither
# resends nor forgets: whether the condition is open, the last occurrence seen (`last_key`:
# a runid, a fire time), when an alert was last sent and how many were suppressed since.
alert_state = Table(
    "alert_state",
    metadata,
    Column("channel_id", Integer, nullable=False),
    Column("event", String(32), nullable=False),
    Column("subject", String(64), nullable=False),
    Column("is_open", SmallInteger, nullable=False, server_default="0"),
    Column("alerted", SmallInteger, nullable=False, server_default="0"),
    Column("last_key", String(64), nullable=False, server_default=""),
    Column("last_sent_us", BigInteger, nullable=False, server_default="0"),
    Column("suppressed", Integer, nullable=False, server_default="0"),
    Column("opened_us", BigInteger, nullable=False, server_default="0"),
    Column("updated_us", BigInteger, nullable=False, server_default="0"),
    PrimaryKeyConstraint("channel_id", "event", "subject"),
    **MYSQL_OPTIONS,
)

# The alerts' outbox: written with the state change, sent by the leader, kept as a history.
# kind: alert, recovery or test; status: pending, sent or failed (gave up after retries).
alert_notification = Table(
    "alert_notification",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("channel_id", Integer, nullable=False, index=True),
    Column("event", String(32), nullable=False),
    Column("subject", String(64), nullable=False, server_default=""),
    Column("kind", String(16), nullable=False),
    Column("payload", LongText, nullable=False),
    Column("status", String(16), nullable=False, server_default="pending"),
    Column("attempts", Integer, nullable=False, server_default="0"),
    Column("next_try_us", BigInteger, nullable=False, server_default="0"),
    Column("created_us", BigInteger, nullable=False),
    Column("sent_us", BigInteger, nullable=False, server_default="0"),
    Column("error", String(500), nullable=False, server_default=""),
    Index("ix_alert_notification_status_next_try_us", "status", "next_try_us"),
    **MYSQL_OPTIONS,
)

# Named positions of the leader's background scans (the alerts' scan of finished runs).
ops_cursor = Table(
    "ops_cursor",
    metadata,
    Column("name", String(32), primary_key=True),
    Column("value", BigInteger, nullable=False, server_default="0"),
    Column("updated_us", BigInteger, nullable=False, server_default="0"),
    **MYSQL_OPTIONS,
)

# `unitedcron import-united-cron`: which row of which original database became which row here,
# and a hash of the original row as last imported (a second import of the same rows is a no-op).
import_map = Table(
    "import_map",
    metadata,
    Column("source", String(64), nullable=False),
    Column("orig_table", String(32), nullable=False),
    Column("orig_id", String(64), nullable=False),
    Column("new_id", Integer, nullable=False),
    Column("orig_hash", String(64), nullable=False),
    Column("imported_us", BigInteger, nullable=False),
    PrimaryKeyConstraint("source", "orig_table", "orig_id"),
    **MYSQL_OPTIONS,
)

# Fleet services: where each instance of a placed daemon rule runs (aid 0: unplaced, `reason`
# says why), since when, and the leader epoch that placed it.
daemon_placement = Table(
    "daemon_placement",
    metadata,
    Column("task_id", Integer, nullable=False),
    Column("instance", Integer, nullable=False),
    Column("aid", Integer, nullable=False, server_default="0"),
    Column("reason", String(200), nullable=False, server_default=""),
    Column("since_us", BigInteger, nullable=False, server_default="0"),
    Column("epoch", BigInteger, nullable=False, server_default="0"),
    PrimaryKeyConstraint("task_id", "instance"),
    Index("ix_daemon_placement_aid", "aid"),
    **MYSQL_OPTIONS,
)

# The cluster's CAs (built-in PKI). Every center can sign, so the key is here, sealed with
# AES-GCM under a key derived from the cluster secret (`seal_id` says which secret).
# state: active (signs agents), retiring (trusted; signs centers) or retired (no longer trusted).
cluster_ca = Table(
    "cluster_ca",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("state", String(16), nullable=False),
    Column("cert_pem", Text, nullable=False),
    Column("key_sealed", Text, nullable=False),
    Column("key_id", String(64), nullable=False, unique=True),
    Column("not_after", BigInteger, nullable=False),
    *_times(),
    sqlite_autoincrement=True,
    **MYSQL_OPTIONS,
)

# Certificates no center accepts any more (their agent was deleted), by serial (hex).
cert_revoked = Table(
    "cert_revoked",
    metadata,
    Column("serial", String(40), primary_key=True),
    Column("aid", Integer, nullable=False),
    Column("reason", String(200), nullable=False, server_default=""),
    Column("not_after", BigInteger, nullable=False, server_default="0"),
    Column("create_time", BigInteger, nullable=False, server_default="0"),
    **MYSQL_OPTIONS,
)

# The alerts' scan of finished runs reads task_process by updated_us (a short, recent range).
Index("ix_task_process_updated_us", task_process.c.updated_us)

# ---------------------------------------------------------------- workflows

# A named DAG of rules of one group, with its own schedule ("" = started by hand only).
workflow = Table(
    "workflow",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("gid", Integer, nullable=False, index=True),
    Column("name", String(128), nullable=False),
    Column("rule", String(128), nullable=False, server_default=""),
    Column("timezone", String(64), nullable=False, server_default="UTC"),
    Column("status", SmallInteger, nullable=False, server_default="1"),  # RuleStatus
    Column("overlap", String(16), nullable=False, server_default="skip"),  # skip|queue|parallel
    Column("misfire", String(8), nullable=False, server_default="skip"),
    Column("misfire_window_s", Integer, nullable=False, server_default="3600"),
    Column("description", String(500), nullable=False, server_default=""),
    Column("error", String(500), nullable=False, server_default=""),
    *_calendar_columns(),
    *_times(),
    Index("ix_workflow_update_time", "update_time"),
    sqlite_autoincrement=True,
    **MYSQL_OPTIONS,
)

# The rules of a workflow; `join` = all | any (FlowJoin): when a node with parents starts.
workflow_node = Table(
    "workflow_node",
    metadata,
    Column("workflow_id", Integer, nullable=False),
    Column("task_id", Integer, nullable=False, index=True),
    Column("join", String(8), nullable=False, server_default="all"),
    PrimaryKeyConstraint("workflow_id", "task_id"),
    **MYSQL_OPTIONS,
)

# `when` = success | failure | always (DependsWhen): the parent's end that lets the child go.
workflow_edge = Table(
    "workflow_edge",
    metadata,
    Column("workflow_id", Integer, nullable=False),
    Column("parent_task_id", Integer, nullable=False),
    Column("child_task_id", Integer, nullable=False),
    Column("when", String(8), nullable=False, server_default="success"),
    PrimaryKeyConstraint("workflow_id", "parent_task_id", "child_task_id"),
    **MYSQL_OPTIONS,
)

# One start of a workflow; its id ("f<workflow>-<sched_us>") is the same whoever starts it.
workflow_run = Table(
    "workflow_run",
    metadata,
    Column("id", String(64), primary_key=True),
    Column("workflow_id", Integer, nullable=False),
    Column("sched_us", BigInteger, nullable=False),
    Column("trigger", String(16), nullable=False, server_default="schedule"),
    Column("status", String(16), nullable=False, server_default="running"),  # FlowStatus
    Column("reason", String(500), nullable=False, server_default=""),
    # Re-runs from a node: JSON {task_id: generation}; runs of older generations are history.
    Column("reruns", Text, nullable=False, server_default="{}"),
    # A run now's extras, given to the nodes whose rule allows parameters (allow_params).
    Column("params", Text, nullable=False, server_default=""),
    Column("env", Text, nullable=False, server_default=""),
    Column("user_id", Integer, nullable=False, server_default="0"),
    Column("epoch", BigInteger, nullable=False, server_default="0"),
    Column("created_us", BigInteger, nullable=False, server_default="0"),
    Column("updated_us", BigInteger, nullable=False, server_default="0"),
    Column("end_us", BigInteger, nullable=False, server_default="0"),
    Index("ix_workflow_run_workflow_id_sched_us", "workflow_id", "sched_us"),
    Index("ix_workflow_run_status", "status"),
    **MYSQL_OPTIONS,
)

# ---------------------------------------------------------------- calendars

# A group's named calendar: the dates of `base` (a built-in: weekdays, cn-workdays,
# cn-holidays; "" = none), plus `include`, less `exclude` (dates and ranges a..b, one a line).
calendar = Table(
    "calendar",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("gid", Integer, nullable=False),
    Column("name", String(64), nullable=False),
    Column("description", String(255), nullable=False, server_default=""),
    Column("base", String(16), nullable=False, server_default=""),
    Column("include", Text, nullable=False, server_default=""),
    Column("exclude", Text, nullable=False, server_default=""),
    *_times(),
    UniqueConstraint("gid", "name"),
    sqlite_autoincrement=True,
    **MYSQL_OPTIONS,
)

# ---------------------------------------------------------------- shared limits

# A group's named limit: at most `limit` runs of the rules that hold `key` go on at once,
# counted over every agent.
concurrency_key = Table(
    "concurrency_key",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("gid", Integer, nullable=False),
    Column("key", String(64), nullable=False),
    Column("limit", Integer, nullable=False, server_default="1"),
    Column("description", String(255), nullable=False, server_default=""),
    *_times(),
    UniqueConstraint("gid", "key"),
    sqlite_autoincrement=True,
    **MYSQL_OPTIONS,
)

# ---------------------------------------------------------------- statistics (issue 17)

# Per rule per hour of scheduled time (hour_us: the hour's first µs): runs that ended in each
# final status (n_<status>), and of the runs that started, durations and start lateness in ms
# as count, sum, max and a histogram in center.rollup's log buckets ("bucket:count,…").
# Kept by the center in the transaction that moves runs to a final status; kept longer than
# the runs (UNITEDCRON_CENTER_ROLLUP_KEEP_DAYS).
run_rollup = Table(
    "run_rollup",
    metadata,
    Column("task_id", Integer, nullable=False),
    Column("hour_us", BigInteger, nullable=False),
    *(
        Column(f"n_{s}", Integer, nullable=False, server_default="0")
        for s in ("success", "failed", "timeout", "killed", "lost", "missed", "skipped")
    ),
    *(
        column
        for figure in ("dur", "late")
        for column in (
            Column(f"{figure}_n", Integer, nullable=False, server_default="0"),
            Column(f"{figure}_sum_ms", BigInteger, nullable=False, server_default="0"),
            Column(f"{figure}_max_ms", BigInteger, nullable=False, server_default="0"),
            Column(f"{figure}_hist", String(700), nullable=False, server_default=""),
        )
    ),
    Column("updated_us", BigInteger, nullable=False, server_default="0"),
    PrimaryKeyConstraint("task_id", "hour_us"),
    Index("ix_run_rollup_hour_us", "hour_us"),
    **MYSQL_OPTIONS,
)
