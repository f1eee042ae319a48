"""Agents: approve pending ones into a group, enable, disable, label, delete."""

from __future__ import annotations

import json
from typing import Any

from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from admin.actor import Actor
from admin.errors import Conflict, Forbidden, Invalid, NotFound
from admin.permissions import Action, sees_pending_agents
from admin.queries import agents, groups
from admin.services import audited
from center.rules import NOT_UNICODE, is_unicode
from center.store.versions import record_version
from i18n.marks import N_
from protocol.clock import now_us

LABELS_BYTES = 4096
_EDITABLE = frozenset({"status", "gid", "labels"})


def _json(text: str | None) -> Any:
    try:
        return json.loads(text or "null")
    except ValueError:
        return None


def _decoded(row: dict[str, Any]) -> dict[str, Any]:
    """Labels as an object; `users` as the agent reports them: the users rules may run as
    (empty: any but root) and whether root is allowed (a plain list from older agents)."""
    labels = _json(row.get("labels"))
    row["labels"] = labels if isinstance(labels, dict) else {}
    reported = _json(row.get("agent_labels"))
    row["agent_labels"] = reported if isinstance(reported, dict) else {}
    users = _json(row.get("users"))
    if not isinstance(users, dict):
        users = {"allowed": users if isinstance(users, list) else []}
    row["users"] = {
        "allowed": [str(u) for u in users.get("allowed") or []],
        "allow_root": bool(users.get("allow_root", False)),
    }
    row["pending"] = row["status"] == agents.PENDING and row["gid"] is None
    row["key_bound"] = bool(row.pop("key_hash", ""))  # the hash itself stays in the database
    row.pop("cert_pem", None)  # the certificate is shown by serial, expiry and fingerprint
    row["csr_sent"] = bool(row.pop("csr_pem", ""))
    return row


def _is_pending(row: dict[str, Any]) -> bool:
    return bool(row["status"] == agents.PENDING and row["gid"] is None)


def labels_json(value: Any) -> str:
    """The `labels` column from a mapping of text to text; Invalid names `labels` if not."""
    if isinstance(value, str):
        try:
            value = json.loads(value or "{}")
        except ValueError as exc:
            raise Invalid("labels", f"is not valid JSON: {exc}") from None
    if not isinstance(value, dict) or not all(
        isinstance(k, str) and k and isinstance(v, str) for k, v in value.items()
    ):
        raise Invalid("labels", "must be a JSON object of name: text")
    if not is_unicode(value):
        raise Invalid("labels", NOT_UNICODE)
    text = json.dumps(value, sort_keys=True)
    if len(text.encode()) > LABELS_BYTES:
        raise Invalid("labels", f"is longer than {LABELS_BYTES} bytes")
    return text


async def list_agents(
    engine: AsyncEngine, actor: Actor, gid: int | None = None, status: int | None = None
) -> list[dict[str, Any]]:
    async with engine.connect() as conn:
        rows = await agents.list_agents(conn, actor.scope, gid=gid, status=status)
    return [_decoded(r) for r in rows]


async def list_pending(engine: AsyncEngine, actor: Actor) -> list[dict[str, Any]]:
    if not sees_pending_agents(actor.user, actor.grants):
        return []
    async with engine.connect() as conn:
        return [_decoded(r) for r in await agents.list_pending(conn)]


async def _visible(conn: AsyncConnection, actor: Actor, aid: int, action: Action) -> dict[str, Any]:
    row = await agents.agent_by_id(conn, aid)
    if row is None or row["status"] == agents.DELETED:
        raise NotFound("no such agent")
    if _is_pending(row):
        if not sees_pending_agents(actor.user, actor.grants):
            raise NotFound("no such agent")
    else:
        actor.require(action, row["gid"], N_("agent"))
    return _decoded(row)


async def get_agent(engine: AsyncEngine, actor: Actor, aid: int) -> dict[str, Any]:
    """The agent with what runs on it now and the rules that list it."""
    async with engine.connect() as conn:
        row = await _visible(conn, actor, aid, Action.VIEW)
        row["runs"] = await agents.runs_on(conn, aid)
        scope = actor.scope
        row["rules"] = [
            r for r in await agents.rules_on(conn, aid) if scope is None or r["gid"] in scope
        ]
    return row


async def _target_group(conn: AsyncConnection, actor: Actor, gid: Any) -> int:
    if not isinstance(gid, int) or isinstance(gid, bool):
        raise Invalid("gid", "give the id of a group")
    if not actor.can(Action.VIEW, gid) or await groups.group_by_id(conn, gid) is None:
        raise Invalid("gid", f"no such group: {gid}")
    if not actor.can(Action.EDIT, gid):
        raise Forbidden("you are not an admin of that group")
    return gid


async def approve_agent(engine: AsyncEngine, actor: Actor, aid: int, gid: Any) -> dict[str, Any]:
    """Enable a pending agent in a group (status 1 and a gid) so that rules can target it."""
    now = now_us()
    async with engine.begin() as conn:
        before = await _visible(conn, actor, aid, Action.EDIT)
        if not before["pending"]:
            raise Conflict("the agent is not pending: it was approved already")
        gid = await _target_group(conn, actor, gid)
        await agents.update_agent(conn, aid, {"status": agents.ENABLED, "gid": gid}, now)
        after = _decoded(await agents.agent_by_id(conn, aid) or {})
        target = ("agent", aid, gid)
        await audited(conn, actor, now, "agent.approve", target, before=before, after=after)
    return after


async def update_agent(
    engine: AsyncEngine, actor: Actor, aid: int, values: dict[str, Any]
) -> dict[str, Any]:
    """Enable (1) or disable (0) an approved agent, move it to a group, set its labels."""
    unknown = set(values) - _EDITABLE
    if unknown:
        raise Invalid(sorted(unknown)[0], "cannot be changed here")
    now = now_us()
    async with engine.begin() as conn:
        before = await _visible(conn, actor, aid, Action.EDIT)
        if before["pending"]:
            raise Conflict("approve the agent into a group first")
        changes = await _changes(conn, actor, before, values)
        if "gid" in changes and changes["gid"] != before["gid"]:
            await _detach(conn, actor, aid, now, "moved to another group")
        await agents.update_agent(conn, aid, changes, now)
        after = _decoded(await agents.agent_by_id(conn, aid) or {})
        target = ("agent", aid, after["gid"])
        await audited(conn, actor, now, "agent.update", target, before=before, after=after)
    return after


async def _changes(
    conn: AsyncConnection, actor: Actor, before: dict[str, Any], values: dict[str, Any]
) -> dict[str, Any]:
    changes: dict[str, Any] = {}
    if "status" in values:
        if values["status"] not in (0, 1):
            raise Invalid("status", "must be 1 (enabled) or 0 (disabled)")
        # An unreachable agent (2) being enabled again stays as the center marked it.
        keep = values["status"] == 1 and before["status"] == agents.UNREACHABLE
        changes["status"] = before["status"] if keep else values["status"]
    if "gid" in values:
        changes["gid"] = await _target_group(conn, actor, values["gid"])
    if "labels" in values:
        changes["labels"] = labels_json(values["labels"])
    return changes


# A deleted agent keeps its row (its runs name it) and loses what bound it: group, key, CSR and
# certificate. If it registers again it is a pending agent like any new one.
FORGOTTEN: dict[str, Any] = {
    "status": agents.DELETED,
    "gid": None,
    "key_hash": "",
    "csr_pem": "",
    "cert_pem": "",
    "cert_serial": "",
    "cert_not_after": 0,
    "cert_fingerprint": "",
}


async def _detach(conn: AsyncConnection, actor: Actor, aid: int, now: int, why: str) -> None:
    """Take the agent out of every rule; each rule so changed gets a new version."""
    for task_id in await agents.detach(conn, aid, now):
        await record_version(
            conn, task_id, actor.author, now, f"agent {aid} left its targets ({why})"
        )


async def delete_agent(engine: AsyncEngine, actor: Actor, aid: int) -> None:
    """Forget an agent (status -1, no group) and take it out of every rule.

    If it registers again it comes back as pending, and its name is bound to the key it
    brings then (the way to readmit a reinstalled host)."""
    now = now_us()
    async with engine.begin() as conn:
        before = await _visible(conn, actor, aid, Action.EDIT)
        await _detach(conn, actor, aid, now, "deleted")
        if before.get("cert_serial"):  # no center accepts its certificate from now on
            await agents.revoke_cert(conn, aid, before, "agent deleted", now)
        await agents.update_agent(conn, aid, FORGOTTEN, now)
        target = ("agent", aid, before["gid"])
        await audited(conn, actor, now, "agent.delete", target, before=before)
