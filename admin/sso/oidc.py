"""OpenID Connect, authorization code with PKCE: the provider's metadata, the redirect, the
checks of state, code, ID token (signature, issuer, audience, expiry) and nonce."""

from __future__ import annotations

import base64
import binascii
import hmac
import json
import time
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any, cast

import httpx2
from authlib.common.security import generate_token
from authlib.integrations.base_client.errors import OAuthError
from authlib.integrations.httpx_client import AsyncOAuth2Client
from joserfc import jwt
from joserfc.errors import JoseError
from joserfc.jwk import KeySet

if TYPE_CHECKING:
    from joserfc.jwk import KeySetSerialization

# What the provider signs ID tokens with: asymmetric algorithms only (never "none" or HS256 with
# the client secret as key, which a provider-side mix-up could turn into a forgery).
ID_TOKEN_ALGORITHMS = ("RS256", "RS384", "RS512", "PS256", "ES256", "ES384", "EdDSA")
CLOCK_LEEWAY_S = 60


@dataclass(frozen=True, slots=True)
class OidcSettings:
    issuer: str
    client_id: str
    client_secret: str
    scopes: str
    timeout_s: float


@dataclass(frozen=True, slots=True)
class PendingLogin:
    """What the browser keeps (a cookie) between the redirect and the callback: random values
    only its own tab knows, and where to go after."""

    state: str
    nonce: str
    verifier: str
    next: str

    def encode(self) -> str:
        return base64.urlsafe_b64encode(json.dumps(asdict(self)).encode()).decode()

    @classmethod
    def decode(cls, value: str) -> PendingLogin | None:
        try:
            data = json.loads(base64.urlsafe_b64decode(value.encode()))
            return cls(**{k: str(data[k]) for k in ("state", "nonce", "verifier", "next")})
        except (ValueError, TypeError, KeyError, binascii.Error):
            return None


class OidcRefused(Exception):
    """The callback is refused; `reason` is a fixed code (state_mismatch, nonce_mismatch, …)."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason, self.detail = reason, detail


class OidcProvider:
    """One configured provider; its metadata is read once and kept."""

    def __init__(self, settings: OidcSettings) -> None:
        self.settings = settings
        self._metadata: dict[str, Any] | None = None

    def _client(self, redirect_uri: str) -> AsyncOAuth2Client:
        s = self.settings
        return AsyncOAuth2Client(
            client_id=s.client_id,
            client_secret=s.client_secret or None,
            scope=s.scopes,
            redirect_uri=redirect_uri,
            code_challenge_method="S256",
            timeout=s.timeout_s,
        )

    async def metadata(self) -> dict[str, Any]:
        if self._metadata is None:
            url = self.settings.issuer.rstrip("/") + "/.well-known/openid-configuration"
            self._metadata = await _get_json(url, self.settings.timeout_s, "discovery_failed")
            if self._metadata.get("issuer") != self.settings.issuer:
                self._metadata = None
                raise OidcRefused("discovery_failed", "the metadata names another issuer")
        return self._metadata

    async def start(self, redirect_uri: str, next_url: str) -> tuple[str, PendingLogin]:
        """The provider's authorization URL, and what the browser must keep until the callback."""
        pending = PendingLogin(generate_token(32), generate_token(32), generate_token(64), next_url)
        endpoint = (await self.metadata())["authorization_endpoint"]
        async with self._client(redirect_uri) as client:
            url, _state = client.create_authorization_url(
                endpoint, state=pending.state, code_verifier=pending.verifier, nonce=pending.nonce
            )
        return str(url), pending

    async def finish(
        self, pending: PendingLogin, params: Mapping[str, str], redirect_uri: str
    ) -> dict[str, Any]:
        """The user's claims once state, code, ID token and nonce all check out."""
        if not hmac.compare_digest(params.get("state", "").encode(), pending.state.encode()):
            raise OidcRefused(
                "state_mismatch", "the state is not the one this browser was sent with"
            )
        if "error" in params or "code" not in params:
            raise OidcRefused("provider_error", params.get("error", "no code")[:100])
        meta = await self.metadata()
        async with self._client(redirect_uri) as client:
            try:
                token = await client.fetch_token(
                    meta["token_endpoint"], code=params["code"], code_verifier=pending.verifier
                )
            except (OAuthError, httpx2.HTTPError) as exc:
                raise OidcRefused("token_refused", str(exc)[:200]) from exc
        claims = await self._id_claims(str(token.get("id_token", "")), pending.nonce)
        return claims | await self._groups_from_userinfo(meta, token, claims)

    async def _id_claims(self, id_token: str, nonce: str) -> dict[str, Any]:
        meta = await self.metadata()
        jwks = await _get_json(meta["jwks_uri"], self.settings.timeout_s)
        keys = KeySet.import_key_set(cast("KeySetSerialization", jwks))
        try:
            claims = jwt.decode(id_token, keys, algorithms=list(ID_TOKEN_ALGORITHMS)).claims
        except (JoseError, ValueError) as exc:
            raise OidcRefused("id_token_invalid", str(exc)[:200]) from exc
        if not hmac.compare_digest(str(claims.get("nonce", "")).encode(), nonce.encode()):
            raise OidcRefused("nonce_mismatch", "the ID token's nonce is not this login's")
        registry = jwt.JWTClaimsRegistry(
            now=int(time.time()),
            leeway=CLOCK_LEEWAY_S,
            iss={"essential": True, "value": self.settings.issuer},
            aud={"essential": True, "value": self.settings.client_id},
            sub={"essential": True},
            exp={"essential": True},
        )
        try:
            registry.validate(claims)
        except JoseError as exc:
            raise OidcRefused("id_token_invalid", str(exc)[:200]) from exc
        return dict(claims)

    async def _groups_from_userinfo(
        self, meta: Mapping[str, Any], token: Mapping[str, Any], claims: Mapping[str, Any]
    ) -> dict[str, Any]:
        """Claims the ID token lacks, from the userinfo endpoint (many providers put groups
        there only); only when it answers for the same subject."""
        endpoint = meta.get("userinfo_endpoint")
        if not endpoint or not token.get("access_token"):
            return {}
        headers = {"Authorization": f"Bearer {token['access_token']}"}
        info = await _get_json(str(endpoint), self.settings.timeout_s, headers=headers)
        if info.get("sub") != claims.get("sub"):
            return {}
        return {k: v for k, v in info.items() if k not in claims}


async def _get_json(
    url: str,
    timeout_s: float,
    reason: str = "provider_unavailable",
    headers: dict[str, str] | None = None,
) -> dict[str, Any]:
    try:
        async with httpx2.AsyncClient(timeout=timeout_s) as client:
            answer = await client.get(url, headers=headers)
            answer.raise_for_status()
            data = answer.json()
    except (httpx2.HTTPError, ValueError) as exc:
        raise OidcRefused(reason, f"{url}: {exc}"[:200]) from exc
    if not isinstance(data, dict):
        raise OidcRefused(reason, f"{url}: not a JSON object")
    return data
