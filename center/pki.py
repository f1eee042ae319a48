"""The cluster CA's pure operations: create it, seal its key under the cluster secret, sign an
agent's CSR and a center's own certificate, and decide when an agent needs a new certificate."""

from __future__ import annotations

import base64
import hashlib
import os
from dataclasses import dataclass

from cryptography import x509
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from cryptography.x509.oid import ExtendedKeyUsageOID

from protocol import certs
from protocol.vocabulary import CertRole

CA_LIFETIME_S = 10 * 365 * 86400
CENTER_CERT_LIFETIME_S = 30 * 86400
BACKDATE_S = 300  # hosts' clocks differ a little: a certificate is valid from 5 min ago
_SEAL_INFO = b"unitedcron/1 ca key seal"
_SEAL_VERSION = "v1"


class SealError(ValueError):
    """The CA key cannot be unsealed with any secret this center holds."""


@dataclass(frozen=True, slots=True)
class ClusterCa:
    """One CA of the cluster, its key unsealed (only in a center's memory)."""

    ca_id: int
    cert_pem: str
    key_pem: bytes
    state: str
    info: certs.CertInfo
    key_id: str  # what the certificates it signs name as their issuer's key


def _seal_key(secret: bytes) -> bytes:
    return HKDF(hashes.SHA256(), 32, salt=b"unitedcron", info=_SEAL_INFO).derive(secret)


def seal_id(secret: bytes) -> str:
    """Which secret sealed a key (a hash of the derived key: says nothing of the secret)."""
    return hashlib.sha256(_seal_key(secret)).hexdigest()[:16]


def seal(key_pem: bytes, secret: bytes) -> str:
    """`v1:<seal id>:<nonce+ciphertext, base64>`: AES-256-GCM under a key derived (HKDF) from
    the cluster secret, so the database never holds the CA key in plain text."""
    nonce = os.urandom(12)
    sealed = AESGCM(_seal_key(secret)).encrypt(nonce, key_pem, _SEAL_INFO)
    return f"{_SEAL_VERSION}:{seal_id(secret)}:{base64.b64encode(nonce + sealed).decode()}"


def unseal(sealed: str, secrets: tuple[bytes, ...]) -> tuple[bytes, bytes]:
    """(key PEM, the secret that sealed it); SealError when no secret held opens it."""
    version, _, rest = sealed.partition(":")
    wanted, _, blob = rest.partition(":")
    if version != _SEAL_VERSION:
        raise SealError(f"unknown seal version {version[:8]!r}")
    raw = base64.b64decode(blob)
    for secret in secrets:
        if seal_id(secret) != wanted:
            continue
        try:
            return AESGCM(_seal_key(secret)).decrypt(raw[:12], raw[12:], _SEAL_INFO), secret
        except InvalidTag:
            break
    raise SealError("the CA key was sealed with a cluster secret this center does not hold")


def _validity(
    builder: x509.CertificateBuilder, now_us: int, lifetime_s: int
) -> x509.CertificateBuilder:
    start_us = now_us - BACKDATE_S * 1_000_000
    end_us = now_us + lifetime_s * 1_000_000
    return builder.not_valid_before(certs.us_to_datetime(start_us)).not_valid_after(
        certs.us_to_datetime(end_us)
    )


def new_ca(cluster: str, now_us: int, lifetime_s: int = CA_LIFETIME_S) -> tuple[str, bytes]:
    """A self-signed cluster CA: (certificate PEM, key PEM)."""
    key_pem = certs.new_key_pem()
    key = certs.load_key(key_pem)
    name = x509.Name(
        [
            x509.NameAttribute(x509.NameOID.ORGANIZATION_NAME, "UnitedCron"),
            x509.NameAttribute(x509.NameOID.COMMON_NAME, f"UnitedCron cluster CA {cluster}"),
        ]
    )
    builder = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(_usage(ca=True), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
    )
    cert = _validity(builder, now_us, lifetime_s).sign(key, hashes.SHA256())
    return cert.public_bytes(serialization.Encoding.PEM).decode(), key_pem


def _usage(*, ca: bool) -> x509.KeyUsage:
    """A CA signs certificates (and CRLs); a leaf signs its handshakes and agrees keys."""
    return x509.KeyUsage(
        digital_signature=not ca,
        content_commitment=False,
        key_encipherment=False,
        data_encipherment=False,
        key_agreement=not ca,
        key_cert_sign=ca,
        crl_sign=ca,
        encipher_only=False,
        decipher_only=False,
    )


def issue(
    ca: ClusterCa,
    public_key: ec.EllipticCurvePublicKey,
    *,
    name: str,
    role: CertRole,
    now_us: int,
    lifetime_s: int,
) -> str:
    """A leaf certificate for `name` acting as `role` (its OU), signed by `ca`. Both roles dial
    and listen, so both usages are set; the role itself is what the peers check."""
    ca_cert = certs.load_cert(ca.cert_pem)
    ca_key = certs.load_key(ca.key_pem)
    builder = (
        x509.CertificateBuilder()
        .subject_name(certs.subject(name, role))
        .issuer_name(ca_cert.subject)
        .public_key(public_key)
        .serial_number(x509.random_serial_number())
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(_usage(ca=False), critical=True)
        .add_extension(
            x509.ExtendedKeyUsage(
                [ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]
            ),
            critical=False,
        )
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()),
            critical=False,
        )
    )
    cert = _validity(builder, now_us, lifetime_s).sign(ca_key, hashes.SHA256())
    return cert.public_bytes(serialization.Encoding.PEM).decode()


def sign_csr(ca: ClusterCa, csr_pem: str, name: str, now_us: int, lifetime_s: int) -> str:
    """An agent certificate for a CSR `certs.csr_problem` found nothing wrong with."""
    key = certs.load_csr(csr_pem).public_key()
    assert isinstance(key, ec.EllipticCurvePublicKey)
    return issue(ca, key, name=name, role=CertRole.AGENT, now_us=now_us, lifetime_s=lifetime_s)


def center_identity(ca: ClusterCa, name: str, now_us: int) -> tuple[bytes, bytes]:
    """A center's own (certificate PEM, key PEM), made at start and when it nears its end."""
    key_pem = certs.new_key_pem()
    public = certs.load_key(key_pem).public_key()
    cert_pem = issue(
        ca,
        public,
        name=name,
        role=CertRole.CENTER,
        now_us=now_us,
        lifetime_s=CENTER_CERT_LIFETIME_S,
    )
    return cert_pem.encode(), key_pem


def needs_new_cert(
    current: certs.CertInfo | None, csr_key_der: bytes, signing_key_id: str, now_us: int
) -> bool:
    """Whether an approved agent gets a new certificate at this registration: it has none, its
    key changed, it nears its end, or a rotation made another CA the signing one."""
    if current is None:
        return True
    return (
        current.public_key_der != csr_key_der
        or current.issuer_key_id != signing_key_id
        or certs.renewal_due(current, now_us)
    )
