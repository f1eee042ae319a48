"""This agent's TLS: the built-in PKI's key (made here once), the certificate and CAs a center
hands over at registration, kept in the state dir; or the operator's files; or plain text."""

from __future__ import annotations

import os
import ssl
from pathlib import Path

import structlog

from agent.config import AgentConfig
from protocol import certs
from protocol.clock import now_us
from protocol.messages import Registered
from protocol.tls import LinkTls, TlsMaterial, material_context
from protocol.vocabulary import CertRole, TlsMode

log = structlog.get_logger("agent.tls")
TLS_DIR = "tls"
KEY_FILE, CERT_FILE, CA_FILE = "key.pem", "cert.pem", "ca.pem"


def _write_private(path: Path, data: bytes, mode: int) -> None:
    """Replace a file whole (write aside, fsync, rename): a crash leaves the old or the new."""
    aside = path.with_suffix(".new")
    fd = os.open(aside, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    with os.fdopen(fd, "wb") as file:
        file.write(data)
        file.flush()
        os.fsync(file.fileno())
    os.replace(aside, path)


def _read(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except FileNotFoundError:
        return b""


class AgentTls:
    """The TLS of this agent's listener and of its registrations."""

    def __init__(self, config: AgentConfig) -> None:
        self._config = config
        self.link = LinkTls(config.tls_mode)
        self._dir = config.agent_state_dir / TLS_DIR
        self._key_pem = b""
        self._public_der = b""
        self.csr = ""
        self.trusted = ""  # the cluster's CAs as last heard (PEM); "" before the first answer

    @property
    def waiting(self) -> bool:
        """Built-in PKI without a certificate yet: centers cannot connect until one comes."""
        return self.link.mode is TlsMode.BUILTIN and self.link.material is None

    def start(self) -> None:
        """Load or make the key, and whatever certificate and CAs were kept; OSError if the
        state dir cannot hold them."""
        config = self._config
        if self.link.mode is TlsMode.PLAINTEXT:
            log.warning(
                "agent.insecure_plaintext",
                reason="UNITEDCRON_INSECURE_PLAINTEXT=true: anyone on the path between a center "
                "and this agent can read its commands and inject their own",
            )
        elif self.link.mode is TlsMode.FILES:
            assert config.tls is not None
            self.link.use_files(config.tls)
        else:
            self._load_builtin()

    def _load_builtin(self) -> None:
        self._dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        key_path = self._dir / KEY_FILE
        self._key_pem = _read(key_path)
        if not self._key_pem:
            self._key_pem = certs.new_key_pem()
            _write_private(key_path, self._key_pem, 0o600)
        self.csr = certs.make_csr(self._key_pem, self._config.agent_name)
        self._public_der = certs.csr_public_der(self.csr)
        self.trusted = _read(self._dir / CA_FILE).decode()
        cert_pem = _read(self._dir / CERT_FILE)
        if cert_pem and self.trusted and not self._cert_problem(cert_pem.decode()):
            self.link.use(TlsMaterial(cert_pem, self._key_pem, self.trusted))

    def registration_context(self) -> ssl.SSLContext | None:
        """Towards a center's registration port: with our certificate once we have one, the
        center's checked against the CAs once we know them (before that, the secret handshake,
        bound to the certificate the center showed, is what tells a center from a relay)."""
        if self.link.mode is not TlsMode.BUILTIN or self.link.material is not None:
            return self.link.client_context()
        return material_context(None, self.trusted, server=False)

    def center_problem(self, der: bytes | None) -> str:
        """Why the peer is no center of this cluster ("" when it is, or when we cannot know
        yet: an enrolling agent trusts no CA so far)."""
        if self.link.mode is TlsMode.BUILTIN and not self.trusted:
            return ""
        return self.link.peer_problem(der, CertRole.CENTER, None, now_us())

    def _cert_problem(self, cert_pem: str) -> str:
        try:
            info = certs.inspect_cert(cert_pem)
        except ValueError as exc:
            return f"unreadable certificate: {exc}"
        if info.public_key_der != self._public_der:
            return "the certificate is not for this agent's key"
        return certs.peer_problem(
            info,
            role=CertRole.AGENT,
            name=self._config.agent_name,
            revoked=frozenset(),
            now_us=now_us(),
        )

    def accept(self, reply: Registered) -> None:
        """Keep what a center's answer brings: the CAs to trust, and our certificate."""
        if self.link.mode is not TlsMode.BUILTIN or not reply.ca:
            return
        material = self.link.material
        cert = reply.cert or (material.cert_pem.decode() if material else "")
        if reply.ca != self.trusted:
            _write_private(self._dir / CA_FILE, reply.ca.encode(), 0o644)
            self.trusted = reply.ca
            log.info("agent.trusted_cas", count=len(certs.split_bundle(reply.ca)))
        if not cert:
            return
        if problem := self._cert_problem(cert):
            log.warning("agent.certificate_refused", reason=problem)
            return
        if material and material.cert_pem.decode() == cert and material.trusted_pem == reply.ca:
            return
        _write_private(self._dir / CERT_FILE, cert.encode(), 0o644)
        self.link.use(TlsMaterial(cert.encode(), self._key_pem, self.trusted))
        info = certs.inspect_cert(cert)
        log.info("agent.certificate", serial=info.serial, not_after_us=info.not_after_us)
