"""The admin's one frozen config, built at start from flags, env and an optional TOML file."""

from __future__ import annotations

from pydantic import Field, field_validator

from center.alerts.targets import Network, check_networks, parse_networks
from center.config import DEFAULT_DB_URL, check_db_url
from protocol.settings import HostPort, HostPortField, ProcessSettings


class AdminConfig(ProcessSettings):
    """Settings of `unitedcron admin`; each is also UNITEDCRON_<NAME> and a TOML key."""

    db_url: str = DEFAULT_DB_URL
    admin_listen: HostPortField = HostPort("127.0.0.1", 8080)
    # Send the session cookie over HTTPS only. Off by default so that http://127.0.0.1 works;
    # turn it on behind a TLS proxy.
    admin_cookie_secure: bool = False
    # A session ends after this long without a request, and in any case after admin_session_max_s.
    admin_session_idle_s: int = Field(default=8 * 3600, ge=60, le=30 * 86400)
    admin_session_max_s: int = Field(default=7 * 86400, ge=60, le=365 * 86400)
    # Failed logins allowed before backoff starts: per username, and per client address.
    admin_login_free_failures: int = Field(default=5, ge=1, le=1000)
    admin_login_addr_free_failures: int = Field(default=20, ge=1, le=100_000)
    # Backoff after the free failures: doubles from base up to max; forgotten after quiet time.
    admin_login_backoff_s: float = Field(default=1.0, gt=0, le=3600)
    admin_login_backoff_max_s: float = Field(default=900.0, gt=0, le=86400)
    admin_login_forget_s: float = Field(default=3600.0, gt=0, le=30 * 86400)
    # API tokens expire after this many days (0: never), unless the request asks for less.
    admin_token_days: int = Field(default=90, ge=0, le=3650)
    # How often a live run's page looks for new output.
    # Request bodies above this are refused (413) before they are read in full.
    admin_max_body_bytes: int = Field(default=1 << 20, ge=1024, le=1 << 30)
    # Proxies whose X-Forwarded-For/-Proto are believed (comma-separated addresses); none by
    # default: the peer's own address is the client's, whoever connects from this host.
    admin_trusted_proxies: str = ""
    admin_tail_poll_s: float = Field(default=0.5, gt=0.01, le=10)
    # Networks (CIDRs) alert webhooks may target beyond public addresses; the center's setting
    # of the same name decides at send time, this one at save time: give both the same value.
    alert_allowed_networks: str = ""

    @field_validator("db_url")
    @classmethod
    def _db_url_scheme(cls, value: str) -> str:
        return check_db_url(value)

    @field_validator("alert_allowed_networks")
    @classmethod
    def _networks(cls, value: str) -> str:
        return check_networks(value)

    @property
    def alert_networks(self) -> tuple[Network, ...]:
        return parse_networks(self.alert_allowed_networks)
