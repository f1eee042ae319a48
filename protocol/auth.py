"""Sans-IO mutual challenge-response from the cluster secret: HMAC proofs, fresh nonces.

The client sends a nonce; the server answers with its own nonce and a proof made
from both; the client checks it and answers with its proof. Proofs of the two
directions use different labels, so one can never be reflected as the other.
Several secrets may be held at once so that the cluster secret can be rotated
without downtime: the server proves with each, the client with the first that
matched, and each side accepts any secret it holds.

Under TLS every proof also covers a channel binding (the hash of the server's certificate as
each side sees it): a relay that ends TLS with a certificate of its own breaks the proofs, so
the handshake cannot be passed through it even where the client cannot check the certificate
yet (an agent enrolling before it knows the cluster's CA).
"""

from __future__ import annotations

import hashlib
import hmac

NONCE_BYTES = 32
MIN_SECRET_BYTES = 16
_SERVER_LABEL = b"unitedcron/1 server proof\x00"
_CLIENT_LABEL = b"unitedcron/1 client proof\x00"
_IDENTITY_LABEL = b"unitedcron/1 agent identity\x00"


def _mac(
    secret: bytes, label: bytes, client_nonce: bytes, server_nonce: bytes, binding: bytes
) -> bytes:
    message = label + client_nonce + server_nonce + binding
    return hmac.new(secret, message, hashlib.sha256).digest()


def server_proofs(
    secrets: tuple[bytes, ...], client_nonce: bytes, server_nonce: bytes, binding: bytes = b""
) -> list[bytes]:
    return [_mac(s, _SERVER_LABEL, client_nonce, server_nonce, binding) for s in secrets]


def client_proof(
    secret: bytes, client_nonce: bytes, server_nonce: bytes, binding: bytes = b""
) -> bytes:
    return _mac(secret, _CLIENT_LABEL, client_nonce, server_nonce, binding)


def match_server(
    secrets: tuple[bytes, ...],
    proofs: list[bytes],
    client_nonce: bytes,
    server_nonce: bytes,
    binding: bytes = b"",
) -> bytes | None:
    """The client's secret that one of the server's proofs was made with, or None."""
    found = None
    for secret in secrets:
        expected = _mac(secret, _SERVER_LABEL, client_nonce, server_nonce, binding)
        for proof in proofs[:8]:
            # Compare every pair: the time taken must not say which secret matched.
            if hmac.compare_digest(expected, proof) and found is None:
                found = secret
    return found


def check_client(
    secrets: tuple[bytes, ...],
    proof: bytes,
    client_nonce: bytes,
    server_nonce: bytes,
    binding: bytes = b"",
) -> bool:
    ok = False
    for secret in secrets:
        expected = _mac(secret, _CLIENT_LABEL, client_nonce, server_nonce, binding)
        ok |= hmac.compare_digest(expected, proof)
    return ok


def nonce_ok(nonce: bytes) -> bool:
    return len(nonce) == NONCE_BYTES


def key_hash(agent_key: str) -> str:
    """What the center keeps of an agent's key (SHA-256, hex): enough to check a proof."""
    return hashlib.sha256(agent_key.encode()).hexdigest()


def identity_proof(agent_key_hash: str, session_nonce: bytes, name: str) -> bytes:
    """The agent's proof, on a connection a center dialled, that it is the agent `name` the
    center knows: an HMAC under its key's hash over this session's nonce (the center's, fresh
    each time), which neither a replay nor another host holding the cluster secret can make."""
    message = _IDENTITY_LABEL + session_nonce + name.encode()
    return hmac.new(agent_key_hash.encode(), message, hashlib.sha256).digest()


def identity_ok(agent_key_hash: str, session_nonce: bytes, name: str, proof: bytes) -> bool:
    return hmac.compare_digest(identity_proof(agent_key_hash, session_nonce, name), proof)
