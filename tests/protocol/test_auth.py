"""The sans-IO handshake maths: mutual HMAC proofs, labels, nonces and secret rotation."""

from __future__ import annotations

import pytest

from protocol import auth

OLD = b"old-cluster-secret-0123456789"
NEW = b"new-cluster-secret-9876543210"
OTHER = b"someone-elses-secret-00000000"
CN = bytes(range(32))  # client nonce
SN = bytes(range(32, 64))  # server nonce


def _handshake(server: tuple[bytes, ...], client: tuple[bytes, ...]) -> tuple[bytes | None, bool]:
    """Run both sides' maths; return (secret the client chose, whether the server accepts)."""
    chosen = auth.match_server(client, auth.server_proofs(server, CN, SN), CN, SN)
    if chosen is None:
        return None, False
    return chosen, auth.check_client(server, auth.client_proof(chosen, CN, SN), CN, SN)


@pytest.mark.parametrize(
    ("server", "client", "chosen"),
    [
        ((OLD,), (OLD,), OLD),
        ((NEW, OLD), (OLD,), OLD),  # server rotated first
        ((OLD,), (NEW, OLD), OLD),  # client rotated first
        ((NEW, OLD), (NEW, OLD), NEW),  # both rotated: the client's current secret wins
        ((NEW,), (OLD, NEW), NEW),  # rotation finished on the server
    ],
)
def test_shared_secret_authenticates_both_ways(
    server: tuple[bytes, ...], client: tuple[bytes, ...], chosen: bytes
) -> None:
    """Any secret held by both sides makes both proofs check, during and after a rotation."""
    assert _handshake(server, client) == (chosen, True)


@pytest.mark.parametrize(
    ("server", "client"),
    [((OLD,), (OTHER,)), ((NEW, OLD), (OTHER,)), ((OTHER,), (NEW, OLD)), ((OLD,), ())],
)
def test_no_shared_secret_fails(server: tuple[bytes, ...], client: tuple[bytes, ...]) -> None:
    """A client holding only secrets the server does not know rejects the server's proofs."""
    assert _handshake(server, client) == (None, False)


def test_client_proof_with_another_secret_is_refused() -> None:
    """The server refuses a client proof made with a secret it does not hold."""
    assert not auth.check_client((NEW, OLD), auth.client_proof(OTHER, CN, SN), CN, SN)


def test_same_secret_gives_the_same_proofs() -> None:
    """Both sides compute identical proofs from the same secret and nonces."""
    assert auth.server_proofs((OLD,), CN, SN) == auth.server_proofs((OLD,), CN, SN)
    assert auth.client_proof(OLD, CN, SN) == auth.client_proof(OLD, CN, SN)
    assert auth.client_proof(OLD, CN, SN) != auth.client_proof(OTHER, CN, SN)


def test_server_proof_cannot_be_replayed_as_client_proof() -> None:
    """The labels differ, so a server's proof reflected back is not a valid client proof."""
    (server_proof,) = auth.server_proofs((OLD,), CN, SN)
    assert server_proof != auth.client_proof(OLD, CN, SN)
    assert not auth.check_client((OLD,), server_proof, CN, SN)
    assert auth.match_server((OLD,), [auth.client_proof(OLD, CN, SN)], CN, SN) is None


@pytest.mark.parametrize(
    ("client_nonce", "server_nonce"),
    [(CN, bytes(32)), (bytes(32), SN), (SN, CN)],
    ids=["other server nonce", "other client nonce", "nonces swapped"],
)
def test_proof_is_bound_to_its_nonce_pair(client_nonce: bytes, server_nonce: bytes) -> None:
    """A proof made for one pair of nonces fails for any other pair, swapped ones included."""
    assert not auth.check_client((OLD,), auth.client_proof(OLD, CN, SN), client_nonce, server_nonce)
    proofs = auth.server_proofs((OLD,), CN, SN)
    assert auth.match_server((OLD,), proofs, client_nonce, server_nonce) is None


def test_server_proves_with_every_secret_it_holds() -> None:
    """A server in rotation sends one proof per secret, in the order it holds them."""
    proofs = auth.server_proofs((NEW, OLD), CN, SN)
    assert proofs == [auth.server_proofs((s,), CN, SN)[0] for s in (NEW, OLD)]


@pytest.mark.parametrize(
    "proof", [b"", b"\x00" * 32, b"short", b"\x00" * 64], ids=["empty", "zeros", "short", "long"]
)
def test_junk_proofs_are_refused(proof: bytes) -> None:
    """Proofs of any wrong length or content are refused on both sides without an exception."""
    assert not auth.check_client((OLD,), proof, CN, SN)
    assert auth.match_server((OLD,), [proof], CN, SN) is None


@pytest.mark.parametrize(("length", "ok"), [(0, False), (31, False), (32, True), (33, False)])
def test_nonce_length(length: int, ok: bool) -> None:
    """Only nonces of exactly NONCE_BYTES are accepted."""
    assert auth.nonce_ok(b"n" * length) is ok
