"""The center's one frozen config, built at start from flags, env and an optional TOML file."""

from __future__ import annotations

import os
import socket
from pathlib import Path

from pydantic import Field, field_validator, model_validator
from pydantic_settings import SettingsConfigDict

from center.alerts.targets import Network, check_networks, parse_networks
from i18n.languages import Language
from protocol.framing import MAX_FRAME_BYTES
from protocol.settings import (
    HostPort,
    HostPortField,
    OptionalHostPortField,
    ProcessSettings,
    SecretsField,
)
from protocol.tls import TlsFiles, tls_files
from protocol.vocabulary import TlsMode

DEFAULT_DB_URL = "sqlite+aiosqlite:///./unitedcron.db"


def _default_name() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


class DbConfig(ProcessSettings):
    """Settings of the commands that only need the database (`db upgrade`, `runs`)."""

    # These commands are pointed at a center's or admin's config file: other keys are fine.
    model_config = SettingsConfigDict(extra="ignore")

    db_url: str = DEFAULT_DB_URL

    @field_validator("db_url")
    @classmethod
    def _db_url_scheme(cls, value: str) -> str:
        return check_db_url(value)


class PkiConfig(DbConfig):
    """Settings of `pki` and `db upgrade`: the database, and the cluster secret that seals
    the CA's key (optional for `db upgrade`, which then leaves the CA to the first center)."""

    secret: SecretsField | None = Field(default=None, repr=False)
    center_name: str = Field(default_factory=_default_name)


def check_db_url(value: str) -> str:
    if not value.startswith(("sqlite+aiosqlite://", "mysql+aiomysql://")):
        raise ValueError("must start with sqlite+aiosqlite:// or mysql+aiomysql://")
    return value


class CenterConfig(ProcessSettings):
    """Settings of `unitedcron center`; each is also UNITEDCRON_<NAME> and a TOML key."""

    db_url: str = DEFAULT_DB_URL
    secret: SecretsField = Field(repr=False)
    center_listen: HostPortField = HostPort("0.0.0.0", 9502)
    center_name: str = Field(default_factory=_default_name)
    center_tick_ms: int = Field(default=50, ge=5, le=100)
    # Runs are written this far ahead of their time, in batches (a burst needs time to write).
    center_lookahead_ms: int = Field(default=10_000, ge=0, le=60_000)
    # Scheduled runs reach their agent this far ahead and wait there: starts on time, even
    # when thousands share a second. Must be below the lookahead.
    center_send_ahead_ms: int = Field(default=2000, ge=0, le=30_000)
    center_lease_ttl_s: float = Field(default=3.0, gt=0.5, le=60)
    center_lease_renew_s: float = Field(default=1.0, gt=0.05, le=20)
    center_rules_poll_s: float = Field(default=0.5, gt=0.01, le=10)
    center_agents_poll_s: float = Field(default=1.0, gt=0.01, le=10)
    center_ping_interval_s: float = Field(default=1.0, gt=0.05, le=30)
    center_offline_after_s: float = Field(default=2.0, gt=0.1, le=300)
    center_reconnect_max_s: float = Field(default=5.0, gt=0.05, le=300)
    center_dispatch_grace_s: float = Field(default=10.0, ge=0, le=3600)
    # A run left dispatched or running on an agent silent this long (no link, no heartbeat,
    # no registration) is recorded lost, and retried if its rule asks for at least once.
    center_lost_after_s: float = Field(default=3600.0, gt=0, le=30 * 86400)
    center_max_frame_bytes: int = Field(default=MAX_FRAME_BYTES, ge=1024, le=64 << 20)
    # Live output taken from one agent: this many bytes a second, in bursts of up to 4 s' worth
    # (each run's also stops at its rule's output_max_bytes); the rest is dropped and counted.
    center_live_output_bytes_s: int = Field(default=1 << 20, ge=1024, le=1 << 30)
    center_uvloop: bool = True
    # Prometheus /metrics; empty turns it off. Loopback by default: figures are not public.
    center_metrics_listen: OptionalHostPortField = HostPort("127.0.0.1", 9602)
    center_grace_s: float = Field(default=10.0, ge=0, le=600)
    # Limits of the registration port: connections at once, and attempts per address.
    center_max_connections: int = Field(default=512, ge=1, le=100_000)
    center_registrations_per_minute: float = Field(default=60, ge=0, le=100_000)
    # Every link is mutual TLS 1.3 from the cluster's built-in PKI unless the operator's own
    # PEM files are given (all three), or plain text is asked for by name (a warning each start).
    insecure_plaintext: bool = False
    center_agent_cert_days: int = Field(default=90, ge=1, le=3650)
    center_tls_ca: Path | None = None
    center_tls_cert: Path | None = None
    center_tls_key: Path | None = None
    # Alerts and retention, loops of the leader (README "Operations").
    center_alerts_poll_s: float = Field(default=5.0, gt=0.05, le=300)
    center_alert_send_timeout_s: float = Field(default=10.0, gt=0, le=120)
    center_smtp_host: str = ""  # empty: email channels fail with "no SMTP server configured"
    center_smtp_port: int = Field(default=25, ge=1, le=65535)
    center_smtp_from: str = "unitedcron@localhost"
    center_smtp_user: str = ""
    center_smtp_password: str = Field(default="", repr=False)
    center_smtp_starttls: bool = False
    # Networks (CIDRs, comma-separated) that alert webhooks may reach beyond public addresses:
    # none by default, so no loopback, private, link-local... target. Same setting as the admin's.
    alert_allowed_networks: str = ""
    # The language of alert messages (en, zh-CN) for channels that chose none.
    center_alert_language: Language = Language.EN
    center_retention_every_s: float = Field(default=300.0, gt=0.05, le=86400)
    center_retention_batch: int = Field(default=500, ge=1, le=10_000)
    center_retention_pause_s: float = Field(default=0.1, ge=0, le=10)
    center_retention_default_days: int = Field(default=30, ge=1, le=3650)
    center_output_keep_s: float = Field(default=3600.0, ge=0, le=30 * 86400)
    # Statistics' rollups outlive the runs: a year's trend after the runs are gone.
    center_rollup_keep_days: int = Field(default=400, ge=1, le=36500)

    @model_validator(mode="after")
    def _tls_complete(self) -> CenterConfig:
        files = tls_files(self.center_tls_ca, self.center_tls_cert, self.center_tls_key)
        if files and self.insecure_plaintext:
            raise ValueError("insecure_plaintext and center_tls_* exclude each other")
        if self.center_send_ahead_ms and self.center_send_ahead_ms >= self.center_lookahead_ms:
            raise ValueError("center_send_ahead_ms must be below center_lookahead_ms")
        return self

    @property
    def tls(self) -> TlsFiles | None:
        return tls_files(self.center_tls_ca, self.center_tls_cert, self.center_tls_key)

    @property
    def tls_mode(self) -> TlsMode:
        if self.insecure_plaintext:
            return TlsMode.PLAINTEXT
        return TlsMode.FILES if self.tls else TlsMode.BUILTIN

    @field_validator("db_url")
    @classmethod
    def _db_url_scheme(cls, value: str) -> str:
        return check_db_url(value)

    @property
    def lease_ttl_us(self) -> int:
        return int(self.center_lease_ttl_s * 1e6)

    @field_validator("alert_allowed_networks")
    @classmethod
    def _networks(cls, value: str) -> str:
        return check_networks(value)

    @property
    def alert_networks(self) -> tuple[Network, ...]:
        return parse_networks(self.alert_allowed_networks)

    @property
    def lost_after_us(self) -> int:
        return int(self.center_lost_after_s * 1e6)

    @property
    def lookahead_us(self) -> int:
        return self.center_lookahead_ms * 1000

    @property
    def send_ahead_us(self) -> int:
        return self.center_send_ahead_ms * 1000
