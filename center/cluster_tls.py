"""A center's side of the cluster's TLS: the trusted CAs, its own certificate, and the agent
certificates it signs at registration (built-in PKI); or the operator's files; or plain text."""

from __future__ import annotations

from dataclasses import dataclass

import structlog
from sqlalchemy.ext.asyncio import AsyncEngine

from center import pki
from center.config import CenterConfig
from center.store import pki as pki_store
from protocol import certs
from protocol.clock import now_us
from protocol.messages import Register
from protocol.tls import LinkTls, TlsMaterial
from protocol.vocabulary import AgentStatus, CaState, TlsMode

log = structlog.get_logger("center.tls")
APPROVED = (AgentStatus.ENABLED, AgentStatus.UNREACHABLE)


@dataclass(frozen=True, slots=True)
class Enrolment:
    """What a registration's answer carries of the PKI, and the certificate to store."""

    ca: str = ""
    cert: str = ""
    note: str = ""
    issued: pki_store.IssuedCert | None = None
    refused: str = ""  # a CSR refused as bad input (its reason), "" otherwise


async def create_ca(engine: AsyncEngine, secrets: tuple[bytes, ...], cluster: str) -> bool:
    """Create the cluster's first CA unless one exists; True when this call made it."""
    if await pki_store.load_cas(engine):
        return False
    at_us = now_us()
    cert_pem, key_pem = pki.new_ca(cluster, at_us)
    info = certs.inspect_cert(cert_pem)
    key_id = certs.key_id(certs.load_cert(cert_pem))
    row = pki_store.NewCa(cert_pem, pki.seal(key_pem, secrets[0]), key_id, info.not_after_us)
    made = await pki_store.create_first_ca(engine, row, at_us)
    if made:
        log.info("pki.ca_created", key_id=row.key_id, not_after_us=info.not_after_us)
    return made


class CenterTls:
    """The TLS of this center's links, kept current from the database (CA rotation, renewal)."""

    def __init__(self, config: CenterConfig) -> None:
        self._config = config
        self.link = LinkTls(config.tls_mode, enrolment_port=True)
        self._cas: dict[str, pki.ClusterCa] = {}  # key id -> CA, oldest first
        self._signer_of_own = ""  # key id of the CA that signed our own certificate

    @property
    def mode(self) -> TlsMode:
        return self.link.mode

    async def start(self, engine: AsyncEngine) -> None:
        c = self._config
        if self.mode is TlsMode.PLAINTEXT:
            log.warning(
                "center.insecure_plaintext",
                reason="UNITEDCRON_INSECURE_PLAINTEXT=true: links are neither encrypted nor "
                "authenticated per frame; anyone on the path can read and inject commands",
            )
        elif self.mode is TlsMode.FILES:
            assert c.tls is not None
            self.link.use_files(c.tls)
        else:
            await create_ca(engine, c.secret, c.center_name)
            await self.refresh(engine)

    async def refresh(self, engine: AsyncEngine) -> None:
        """Follow the database: CAs added, retired or resealed, revocations; renew our own."""
        if self.mode is not TlsMode.BUILTIN:
            return
        at_us = now_us()
        self.link.revoked = await pki_store.revoked_serials(engine, at_us)
        rows = await pki_store.load_cas(engine)
        if [r.key_id for r in rows] != list(self._cas):
            self._cas = {row.key_id: await self._unseal(engine, row, at_us) for row in rows}
        signer = next(iter(self._cas.values()))  # the oldest trusted: every agent knows it
        material = self.link.material
        if (
            material is None
            or material.trusted_pem != self.bundle
            or signer.key_id != self._signer_of_own
            or certs.renewal_due(certs.inspect_cert(material.cert_pem), at_us)
        ):
            cert_pem, key_pem = pki.center_identity(signer, self._config.center_name, at_us)
            self.link.use(TlsMaterial(cert_pem, key_pem, self.bundle))
            self._signer_of_own = signer.key_id
            log.info("pki.center_certificate", serial=certs.inspect_cert(cert_pem).serial)

    async def _unseal(self, engine: AsyncEngine, row: pki_store.CaRow, at_us: int) -> pki.ClusterCa:
        secrets = self._config.secret
        key_pem, secret = pki.unseal(row.key_sealed, secrets)
        if secret != secrets[0]:  # sealed under a secret being rotated out: seal it anew
            await pki_store.reseal_ca(engine, row.ca_id, pki.seal(key_pem, secrets[0]), at_us)
        info = certs.inspect_cert(row.cert_pem)
        return pki.ClusterCa(row.ca_id, row.cert_pem, key_pem, row.state, info, row.key_id)

    @property
    def bundle(self) -> str:
        """Every trusted CA, PEM: what agents are told to trust."""
        return "".join(ca.cert_pem for ca in self._cas.values())

    @property
    def trusted_key_ids(self) -> list[str]:
        return list(self._cas)

    def signing_ca(self) -> pki.ClusterCa:
        return next(ca for ca in self._cas.values() if ca.state == CaState.ACTIVE)

    def enrol(self, reg: Register, status: int, cert_on_file: str) -> Enrolment:
        """The PKI part of a registration's answer: the CAs, and the agent's certificate (a new
        one signed when it is approved and has none, a new key, or one near its end)."""
        if self.mode is not TlsMode.BUILTIN:
            return Enrolment()
        bundle = self.bundle
        if not reg.csr:
            return Enrolment(ca=bundle, note="no certificate request sent")
        if problem := certs.csr_problem(reg.csr, reg.name):
            return Enrolment(ca=bundle, note=problem, refused=problem)
        if status not in APPROVED:
            return Enrolment(ca=bundle, note="waiting for an operator to approve this agent")
        at_us, ca = now_us(), self.signing_ca()
        current = certs.inspect_cert(cert_on_file) if cert_on_file else None
        if not pki.needs_new_cert(current, certs.csr_public_der(reg.csr), ca.key_id, at_us):
            return Enrolment(ca=bundle, cert=cert_on_file)
        lifetime_s = self._config.center_agent_cert_days * 86400
        cert_pem = pki.sign_csr(ca, reg.csr, reg.name, at_us, lifetime_s)
        info = certs.inspect_cert(cert_pem)
        issued = pki_store.IssuedCert(cert_pem, info.serial, info.not_after_us, info.fingerprint)
        log.info("pki.agent_certificate", agent=reg.name, serial=info.serial)
        return Enrolment(ca=bundle, cert=cert_pem, issued=issued)
