"""LDAP bind login with ldap3: find the user's DN, bind as them, read their groups (blocking)."""

from __future__ import annotations

import math
from dataclasses import dataclass

import ldap3
from ldap3.core.exceptions import LDAPException

from admin.sso import ldap_names

# ldap3 is synchronous: the service layer calls authenticate() in a worker thread.


@dataclass(frozen=True, slots=True)
class LdapSettings:
    """Where and how to bind; built from the admin_ldap_* settings."""

    url: str
    user_dn_template: str = ""
    bind_dn: str = ""
    bind_password: str = ""
    user_base: str = ""
    user_filter: str = "(uid={name})"
    group_base: str = ""
    group_filter: str = "(member={dn})"
    group_attribute: str = "cn"
    timeout_s: float = 5.0


@dataclass(frozen=True, slots=True)
class DirectoryUser:
    """A user the directory vouched for: their DN (the subject) and their groups, each both
    by name (`group_attribute`) and by DN."""

    dn: str
    groups: frozenset[str]


class LdapUnavailable(Exception):
    """The directory could not be asked (down, refused the service bind, timed out)."""


def authenticate(s: LdapSettings, name: str, password: str) -> DirectoryUser | None:
    """The user if `password` binds as `name`; None for a wrong name or password. `name` must
    have passed ldap_names.is_injection() already (it is escaped here all the same)."""
    if not password:
        # An empty password makes a simple bind "unauthenticated" (RFC 4513 5.1.2): many
        # servers answer success without checking anything.
        return None
    server = ldap3.Server(s.url, connect_timeout=s.timeout_s, get_info=ldap3.NONE)
    try:
        dn = _user_dn(server, s, name)
        if dn is None:
            return None
        user = _connection(server, s, dn, password)
        try:  # unbind closes the socket, also after a refused bind
            if not user.bind():
                return None
            return DirectoryUser(dn, _groups(server, s, user, dn, name))
        finally:
            user.unbind()
    except LDAPException as exc:
        raise LdapUnavailable(f"{type(exc).__name__}: {exc}") from exc


def _connection(server: ldap3.Server, s: LdapSettings, dn: str, password: str) -> ldap3.Connection:
    # ldap3 packs the receive timeout into SO_RCVTIMEO as whole seconds: an int, or struct fails.
    timeout = max(1, math.ceil(s.timeout_s))
    return ldap3.Connection(
        server, dn or None, password or None, receive_timeout=timeout, raise_exceptions=False
    )


def _service(server: ldap3.Server, s: LdapSettings) -> ldap3.Connection:
    """Bound as the service account (or anonymously); LdapUnavailable if that fails."""
    conn = _connection(server, s, s.bind_dn, s.bind_password)
    if not conn.bind():
        conn.unbind()
        raise LdapUnavailable(f"the service bind failed: {conn.result.get('description')}")
    return conn


def _user_dn(server: ldap3.Server, s: LdapSettings, name: str) -> str | None:
    """The DN to bind as: from the template, or the one entry the user search finds."""
    if s.user_dn_template:
        return ldap_names.user_dn(s.user_dn_template, name)
    conn = _service(server, s)
    try:
        query = ldap_names.user_filter(s.user_filter, name)
        conn.search(s.user_base, query, ldap3.SUBTREE, attributes=[], size_limit=2)
        entries = [e for e in conn.response or [] if e.get("type") == "searchResEntry"]
        return str(entries[0]["dn"]) if len(entries) == 1 else None
    finally:
        conn.unbind()


def _groups(
    server: ldap3.Server, s: LdapSettings, user: ldap3.Connection, dn: str, name: str
) -> frozenset[str]:
    """The user's groups, searched as the service account when there is one, else as the user."""
    if not s.group_base:
        return frozenset()
    conn = _service(server, s) if s.bind_dn else user
    try:
        query = ldap_names.group_filter(s.group_filter, dn, name)
        conn.search(s.group_base, query, ldap3.SUBTREE, attributes=[s.group_attribute])
        found: set[str] = set()
        for entry in conn.response or []:
            if entry.get("type") != "searchResEntry":
                continue
            found.add(str(entry["dn"]))
            values = entry.get("attributes", {}).get(s.group_attribute, [])
            found.update(str(v) for v in (values if isinstance(values, list) else [values]))
        return frozenset(found)
    finally:
        if conn is not user:
            conn.unbind()
