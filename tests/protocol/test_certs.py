"""The PKI's pure parts, table-driven: CSR checks, peer checks, renewal, sealing, signing."""

from __future__ import annotations

from dataclasses import replace

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization

from center import pki
from protocol import certs
from protocol.vocabulary import CertRole

NOW_US = 1_800_000_000_000_000
DAY_US = 86_400_000_000
SECRET, OLD_SECRET = b"cluster-secret-0123456789", b"old-cluster-secret-98765"


@pytest.fixture(scope="module")
def ca() -> pki.ClusterCa:
    cert_pem, key_pem = pki.new_ca("test", NOW_US)
    info = certs.inspect_cert(cert_pem)
    return pki.ClusterCa(
        1, cert_pem, key_pem, "active", info, certs.key_id(certs.load_cert(cert_pem))
    )


def _csr(name: str, role: CertRole = CertRole.AGENT) -> str:
    key = certs.load_key(certs.new_key_pem())
    builder = x509.CertificateSigningRequestBuilder().subject_name(certs.subject(name, role))
    return builder.sign(key, hashes.SHA256()).public_bytes(serialization.Encoding.PEM).decode()


@pytest.mark.parametrize(
    ("csr", "name", "problem"),
    [
        (lambda: certs.make_csr(certs.new_key_pem(), "web-1"), "web-1", ""),
        (lambda: certs.make_csr(certs.new_key_pem(), "web-2"), "web-1", "names 'web-2', not"),
        (lambda: _csr("web-1", CertRole.CENTER), "web-1", "role 'center'"),
        (lambda: "-----BEGIN CERTIFICATE REQUEST-----\nAAAA\n", "web-1", "not a PEM"),
        (lambda: "hello", "web-1", "not a PEM"),
    ],
    ids=["good", "another-name", "center-role", "broken-pem", "not-pem"],
)
def test_csr_problem(csr, name: str, problem: str) -> None:
    found = certs.csr_problem(csr(), name)
    assert (problem in found) if problem else found == ""


def _info(**changes: object) -> certs.CertInfo:
    base = certs.CertInfo(
        serial="ab12",
        name="web-1",
        role="agent",
        not_before_us=NOW_US - DAY_US,
        not_after_us=NOW_US + 89 * DAY_US,
        fingerprint="f" * 64,
        issuer_key_id="c" * 40,
        public_key_der=b"key",
    )
    return replace(base, **changes)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("info", "role", "name", "revoked", "problem"),
    [
        (_info(), CertRole.AGENT, "web-1", frozenset(), ""),
        (_info(), CertRole.AGENT, None, frozenset(), ""),
        (None, CertRole.AGENT, "web-1", frozenset(), "no certificate"),
        (_info(role="center"), CertRole.AGENT, "web-1", frozenset(), "a center certificate cannot"),
        (_info(), CertRole.CENTER, None, frozenset(), "an agent certificate cannot"[3:]),
        (_info(role=""), CertRole.CENTER, None, frozenset(), "role-less"),
        (_info(name="web-2"), CertRole.AGENT, "web-1", frozenset(), "names 'web-2', not 'web-1'"),
        (_info(), CertRole.AGENT, "web-1", frozenset({"ab12"}), "ab12 is revoked"),
        (_info(not_after_us=NOW_US - 1), CertRole.AGENT, "web-1", frozenset(), "not valid now"),
        (_info(not_before_us=NOW_US + 1), CertRole.AGENT, "web-1", frozenset(), "not valid now"),
    ],
    ids=[
        "ok",
        "any-name",
        "none",
        "center-as-agent",
        "agent-as-center",
        "no-role",
        "another-name",
        "revoked",
        "expired",
        "not-yet-valid",
    ],
)
def test_peer_problem(info, role, name, revoked, problem: str) -> None:
    found = certs.peer_problem(info, role=role, name=name, revoked=revoked, now_us=NOW_US)
    assert (problem in found) if problem else found == ""


@pytest.mark.parametrize(
    ("left_days", "due"), [(89, False), (31, False), (29, True), (0, True), (-1, True)]
)
def test_renewal_due_in_the_last_third(left_days: int, due: bool) -> None:
    info = _info(
        not_before_us=NOW_US - (90 - left_days) * DAY_US, not_after_us=NOW_US + left_days * DAY_US
    )
    assert certs.renewal_due(info, NOW_US) is due


def test_seal_opens_only_with_a_secret_held() -> None:
    sealed = pki.seal(b"-----BEGIN PRIVATE KEY-----", OLD_SECRET)
    assert "BEGIN" not in sealed and sealed.startswith("v1:")
    assert pki.unseal(sealed, (SECRET, OLD_SECRET)) == (b"-----BEGIN PRIVATE KEY-----", OLD_SECRET)
    with pytest.raises(pki.SealError, match="does not hold"):
        pki.unseal(sealed, (SECRET,))
    tampered = sealed[:-6] + ("AAAA==" if not sealed.endswith("AAAA==") else "BBBB==")
    with pytest.raises(pki.SealError):
        pki.unseal(tampered, (OLD_SECRET,))
    with pytest.raises(pki.SealError, match="version"):
        pki.unseal("v9:x:y", (SECRET,))


def test_signed_agent_certificate_says_role_name_and_issuer(ca: pki.ClusterCa) -> None:
    key_pem = certs.new_key_pem()
    csr = certs.make_csr(key_pem, "web-1")
    info = certs.inspect_cert(pki.sign_csr(ca, csr, "web-1", NOW_US, 90 * 86400))
    assert (info.role, info.name, info.issuer_key_id) == ("agent", "web-1", ca.key_id)
    assert info.public_key_der == certs.csr_public_der(csr)
    assert info.not_after_us - NOW_US == 90 * DAY_US
    center_cert, _ = pki.center_identity(ca, "center-a", NOW_US)
    assert certs.inspect_cert(center_cert).role == "center"


@pytest.mark.parametrize(
    ("current", "same_key", "same_ca", "due"),
    [
        (False, True, True, True),  # no certificate yet
        (True, True, True, False),  # nothing changed
        (True, False, True, True),  # the agent made a new key
        (True, True, False, True),  # a rotation made another CA the signing one
    ],
)
def test_needs_new_cert(current: bool, same_key: bool, same_ca: bool, due: bool) -> None:
    info = _info() if current else None
    key = b"key" if same_key else b"other"
    assert pki.needs_new_cert(info, key, "c" * 40 if same_ca else "d" * 40, NOW_US) is due
    near_end = _info(not_before_us=NOW_US - 80 * DAY_US, not_after_us=NOW_US + DAY_US)
    assert pki.needs_new_cert(near_end, b"key", "c" * 40, NOW_US)


def test_bundle_splits_and_binding_is_the_certificate_hash(ca: pki.ClusterCa) -> None:
    other, _ = pki.new_ca("other", NOW_US)
    parts = certs.split_bundle(ca.cert_pem + other)
    assert parts == [ca.cert_pem, other]
    der = certs.first_der((ca.cert_pem + other).encode())
    assert certs.channel_binding(der) == bytes.fromhex(certs.inspect_cert(ca.cert_pem).fingerprint)
