"""The admin's one frozen config, built at start from flags, env and an optional TOML file."""

from __future__ import annotations

from typing import Self

from pydantic import Field, SecretStr, field_validator, model_validator

from admin.sso.roles import check_role_map
from center.alerts.targets import Network, check_networks, parse_networks
from center.config import DEFAULT_DB_URL, check_db_url
from i18n.languages import Language
from i18n.zones import known_zone
from protocol.settings import HostPort, HostPortField, OptionalHostPortField, ProcessSettings

# UnitedCron group name → directory group → role (README, "Single sign-on").
RoleMapField = dict[str, dict[str, str]]


class AdminConfig(ProcessSettings):
    """Settings of `unitedcron admin`; each is also UNITEDCRON_<NAME> and a TOML key."""

    db_url: str = DEFAULT_DB_URL
    admin_listen: HostPortField = HostPort("127.0.0.1", 8080)
    # Pages and API reasons for a user who chose no language and whose browser asks for none
    # we have (en, zh-CN); times for a user who chose no time zone (an IANA name).
    admin_language: Language = Language.EN
    admin_timezone: str = "UTC"
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
    # Prometheus /metrics (refused logins); empty turns it off. Loopback: figures are not public.
    admin_metrics_listen: OptionalHostPortField = HostPort("127.0.0.1", 9603)

    # ---- single sign-on (README, "Single sign-on"); each is off while its first setting is "".
    # OpenID Connect: the issuer's URL (its /.well-known/openid-configuration is read).
    admin_oidc_issuer: str = ""
    admin_oidc_client_id: str = ""
    admin_oidc_client_secret: SecretStr = SecretStr("")
    admin_oidc_scopes: str = "openid profile email groups"
    admin_oidc_provider_name: str = Field(default="SSO", min_length=1, max_length=40)
    admin_oidc_groups_claim: str = "groups"
    admin_oidc_username_claim: str = "preferred_username"
    admin_oidc_role_map: RoleMapField = Field(default_factory=dict)
    admin_oidc_timeout_s: float = Field(default=10.0, gt=0, le=120)
    # LDAP: a simple bind as the user, found by a DN template or by a search (service bind).
    admin_ldap_url: str = ""
    admin_ldap_user_dn_template: str = ""  # e.g. uid={name},ou=people,dc=example,dc=org
    admin_ldap_bind_dn: str = ""  # the service account that searches (empty: anonymous)
    admin_ldap_bind_password: SecretStr = SecretStr("")
    admin_ldap_user_base: str = ""
    admin_ldap_user_filter: str = "(uid={name})"
    admin_ldap_group_base: str = ""  # empty: groups are not read (no roles from LDAP)
    admin_ldap_group_filter: str = "(|(member={dn})(uniqueMember={dn})(memberUid={name}))"
    admin_ldap_group_attribute: str = "cn"
    admin_ldap_role_map: RoleMapField = Field(default_factory=dict)
    admin_ldap_timeout_s: float = Field(default=5.0, gt=0, le=120)
    # TOTP secrets are stored encrypted with this key (comma-separated: the first encrypts,
    # all decrypt, for a rotation). Without one they are stored as they are: see README.
    admin_totp_key: SecretStr = SecretStr("")
    admin_totp_issuer: str = Field(default="UnitedCron", min_length=1, max_length=40)

    @field_validator("db_url")
    @classmethod
    def _db_url_scheme(cls, value: str) -> str:
        return check_db_url(value)

    @field_validator("admin_timezone")
    @classmethod
    def _zone(cls, value: str) -> str:
        if not known_zone(value):
            raise ValueError(f"unknown time zone {value!r} (an IANA name such as Asia/Shanghai)")
        return value

    @field_validator("alert_allowed_networks")
    @classmethod
    def _networks(cls, value: str) -> str:
        return check_networks(value)

    @property
    def alert_networks(self) -> tuple[Network, ...]:
        return parse_networks(self.alert_allowed_networks)

    @field_validator("admin_oidc_role_map", "admin_ldap_role_map")
    @classmethod
    def _role_map(cls, value: RoleMapField) -> RoleMapField:
        return check_role_map(value)

    @model_validator(mode="after")
    def _sso_complete(self) -> Self:
        if self.admin_oidc_issuer and not self.admin_oidc_client_id:
            raise ValueError("admin_oidc_issuer needs admin_oidc_client_id")
        if self.admin_ldap_url and not (
            self.admin_ldap_user_dn_template or self.admin_ldap_user_base
        ):
            raise ValueError("admin_ldap_url needs admin_ldap_user_dn_template or _user_base")
        if self.admin_ldap_user_dn_template and "{name}" not in self.admin_ldap_user_dn_template:
            raise ValueError("admin_ldap_user_dn_template must contain {name}")
        if "{name}" not in self.admin_ldap_user_filter:
            raise ValueError("admin_ldap_user_filter must contain {name}")
        return self

    @property
    def oidc_enabled(self) -> bool:
        return bool(self.admin_oidc_issuer)

    @property
    def ldap_enabled(self) -> bool:
        return bool(self.admin_ldap_url)
