"""Pure certificate facts: an agent's key and CSR, what a cluster certificate says (role, name,
serial, expiry), and whether a peer's certificate may do what it claims at a given instant."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import UTC, datetime

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from protocol.vocabulary import CertRole

RENEW_WHEN_LEFT = 1 / 3  # an agent's certificate is renewed once this share of its life is left
_PEM_END = b"-----END CERTIFICATE-----"


@dataclass(frozen=True, slots=True)
class CertInfo:
    """What the cluster reads off a certificate."""

    serial: str  # hex, as stored and shown
    name: str  # subject CN: the agent's or center's name
    role: str  # subject OU: a CertRole value, or what a foreign certificate says
    not_before_us: int
    not_after_us: int
    fingerprint: str  # SHA-256 of the DER, hex
    issuer_key_id: str  # the signing CA's key id (hex), "" when the certificate names none
    public_key_der: bytes


def us_to_datetime(at_us: int) -> datetime:
    return datetime.fromtimestamp(at_us / 1_000_000, tz=UTC)


def _us(moment: datetime) -> int:
    return int(moment.timestamp() * 1_000_000)


def new_key_pem() -> bytes:
    """A fresh P-256 private key, PEM (PKCS#8, unencrypted: the file's mode protects it)."""
    key = ec.generate_private_key(ec.SECP256R1())
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def load_key(key_pem: bytes) -> ec.EllipticCurvePrivateKey:
    key = serialization.load_pem_private_key(key_pem, password=None)
    if not isinstance(key, ec.EllipticCurvePrivateKey):
        raise ValueError("the cluster's keys are EC P-256 keys")
    return key


def subject(name: str, role: CertRole) -> x509.Name:
    return x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "UnitedCron"),
            x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, role.value),
            x509.NameAttribute(NameOID.COMMON_NAME, name),
        ]
    )


def make_csr(key_pem: bytes, name: str) -> str:
    """The CSR an agent sends with its registration: its name, its role, its public key."""
    builder = x509.CertificateSigningRequestBuilder().subject_name(subject(name, CertRole.AGENT))
    csr = builder.sign(load_key(key_pem), hashes.SHA256())
    return csr.public_bytes(serialization.Encoding.PEM).decode()


def _attribute(name: x509.Name, oid: x509.ObjectIdentifier) -> str:
    values = name.get_attributes_for_oid(oid)
    return str(values[0].value) if values else ""


def _public_der(cert_or_csr: x509.Certificate | x509.CertificateSigningRequest) -> bytes:
    return cert_or_csr.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def load_cert(data: bytes | str) -> x509.Certificate:
    """One certificate from PEM or DER; ValueError when it is neither."""
    raw = data.encode() if isinstance(data, str) else data
    if raw.lstrip().startswith(b"-----BEGIN"):
        return x509.load_pem_x509_certificate(raw)
    return x509.load_der_x509_certificate(raw)


def key_id(cert: x509.Certificate) -> str:
    """The certificate's own key id (its SubjectKeyIdentifier, else derived from its key)."""
    try:
        ski = cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
        return ski.digest.hex()
    except x509.ExtensionNotFound:
        return x509.SubjectKeyIdentifier.from_public_key(cert.public_key()).digest.hex()


def _issuer_key_id(cert: x509.Certificate) -> str:
    try:
        aki = cert.extensions.get_extension_for_class(x509.AuthorityKeyIdentifier).value
    except x509.ExtensionNotFound:
        return ""
    return aki.key_identifier.hex() if aki.key_identifier else ""


def inspect_cert(data: bytes | str) -> CertInfo:
    """What a certificate (PEM or DER) says; ValueError when it cannot be read."""
    cert = load_cert(data)
    return CertInfo(
        serial=format(cert.serial_number, "x"),
        name=_attribute(cert.subject, NameOID.COMMON_NAME),
        role=_attribute(cert.subject, NameOID.ORGANIZATIONAL_UNIT_NAME),
        not_before_us=_us(cert.not_valid_before_utc),
        not_after_us=_us(cert.not_valid_after_utc),
        fingerprint=hashlib.sha256(cert.public_bytes(serialization.Encoding.DER)).hexdigest(),
        issuer_key_id=_issuer_key_id(cert),
        public_key_der=_public_der(cert),
    )


def load_csr(csr_pem: str) -> x509.CertificateSigningRequest:
    return x509.load_pem_x509_csr(csr_pem.encode())


def csr_problem(csr_pem: str, name: str) -> str:
    """Why a CSR cannot be signed for the agent `name` ("" when it can): unreadable, not signed
    by its own key, another name, another role, or not a P-256 key."""
    try:
        csr = load_csr(csr_pem)
    except ValueError as exc:
        return f"csr: not a PEM certificate request ({exc})"
    try:
        if not csr.is_signature_valid:
            return "csr: its signature does not match its key"
    except InvalidSignature:
        return "csr: its signature does not match its key"
    return _csr_content_problem(csr, name)


def _csr_content_problem(csr: x509.CertificateSigningRequest, name: str) -> str:
    csr_name = _attribute(csr.subject, NameOID.COMMON_NAME)
    if csr_name != name:
        return f"csr: it names {csr_name[:128]!r}, not this agent {name!r}"
    role = _attribute(csr.subject, NameOID.ORGANIZATIONAL_UNIT_NAME)
    if role != CertRole.AGENT:
        return f"csr: it asks for the role {role[:32]!r}; an agent may ask only for 'agent'"
    key = csr.public_key()
    if not isinstance(key, ec.EllipticCurvePublicKey) or key.curve.name != "secp256r1":
        return "csr: the key must be EC P-256"
    return ""


def csr_public_der(csr_pem: str) -> bytes:
    return _public_der(load_csr(csr_pem))


def peer_problem(
    info: CertInfo | None,
    *,
    role: CertRole,
    name: str | None,
    revoked: frozenset[str],
    now_us: int,
) -> str:
    """Why a peer's certificate (already chained to a trusted CA by TLS) may not act as
    `role` named `name` (None: any name) at `now_us`; "" when it may."""
    if info is None:
        return "no certificate"
    if info.role != role:
        return f"a {info.role or 'role-less'} certificate cannot act as a {role}"
    if name is not None and info.name != name:
        return f"the certificate names {info.name[:128]!r}, not {name!r}"
    if info.serial in revoked:
        return f"certificate {info.serial} is revoked"
    if not info.not_before_us <= now_us <= info.not_after_us:
        return f"certificate {info.serial} is not valid now"
    return ""


def renewal_due(info: CertInfo, now_us: int) -> bool:
    """Whether a certificate is close enough to its end to be replaced."""
    life_us = info.not_after_us - info.not_before_us
    return info.not_after_us - now_us <= life_us * RENEW_WHEN_LEFT


def split_bundle(bundle: str) -> list[str]:
    """The certificates of a PEM bundle, each as its own PEM string."""
    parts = bundle.encode().split(_PEM_END)
    return [(part + _PEM_END).strip().decode() + "\n" for part in parts if b"BEGIN" in part]


def first_der(pem: bytes) -> bytes:
    """The DER of the first certificate in a PEM file or bundle (a chain starts with the leaf)."""
    return load_cert(split_bundle(pem.decode())[0]).public_bytes(serialization.Encoding.DER)


def channel_binding(cert_der: bytes) -> bytes:
    """RFC 5929 tls-server-end-point style: the server certificate's hash, mixed into the secret
    handshake, so a relay that ends TLS with a certificate of its own breaks the proofs."""
    return hashlib.sha256(cert_der).digest()
