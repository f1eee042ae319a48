"""Logging in with a password (local or LDAP), then a TOTP code or enrolment when one is due."""

from __future__ import annotations

import asyncio
import hashlib
import time
from dataclasses import dataclass
from typing import Any

from admin import credentials, throttle, totp
from admin.actor import Actor
from admin.config import AdminConfig
from admin.errors import Invalid, Throttled, Unauthorized
from admin.metrics import LDAP, LOCAL, TOTP
from admin.queries import throttle as throttle_rows
from admin.queries import users
from admin.services import audited
from admin.services.auth import actor_of, login_name
from admin.services.external import ExternalRefused, external_login
from admin.services.refusals import Gate, refuse
from admin.services.users import is_user_name
from admin.sso import ldap, ldap_names
from i18n.marks import N_
from protocol.clock import now_us

WRONG_LOGIN = N_("wrong username or password")
WRONG_CODE = N_("wrong or expired code")
# Stages of a login that a password alone does not finish (admin_session.stage).
FULL, CODE, ENROL = "", "totp", "enrol"


@dataclass(frozen=True, slots=True)
class Passed:
    """A password step that succeeded; `stage` says what is still due (FULL: nothing)."""

    actor: Actor
    stage: str


@dataclass(frozen=True, slots=True)
class Attempt:
    """One login attempt's throttle: its keys (user, address), their policies and states."""

    name: str
    policies: dict[str, throttle.ThrottlePolicy]
    states: dict[str, throttle.ThrottleState]

    def after_failure(self) -> dict[str, throttle.ThrottleState]:
        now = now_us()
        return {k: throttle.after_failure(s, self.policies[k], now) for k, s in self.states.items()}

    def wait_s(self) -> float:
        return max(throttle.wait_s(s, now_us()) for s in self.states.values())

    @property
    def user_key(self) -> str:
        return next(iter(self.states))


def _policies(cfg: AdminConfig) -> tuple[throttle.ThrottlePolicy, throttle.ThrottlePolicy]:
    def policy(free: int) -> throttle.ThrottlePolicy:
        return throttle.ThrottlePolicy(
            free, cfg.admin_login_backoff_s, cfg.admin_login_backoff_max_s, cfg.admin_login_forget_s
        )

    return policy(cfg.admin_login_free_failures), policy(cfg.admin_login_addr_free_failures)


def _keys(name: str, client: str) -> list[str]:
    """Throttle keys in ASCII: a name no user can have is hashed, or the database's collation
    would fold "user:álice" into "user:alice" and mix their counts."""
    if not is_user_name(name):
        name = "~" + hashlib.sha256(name.encode()).hexdigest()[:40]
    return [f"user:{name}", f"addr:{client}"[:160]]


async def _attempt(gate: Gate, name: str, method: str) -> Attempt:
    """The throttle of a new attempt; Throttled (recorded as refused) while it backs off."""
    keys = _keys(name, gate.client)
    policies = dict(zip(keys, _policies(gate.cfg), strict=True))
    async with gate.engine.connect() as conn:
        stored = await throttle_rows.load_states(conn, keys)
    now = now_us()
    attempt = Attempt(
        name, policies, {k: throttle.current(s, policies[k], now) for k, s in stored.items()}
    )
    wait = attempt.wait_s()
    if wait > 0:
        await refuse(gate, method, "throttled", name, "throttled")
        raise Throttled(wait)
    return attempt


async def _local_row(gate: Gate, name: str) -> dict[str, Any] | None:
    # Only a name that could exist is looked up, and only that very name is taken: the
    # database's collation would also match "ádmin" to "admin", under another throttle key.
    if not is_user_name(name):
        return None
    async with gate.engine.connect() as conn:
        row = await users.user_by_name(conn, name)
    return row if row is not None and row["name"] == name else None


def uses_ldap(cfg: AdminConfig, row: dict[str, Any] | None) -> bool:
    """The rule: with LDAP configured, a name that is no local account is checked by LDAP;
    a local account (the break-glass ones) only ever by its own password."""
    return cfg.ldap_enabled and (row is None or row["source"] == "ldap")


async def password_step(gate: Gate, name: str, password: str) -> Passed:
    """Check a username and password; Throttled while backing off, Unauthorized if wrong."""
    name = login_name(name)
    row = await _local_row(gate, name)
    method = LDAP if uses_ldap(gate.cfg, row) else LOCAL
    attempt = await _attempt(gate, name, method)
    if method == LDAP:
        return Passed(await _ldap_password(gate, attempt, password), FULL)
    return await _local_password(gate, attempt, row, password)


async def _local_password(
    gate: Gate, attempt: Attempt, row: dict[str, Any] | None, password: str
) -> Passed:
    usable = row is not None and row["status"] == 1 and row["source"] == "local"
    good_hash = row["password_hash"] if row is not None and usable else None
    ok = await asyncio.to_thread(credentials.verify_password, good_hash, password)
    if not ok or row is None:
        await refuse(
            gate, LOCAL, "wrong_password", attempt.name, WRONG_LOGIN, states=attempt.after_failure()
        )
        raise Unauthorized(WRONG_LOGIN)
    stage = CODE if row["totp_secret"] else ENROL if row["totp_required"] else FULL
    return Passed(await _local_success(gate, attempt, row, password, stage), stage)


async def _local_success(
    gate: Gate, attempt: Attempt, row: dict[str, Any], password: str, stage: str
) -> Actor:
    rehashed = None
    if credentials.needs_rehash(row["password_hash"]):
        rehashed = await asyncio.to_thread(credentials.hash_password, password)
    async with gate.engine.begin() as conn:
        if rehashed is not None:
            await users.update_user(conn, row["id"], {"password_hash": rehashed}, now_us())
        actor = await actor_of(conn, row["id"], gate.client)
        if actor is None:
            raise Unauthorized(WRONG_LOGIN)
        # With a code still due, the throttle stays: a known password must not reset the count
        # of wrong codes.
        if stage == FULL:
            await throttle_rows.clear_state(conn, attempt.user_key)
            await audited(
                conn, actor, now_us(), "login", ("user", row["id"], None), after={"method": LOCAL}
            )
    return actor


def _ldap_settings(cfg: AdminConfig) -> ldap.LdapSettings:
    return ldap.LdapSettings(
        url=cfg.admin_ldap_url,
        user_dn_template=cfg.admin_ldap_user_dn_template,
        bind_dn=cfg.admin_ldap_bind_dn,
        bind_password=cfg.admin_ldap_bind_password.get_secret_value(),
        user_base=cfg.admin_ldap_user_base,
        user_filter=cfg.admin_ldap_user_filter,
        group_base=cfg.admin_ldap_group_base,
        group_filter=cfg.admin_ldap_group_filter,
        group_attribute=cfg.admin_ldap_group_attribute,
        timeout_s=cfg.admin_ldap_timeout_s,
    )


async def _ldap_password(gate: Gate, attempt: Attempt, password: str) -> Actor:
    """Bind as the user; an injection attempt, a wrong password or an unusable account is
    refused (and counts on the throttle); an unreachable directory is refused as such."""
    name = attempt.name
    if ldap_names.is_injection(name) or not is_user_name(name):
        reason = "ldap_injection" if ldap_names.is_injection(name) else "bad_name"
        await refuse(gate, LDAP, reason, name, WRONG_LOGIN, states=attempt.after_failure())
        raise Unauthorized(WRONG_LOGIN)
    try:
        found = await asyncio.to_thread(ldap.authenticate, _ldap_settings(gate.cfg), name, password)
    except ldap.LdapUnavailable as exc:
        await refuse(gate, LDAP, "ldap_unavailable", name, f"directory unavailable: {exc}"[:200])
        raise Unauthorized("the directory cannot be reached; try again later") from exc
    if found is None:
        await refuse(
            gate, LDAP, "wrong_password", name, WRONG_LOGIN, states=attempt.after_failure()
        )
        raise Unauthorized(WRONG_LOGIN)
    try:
        actor = await external_login(
            gate,
            "ldap",
            found.dn,
            name=name,
            directory_groups=found.groups,
            role_map=gate.cfg.admin_ldap_role_map,
        )
    except ExternalRefused as exc:
        await refuse(gate, LDAP, exc.reason, name, exc.text)
        raise Unauthorized(exc.text) from exc
    async with gate.engine.begin() as conn:
        await throttle_rows.clear_state(conn, attempt.user_key)
    return actor


# ---------------------------------------------------------------- the second factor


def totp_keys(cfg: AdminConfig) -> list[str]:
    return totp.key_list(cfg.admin_totp_key.get_secret_value())


async def code_step(gate: Gate, actor: Actor, code: str) -> Actor:
    """The TOTP code after a right password; a wrong one counts on the login throttle."""
    attempt = await _attempt(gate, actor.user.name, TOTP)
    async with gate.engine.connect() as conn:
        sealed, last_step = await users.totp_of(conn, actor.user.id)
    try:
        secret = totp.unseal(sealed, totp_keys(gate.cfg))
    except totp.TotpKeyError as exc:
        await refuse(gate, TOTP, "totp_key_missing", actor.user.name, str(exc))
        raise Unauthorized("this account's second factor cannot be checked; ask an admin") from exc
    await _check_code(gate, attempt, actor, secret, code, last_step=last_step)
    return actor


async def enrol_step(gate: Gate, actor: Actor, secret: str, code: str) -> Actor:
    """First TOTP enrolment during a login: the code proves the app holds `secret`."""
    if not totp.is_secret(secret):
        raise Invalid("secret", "the enrolment form expired: please log in again")
    attempt = await _attempt(gate, actor.user.name, TOTP)
    await _check_code(gate, attempt, actor, secret, code, enrol=True)
    return actor


async def _check_code(
    gate: Gate,
    attempt: Attempt,
    actor: Actor,
    secret: str,
    code: str,
    *,
    last_step: int = 0,
    enrol: bool = False,
) -> None:
    step = totp.accepted_step(secret, code, time.time(), last_step)
    async with gate.engine.begin() as conn:
        if enrol and step is not None:
            sealed = totp.seal(secret, totp_keys(gate.cfg))
            await users.update_user(
                conn, actor.user.id, {"totp_secret": sealed, "totp_last_step": 0}, now_us()
            )
        taken = step is not None and await users.take_totp_step(conn, actor.user.id, step)
        if taken:
            await throttle_rows.clear_state(conn, attempt.user_key)
            after = {"method": LOCAL, "totp": "enrolled" if enrol else "code"}
            await audited(
                conn, actor, now_us(), "login", ("user", actor.user.id, None), after=after
            )
    if not taken:
        await refuse(
            gate, TOTP, "wrong_code", actor.user.name, WRONG_CODE, states=attempt.after_failure()
        )
        raise Unauthorized(WRONG_CODE)
