"""Pure parts of SSO, table-driven: role mapping, grant changes, LDAP escaping, TOTP codes."""

from __future__ import annotations

import pyotp
import pytest

from admin import totp
from admin.sso import ldap_names
from admin.sso.roles import check_role_map, claim_groups, grant_changes, mapped_roles

MAP = {
    "alpha": {"ops": "operator", "leads": "admin", "cn=ro,ou=groups": "viewer"},
    "beta": {"ops": "viewer"},
    "gamma": {},
}


@pytest.mark.parametrize(
    ("groups", "expected"),
    [
        ([], {}),
        (["ops"], {"alpha": "operator", "beta": "viewer"}),
        (["ops", "leads"], {"alpha": "admin", "beta": "viewer"}),  # the highest role wins
        (["leads", "ops"], {"alpha": "admin", "beta": "viewer"}),  # whatever the order
        (["OPS"], {"alpha": "operator", "beta": "viewer"}),  # case does not matter
        (["CN=RO,OU=Groups"], {"alpha": "viewer"}),  # a DN as the directory group
        (["ops-team"], {}),  # no partial matches
        (["unknown"], {}),
    ],
)
def test_mapped_roles(groups: list[str], expected: dict[str, str]):
    """A user's directory groups give, per UnitedCron group, the highest mapped role."""
    assert mapped_roles(MAP, groups) == expected


@pytest.mark.parametrize(
    ("current", "wanted", "put", "remove"),
    [
        ({}, {}, {}, set()),
        ({}, {1: "viewer"}, {1: "viewer"}, set()),
        ({1: "viewer"}, {1: "viewer"}, {}, set()),
        ({1: "viewer"}, {1: "admin"}, {1: "admin"}, set()),
        ({1: "viewer", 2: "admin"}, {1: "viewer"}, {}, {2}),  # the map no longer gives it
        ({1: "viewer"}, {}, {}, {1}),
    ],
)
def test_grant_changes(current, wanted, put, remove):
    """An external user's grants become exactly the mapped ones."""
    assert grant_changes(current, wanted) == (put, frozenset(remove))


@pytest.mark.parametrize(
    ("raw", "error"),
    [
        ({"alpha": {"ops": "root"}}, "role 'root'"),
        ({"alpha": {"ops": "Admin"}}, "role 'Admin'"),
        ({"alpha": "admin"}, "give an object"),
    ],
)
def test_bad_role_maps(raw, error: str):
    with pytest.raises(ValueError, match=error):
        check_role_map(raw)


@pytest.mark.parametrize(
    ("claim", "groups"),
    [(None, []), ("ops", ["ops"]), ("", []), (["a", "b"], ["a", "b"]), ([1, {"x": 1}], ["1"])],
)
def test_claim_groups(claim: object, groups: list[str]):
    assert claim_groups(claim) == groups


@pytest.mark.parametrize(
    ("name", "in_filter", "in_dn", "injection"),
    [
        ("alice", "alice", "alice", False),
        ("j.doe@example.org", "j.doe@example.org", "j.doe@example.org", False),
        ("*)(uid=*", "\\2a\\29\\28uid=\\2a", "*)(uid\\=*", True),
        ("*", "\\2a", "*", True),
        ("a\\b", "a\\5cb", "a\\\\b", True),
        ("admin)(|(objectClass=*", "admin\\29\\28|\\28objectClass=\\2a", None, True),
        ("bob,ou=admins", "bob,ou=admins", "bob\\,ou\\=admins", True),
        ("x+cn=y", "x+cn=y", "x\\+cn\\=y", True),
        (" lead", " lead", "\\ lead", True),
        ("#hash", "#hash", "\\#hash", True),
    ],
)
def test_ldap_escaping(name: str, in_filter: str, in_dn: str | None, injection: bool):
    """Names are escaped for filters (RFC 4515) and DNs (RFC 4514); any name that escaping
    changes is refused as an injection attempt."""
    assert ldap_names.filter_value(name) == in_filter
    if in_dn is not None:
        assert ldap_names.dn_value(name) == in_dn
    assert ldap_names.is_injection(name) is injection
    assert ldap_names.user_filter("(uid={name})", name) == f"(uid={in_filter})"


def test_group_filter_escapes_the_dn():
    dn = "uid=a*b,ou=people,dc=x"
    assert ldap_names.group_filter("(member={dn})", dn, "a") == "(member=uid=a\\2ab,ou=people,dc=x)"


SECRET = "JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP"
NOW_S = 1_700_000_000.0
STEP = int(NOW_S) // 30


@pytest.mark.parametrize(
    ("offset_steps", "last_step", "accepted"),
    [
        (0, 0, STEP),
        (-1, 0, STEP - 1),  # a phone clock a little behind
        (1, 0, STEP + 1),  # or ahead
        (-2, 0, None),  # too old
        (2, 0, None),  # too far ahead
        (0, STEP, None),  # this step's code was used already
        (1, STEP, STEP + 1),
    ],
)
def test_totp_steps(offset_steps: int, last_step: int, accepted: int | None):
    """A code is accepted one step either side of now, and only for a step after the last
    one used."""
    code = pyotp.TOTP(SECRET).at(NOW_S + 30 * offset_steps)
    assert totp.accepted_step(SECRET, code, NOW_S, last_step) == accepted


@pytest.mark.parametrize("code", ["", "12345", "1234567", "abcdef", "12 34 5"])
def test_malformed_codes(code: str):
    assert totp.accepted_step(SECRET, code, NOW_S, 0) is None


def test_sealed_secrets():
    """Sealed with the first key, opened by any; no key or the wrong one cannot open it."""
    sealed = totp.seal(SECRET, ["new key", "old key"])
    assert sealed.startswith("fernet:") and SECRET not in sealed
    assert totp.unseal(sealed, ["other", "new key"]) == SECRET
    for keys in ([], ["wrong"]):
        with pytest.raises(totp.TotpKeyError):
            totp.unseal(sealed, keys)
    assert totp.unseal(totp.seal(SECRET, []), []) == SECRET
