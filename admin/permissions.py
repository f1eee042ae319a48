"""Who may do what: pure checks of a user, their grants, an action and a group (no I/O)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import Enum, StrEnum

from i18n.marks import N_

# Roles are per group and ordered: viewer < operator < admin; a superadmin may do everything.
# A user without a role in a group does not see it at all: its objects answer "not found"
# (HIDDEN), never "forbidden", so ids of other groups leak nothing. Objects without a group
# (a pending agent, a rule whose group was removed) are superadmins' only, except that group
# admins see pending agents, to approve them into their groups.

VIEWER, OPERATOR, ADMIN = "viewer", "operator", "admin"
ROLES = (VIEWER, OPERATOR, ADMIN)
_RANK = {VIEWER: 1, OPERATOR: 2, ADMIN: 3}


class Action(StrEnum):
    """What a user asks to do; group actions need a role, global ones a superadmin. (Marked
    for the catalogs: a refusal names the action.)"""

    VIEW = N_("view")  # read a group's rules, agents, runs
    RUN = N_("run")  # run a rule now, kill runs
    TOGGLE = N_("toggle")  # pause or enable a rule
    EDIT = N_("edit")  # create, edit, delete rules; approve, edit, delete agents; rename the group
    GRANT = N_("grant")  # give and take roles in the group; read its audit log
    MANAGE_GROUPS = N_("manage_groups")  # create and delete groups (global)
    MANAGE_USERS = N_("manage_users")  # create, edit and delete users (global)


# The lowest role that allows each group action; global actions are absent.
_NEEDS = {
    Action.VIEW: VIEWER,
    Action.RUN: OPERATOR,
    Action.TOGGLE: OPERATOR,
    Action.EDIT: ADMIN,
    Action.GRANT: ADMIN,
}


class Decision(Enum):
    ALLOW = "allow"
    FORBIDDEN = "forbidden"  # the user sees the group, but the role is too low → 403
    HIDDEN = "hidden"  # the user has no role in the group → 404, as if it did not exist


@dataclass(frozen=True, slots=True)
class User:
    id: int
    name: str
    superadmin: bool = False


def decide(user: User, grants: Mapping[int, str], action: Action, gid: int | None) -> Decision:
    """May `user`, with `grants` (gid → role), do `action` on an object of group `gid`?"""
    if user.superadmin:
        return Decision.ALLOW
    needed = _NEEDS.get(action)
    if needed is None:  # a global action
        return Decision.FORBIDDEN
    role = grants.get(gid) if gid is not None else None
    if role not in _RANK:
        return Decision.HIDDEN
    return Decision.ALLOW if _RANK[role] >= _RANK[needed] else Decision.FORBIDDEN


def can(user: User, grants: Mapping[int, str], action: Action, gid: int | None) -> bool:
    return decide(user, grants, action, gid) is Decision.ALLOW


def visible_gids(user: User, grants: Mapping[int, str]) -> frozenset[int] | None:
    """The groups whose objects the user may see; None means every group (superadmin)."""
    if user.superadmin:
        return None
    return frozenset(gid for gid, role in grants.items() if role in _RANK)


def gids_with(user: User, grants: Mapping[int, str], action: Action) -> frozenset[int] | None:
    """The groups where the user may do `action`; None means every group (superadmin)."""
    if user.superadmin:
        return None
    return frozenset(gid for gid in grants if can(user, grants, action, gid))


def sees_pending_agents(user: User, grants: Mapping[int, str]) -> bool:
    """Pending agents have no group yet: superadmins and admins of any group may see them."""
    return user.superadmin or any(role == ADMIN for role in grants.values())


def action_for_changes(changes: Mapping[str, object]) -> Action:
    """An edit of a rule or a workflow: pausing and enabling is an operator's job (TOGGLE);
    any other change needs a group admin (EDIT)."""
    return Action.TOGGLE if changes and set(changes) <= {"status"} else Action.EDIT
