"""The TLS of a process's links: contexts from the built-in PKI's material or the operator's own
files, swapped whole when a certificate or the trusted CAs change, and the peer checks on top."""

from __future__ import annotations

import ssl
import tempfile
from dataclasses import dataclass
from pathlib import Path

from protocol import certs
from protocol.errors import TlsNotReady
from protocol.vocabulary import CertRole, TlsMode


@dataclass(frozen=True, slots=True)
class TlsFiles:
    """PEM files of an operator's own PKI: its CA, and this process's certificate and key."""

    ca: Path
    cert: Path
    key: Path


@dataclass(frozen=True, slots=True)
class TlsMaterial:
    """A process's built-in PKI material: its certificate and key, and the CAs it trusts."""

    cert_pem: bytes
    key_pem: bytes
    trusted_pem: str


def tls_files(ca: Path | None, cert: Path | None, key: Path | None) -> TlsFiles | None:
    """All three, or none (the built-in PKI); ValueError naming what is missing otherwise."""
    given = {"ca": ca, "cert": cert, "key": key}
    if not any(given.values()):
        return None
    missing = [name for name, path in given.items() if path is None]
    if missing:
        raise ValueError(f"TLS needs ca, cert and key; missing: {', '.join(missing)}")
    assert ca is not None and cert is not None and key is not None
    return TlsFiles(ca, cert, key)


def _base(purpose: ssl.Purpose, minimum: ssl.TLSVersion) -> ssl.SSLContext:
    ctx = ssl.create_default_context(purpose)
    ctx.minimum_version = minimum
    # Centers dial agents by the address they advertise, often an IP: who a peer is comes from
    # the certificate's role and name (checked after the handshake), not from a host name.
    ctx.check_hostname = False
    return ctx


def _load_chain(ctx: ssl.SSLContext, cert_pem: bytes, key_pem: bytes) -> None:
    """load_cert_chain reads only files: a private directory that lives for the call."""
    with tempfile.TemporaryDirectory(prefix="unitedcron-tls-") as folder:
        cert_path, key_path = Path(folder) / "cert.pem", Path(folder) / "key.pem"
        cert_path.write_bytes(cert_pem)
        key_path.touch(mode=0o600)
        key_path.write_bytes(key_pem)
        ctx.load_cert_chain(str(cert_path), str(key_path))


def material_context(
    material: TlsMaterial | None, trusted_pem: str, *, server: bool, peer_cert: bool = True
) -> ssl.SSLContext:
    """TLS 1.3 pinned to `trusted_pem` (the cluster's CAs). Without `material` no certificate
    of ours is shown; without `trusted_pem` the peer's is not checked (only an enrolling agent
    does that, and the secret handshake's channel binding covers it). A server asks a client
    for a certificate, and requires one unless `peer_cert` is False (the registration port,
    where agents enrol)."""
    purpose = ssl.Purpose.CLIENT_AUTH if server else ssl.Purpose.SERVER_AUTH
    ctx = _base(purpose, ssl.TLSVersion.TLSv1_3)
    if material is not None:
        _load_chain(ctx, material.cert_pem, material.key_pem)
    if trusted_pem:
        ctx.load_verify_locations(cadata=trusted_pem)
        ctx.verify_mode = ssl.CERT_REQUIRED if peer_cert or not server else ssl.CERT_OPTIONAL
    else:
        ctx.verify_mode = ssl.CERT_NONE
    return ctx


def files_context(files: TlsFiles, *, server: bool) -> ssl.SSLContext:
    """The operator's PKI: a certificate from its CA required of the peer, both ways."""
    purpose = ssl.Purpose.CLIENT_AUTH if server else ssl.Purpose.SERVER_AUTH
    ctx = _base(purpose, ssl.TLSVersion.TLSv1_2)
    ctx.load_verify_locations(cafile=str(files.ca))
    ctx.load_cert_chain(str(files.cert), str(files.key))
    ctx.verify_mode = ssl.CERT_REQUIRED
    return ctx


class LinkTls:
    """The TLS this process's links use now. Listeners and dialers ask it for a context per
    connection, so a renewed certificate or a rotated CA applies to the next connection
    without a restart; connections already open keep theirs."""

    def __init__(self, mode: TlsMode, *, enrolment_port: bool = False) -> None:
        self.mode = mode
        self._enrolment_port = enrolment_port  # a server that lets certificate-less agents in
        self._server: ssl.SSLContext | None = None
        self._client: ssl.SSLContext | None = None
        self.binding = b""  # channel binding of our own certificate, for the server side
        self.material: TlsMaterial | None = None
        self.revoked: frozenset[str] = frozenset()

    def use_files(self, files: TlsFiles) -> None:
        self._server = files_context(files, server=True)
        self._client = files_context(files, server=False)
        self.binding = certs.channel_binding(certs.first_der(files.cert.read_bytes()))

    def use(self, material: TlsMaterial) -> None:
        """Built-in PKI: our certificate and the trusted CAs, from now on."""
        peer_cert = not self._enrolment_port
        self._server = material_context(
            material, material.trusted_pem, server=True, peer_cert=peer_cert
        )
        self._client = material_context(material, material.trusted_pem, server=False)
        self.binding = certs.channel_binding(certs.first_der(material.cert_pem))
        self.material = material

    def server_context(self) -> ssl.SSLContext | None:
        """None for plain text; TlsNotReady while the built-in PKI has given us no certificate."""
        if self.mode is TlsMode.PLAINTEXT:
            return None
        if self._server is None:
            raise TlsNotReady("no certificate yet")
        return self._server

    def client_context(self) -> ssl.SSLContext | None:
        if self.mode is TlsMode.PLAINTEXT:
            return None
        if self._client is None:
            raise TlsNotReady("no certificate yet")
        return self._client

    def peer_problem(self, der: bytes | None, role: CertRole, name: str | None, now_us: int) -> str:
        """Why the peer's certificate may not act as `role` named `name` ("" when it may).
        Only the built-in PKI's certificates say role and name; an operator's PKI decides
        alone who holds its certificates."""
        if self.mode is not TlsMode.BUILTIN:
            return ""
        try:
            info = certs.inspect_cert(der) if der else None
        except ValueError as exc:
            return f"unreadable certificate: {exc}"
        return certs.peer_problem(info, role=role, name=name, revoked=self.revoked, now_us=now_us)
