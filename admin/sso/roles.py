"""Directory groups to UnitedCron roles: pure decisions from a configured map and the groups."""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from admin.permissions import ROLES

# The map, as configured (admin_oidc_role_map, admin_ldap_role_map):
#   {"<UnitedCron group name>": {"<directory group>": "viewer" | "operator" | "admin"}}
# A directory group is a name, a DN or an id, whatever the directory gives; it is matched
# without regard to case (LDAP and most directories compare group names that way).
RoleMap = Mapping[str, Mapping[str, str]]
_RANK = {role: rank for rank, role in enumerate(ROLES)}


def check_role_map(raw: Mapping[str, Mapping[str, str]]) -> dict[str, dict[str, str]]:
    """The map with every role checked; ValueError names the first wrong entry."""
    out: dict[str, dict[str, str]] = {}
    for group, entries in raw.items():
        if not isinstance(entries, Mapping):
            raise ValueError(f"{group!r}: give an object of directory group → role")
        for directory_group, role in entries.items():
            if role not in _RANK:
                wanted = " | ".join(ROLES)
                raise ValueError(f"{group!r} → {directory_group!r}: role {role!r} is not {wanted}")
        out[str(group)] = {str(k): str(v) for k, v in entries.items()}
    return out


def mapped_roles(role_map: RoleMap, directory_groups: Iterable[str]) -> dict[str, str]:
    """UnitedCron group name → role the user's directory groups give; the highest role wins
    where several of their groups map to the same UnitedCron group."""
    held = {g.casefold() for g in directory_groups}
    out: dict[str, str] = {}
    for group, entries in role_map.items():
        for directory_group, role in entries.items():
            if directory_group.casefold() not in held:
                continue
            if group not in out or _RANK[role] > _RANK[out[group]]:
                out[group] = role
    return out


def wanted_grants(roles: Mapping[str, str], gid_by_name: Mapping[str, int]) -> dict[int, str]:
    """gid → role for the mapped groups that exist (a name no group has is skipped)."""
    return {gid_by_name[name]: role for name, role in roles.items() if name in gid_by_name}


def grant_changes(
    current: Mapping[int, str], wanted: Mapping[int, str]
) -> tuple[dict[int, str], frozenset[int]]:
    """What turns `current` into `wanted`: (gid → role to put, gids to take away). An external
    user's roles are exactly what the map gives at their latest login."""
    put = {gid: role for gid, role in wanted.items() if current.get(gid) != role}
    return put, frozenset(current) - frozenset(wanted)


def claim_groups(value: object) -> list[str]:
    """The groups in a claim: a list of names or ids (the usual form), or one string."""
    if isinstance(value, str):
        return [value] if value else []
    if isinstance(value, list | tuple):
        return [str(v) for v in value if isinstance(v, str | int) and str(v)]
    return []
