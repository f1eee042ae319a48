"""Permission checks as a table: user, grants, action, group → allow, 403 or 404 (hidden)."""

from __future__ import annotations

import pytest

from admin.permissions import (
    Action,
    Decision,
    User,
    decide,
    gids_with,
    sees_pending_agents,
    visible_gids,
)

A, B = 1, 2
ROOT = User(1, "root", superadmin=True)
PLAIN = User(2, "pat")
ALLOW, FORBIDDEN, HIDDEN = Decision.ALLOW, Decision.FORBIDDEN, Decision.HIDDEN

CASES = [
    # (grants, action, group, expected)
    ({A: "viewer"}, Action.VIEW, A, ALLOW),
    ({A: "viewer"}, Action.RUN, A, FORBIDDEN),
    ({A: "viewer"}, Action.TOGGLE, A, FORBIDDEN),
    ({A: "viewer"}, Action.EDIT, A, FORBIDDEN),
    ({A: "viewer"}, Action.GRANT, A, FORBIDDEN),
    ({A: "operator"}, Action.VIEW, A, ALLOW),
    ({A: "operator"}, Action.RUN, A, ALLOW),
    ({A: "operator"}, Action.TOGGLE, A, ALLOW),
    ({A: "operator"}, Action.EDIT, A, FORBIDDEN),
    ({A: "operator"}, Action.GRANT, A, FORBIDDEN),
    ({A: "admin"}, Action.VIEW, A, ALLOW),
    ({A: "admin"}, Action.RUN, A, ALLOW),
    ({A: "admin"}, Action.EDIT, A, ALLOW),
    ({A: "admin"}, Action.GRANT, A, ALLOW),
    # Another group's role shows nothing of this group: hidden, never merely forbidden.
    ({B: "admin"}, Action.VIEW, A, HIDDEN),
    ({B: "operator"}, Action.RUN, A, HIDDEN),
    ({B: "admin"}, Action.EDIT, A, HIDDEN),
    ({}, Action.VIEW, A, HIDDEN),
    # Objects without a group belong to superadmins only.
    ({A: "admin"}, Action.VIEW, None, HIDDEN),
    # Global actions: superadmins only, whatever the roles.
    ({A: "admin"}, Action.MANAGE_GROUPS, None, FORBIDDEN),
    ({A: "admin"}, Action.MANAGE_GROUPS, A, FORBIDDEN),
    ({A: "admin"}, Action.MANAGE_USERS, None, FORBIDDEN),
    # A role name the code does not know grants nothing.
    ({A: "owner"}, Action.VIEW, A, HIDDEN),
]


@pytest.mark.parametrize(("grants", "action", "gid", "expected"), CASES)
def test_plain_user(grants: dict[int, str], action: Action, gid: int | None, expected: Decision):
    """A user's role in the object's group decides; other groups' roles count for nothing."""
    assert decide(PLAIN, grants, action, gid) is expected


@pytest.mark.parametrize("action", list(Action))
@pytest.mark.parametrize("gid", [A, B, None])
def test_superadmin_may_do_everything(action: Action, gid: int | None):
    """A superadmin is allowed every action in every group, and on objects of no group."""
    assert decide(ROOT, {}, action, gid) is ALLOW


def test_visible_groups():
    """Only groups with a known role are visible; a superadmin sees all (None)."""
    grants = {A: "viewer", B: "owner"}
    assert visible_gids(PLAIN, grants) == frozenset({A})
    assert visible_gids(PLAIN, {}) == frozenset()
    assert visible_gids(ROOT, {}) is None


def test_groups_where_an_action_is_allowed():
    """gids_with lists the groups whose role is high enough for the action."""
    grants = {A: "viewer", B: "operator", 3: "admin"}
    assert gids_with(PLAIN, grants, Action.VIEW) == frozenset({A, B, 3})
    assert gids_with(PLAIN, grants, Action.RUN) == frozenset({B, 3})
    assert gids_with(PLAIN, grants, Action.EDIT) == frozenset({3})
    assert gids_with(ROOT, {}, Action.EDIT) is None


@pytest.mark.parametrize(
    ("user", "grants", "expected"),
    [
        (ROOT, {}, True),
        (PLAIN, {A: "admin"}, True),
        (PLAIN, {A: "operator", B: "viewer"}, False),
        (PLAIN, {}, False),
    ],
)
def test_pending_agents_are_seen_by_admins(user: User, grants: dict[int, str], expected: bool):
    """Pending agents have no group: superadmins and admins of any group see them to approve."""
    assert sees_pending_agents(user, grants) is expected
