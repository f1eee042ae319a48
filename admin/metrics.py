"""The admin's Prometheus metrics, one registry per app (tests build several in one process)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter

# Methods of `unitedcron_admin_login_refused_total`: which step of a login said no.
LOCAL, LDAP, OIDC, TOTP = "local", "ldap", "oidc", "totp"


class AdminMetrics:
    """What an operator graphs and alerts on: refused logins, by method and reason."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.login_refused = Counter(
            "unitedcron_admin_login_refused",
            "Logins refused, by method (local, ldap, oidc, totp) and reason "
            "(wrong_password, throttled, ldap_injection, state_mismatch, nonce_mismatch, …).",
            ["method", "reason"],
            registry=self.registry,
        )

    def refused(self, method: str, reason: str) -> float:
        """The count so far (tests read it)."""
        value = self.registry.get_sample_value(
            "unitedcron_admin_login_refused_total", {"method": method, "reason": reason}
        )
        return value or 0.0
