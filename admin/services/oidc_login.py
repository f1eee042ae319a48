"""Logging in through the OpenID Connect provider: the callback's checks, then the user's roles."""

from __future__ import annotations

from collections.abc import Mapping

from admin.actor import Actor
from admin.config import AdminConfig
from admin.errors import Unauthorized
from admin.metrics import OIDC
from admin.services.external import ExternalRefused, external_login
from admin.services.refusals import Gate, refuse
from admin.sso.oidc import OidcProvider, OidcRefused, OidcSettings, PendingLogin
from admin.sso.roles import claim_groups
from i18n.marks import N_

REFUSED = N_("the sign-in with the identity provider was refused; please try again")


def provider_for(cfg: AdminConfig) -> OidcProvider | None:
    """The configured provider, or None when OIDC is off."""
    if not cfg.oidc_enabled:
        return None
    return OidcProvider(
        OidcSettings(
            issuer=cfg.admin_oidc_issuer,
            client_id=cfg.admin_oidc_client_id,
            client_secret=cfg.admin_oidc_client_secret.get_secret_value(),
            scopes=cfg.admin_oidc_scopes,
            timeout_s=cfg.admin_oidc_timeout_s,
        )
    )


async def finish(
    gate: Gate,
    provider: OidcProvider,
    pending: PendingLogin | None,
    params: Mapping[str, str],
    redirect_uri: str,
) -> Actor:
    """The actor once the callback checks out; any refusal is logged, audited and counted,
    and nothing else changes (no session, no user, no role)."""
    if pending is None:
        await refuse(gate, OIDC, "state_mismatch", "", "no sign-in was started in this browser")
        raise Unauthorized(REFUSED)
    try:
        claims = await provider.finish(pending, params, redirect_uri)
    except OidcRefused as exc:
        await refuse(gate, OIDC, exc.reason, "", exc.detail)
        raise Unauthorized(REFUSED) from exc
    cfg = gate.cfg
    name = str(claims.get(cfg.admin_oidc_username_claim) or claims["sub"])
    try:
        return await external_login(
            gate,
            "oidc",
            str(claims["sub"])[:255],
            name=name,
            directory_groups=claim_groups(claims.get(cfg.admin_oidc_groups_claim)),
            role_map=cfg.admin_oidc_role_map,
        )
    except ExternalRefused as exc:
        await refuse(gate, OIDC, exc.reason, name, exc.text)
        raise Unauthorized(exc.text) from exc
