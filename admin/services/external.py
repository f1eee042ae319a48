"""Users from a directory (OIDC, LDAP): found by subject or created, roles set from the map."""

from __future__ import annotations

from collections.abc import Iterable

from sqlalchemy.ext.asyncio import AsyncConnection

from admin.actor import Actor
from admin.permissions import User
from admin.queries import groups, users
from admin.services import audited
from admin.services.auth import actor_of, login_name
from admin.services.refusals import Gate
from admin.services.users import is_user_name
from admin.sso.roles import RoleMap, grant_changes, mapped_roles, wanted_grants
from i18n.marks import N_
from protocol.clock import now_us


class ExternalRefused(Exception):
    """The directory vouched for the user, but they may not log in here; `reason` says why."""

    def __init__(self, reason: str, text: str) -> None:
        super().__init__(text)
        self.reason, self.text = reason, text


async def external_login(
    gate: Gate,
    source: str,
    subject: str,
    *,
    name: str,
    directory_groups: Iterable[str],
    role_map: RoleMap,
) -> Actor:
    """The actor of an external user after a login their directory vouched for: created the
    first time (no local password), their roles set to what `role_map` gives now."""
    now = now_us()
    async with gate.engine.begin() as conn:
        user_id = await _user_id(conn, gate.client, source, subject, name)
        wanted = mapped_roles(role_map, directory_groups)
        await _sync_grants(conn, user_id, wanted, gate.client)
        actor = await actor_of(conn, user_id, gate.client)
        if actor is None:
            raise ExternalRefused("disabled", N_("this account is disabled"))
        await audited(conn, actor, now, "login", ("user", user_id, None), after={"method": source})
    return actor


async def _user_id(conn: AsyncConnection, client: str, source: str, subject: str, name: str) -> int:
    """The user with this subject, or a new one named `name` (refused if the name is taken)."""
    row = await users.user_by_subject(conn, source, subject)
    if row is not None:
        return int(row["id"])
    name = login_name(name)
    if not is_user_name(name):
        raise ExternalRefused(
            "bad_name", N_(f"the directory's user name {name[:64]!r} is not usable")
        )
    if await users.user_by_name(conn, name) is not None:
        raise ExternalRefused("name_taken", N_(f"another account is named {name!r}"))
    now = now_us()
    user_id = await users.insert_external_user(conn, name, source, subject, now)
    made = Actor(User(user_id, name), {}, client)
    after = {"name": name, "source": source, "subject": subject[:200]}
    await audited(conn, made, now, "user.create", ("user", user_id, None), after=after)
    return user_id


async def _sync_grants(
    conn: AsyncConnection, user_id: int, wanted_by_name: dict[str, str], client: str
) -> None:
    """Put the mapped roles, remove the roles the map no longer gives; audit any change."""
    gid_by_name = await groups.ids_by_name(conn, sorted(wanted_by_name))
    wanted = wanted_grants(wanted_by_name, gid_by_name)
    current = await users.roles_of(conn, user_id)
    put, remove = grant_changes(current, wanted)
    if not put and not remove:
        return
    now = now_us()
    for gid, role in put.items():
        await users.put_grant(conn, user_id, gid, role, now)
    await users.delete_user_grants(conn, user_id, remove)
    row = await users.user_by_id(conn, user_id) or {}
    actor = Actor(User(user_id, str(row.get("name", ""))), current, client)
    before, after = {str(g): r for g, r in current.items()}, {str(g): r for g, r in wanted.items()}
    await audited(
        conn, actor, now, "user.roles_synced", ("user", user_id, None), before=before, after=after
    )
