"""Typed user names in LDAP filters and DNs: escaped always, and refused when they need it."""

from __future__ import annotations

from ldap3.utils.conv import escape_filter_chars
from ldap3.utils.dn import escape_rdn

# A user name is put in a search filter, `(uid={name})`, and in a DN, `uid={name},ou=people`.
# It is escaped there in any case. A name that escaping would change is no name anyone has
# (user names are letters, digits and `_ . @ -`): it is an injection attempt, refused as one.


def filter_value(name: str) -> str:
    """`name` as a value in a search filter (RFC 4515: `*`, `(`, `)`, `\\`, NUL escaped)."""
    return str(escape_filter_chars(name))


def dn_value(name: str) -> str:
    """`name` as an attribute value in a DN (RFC 4514: `,`, `+`, `=`, `"`, `\\`, `<`, `>`, `;`,
    a leading `#` or space, a trailing space)."""
    return str(escape_rdn(name))


def is_injection(name: str) -> bool:
    """Whether the name changes when escaped for a filter or a DN."""
    return filter_value(name) != name or dn_value(name) != name


def user_filter(template: str, name: str) -> str:
    """The user search filter, e.g. `(uid={name})`, with the name escaped."""
    return template.replace("{name}", filter_value(name))


def user_dn(template: str, name: str) -> str:
    """The user's DN from a template, e.g. `uid={name},ou=people,dc=example,dc=org`."""
    return template.replace("{name}", dn_value(name))


def group_filter(template: str, dn: str, name: str) -> str:
    """The group search filter, e.g. `(member={dn})`, with the user's DN and name escaped."""
    return template.replace("{dn}", filter_value(dn)).replace("{name}", filter_value(name))
