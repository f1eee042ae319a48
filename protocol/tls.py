"""Optional mutual TLS under the secret handshake: contexts built from CA, cert and key files."""

from __future__ import annotations

import ssl
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True, slots=True)
class TlsFiles:
    """PEM files: the cluster's CA, and this process's certificate and key signed by it."""

    ca: Path
    cert: Path
    key: Path


def tls_files(ca: Path | None, cert: Path | None, key: Path | None) -> TlsFiles | None:
    """All three, or none (TLS off); ValueError naming what is missing when only some are set."""
    given = {"ca": ca, "cert": cert, "key": key}
    if not any(given.values()):
        return None
    missing = [name for name, path in given.items() if path is None]
    if missing:
        raise ValueError(f"TLS needs ca, cert and key; missing: {', '.join(missing)}")
    assert ca is not None and cert is not None and key is not None
    return TlsFiles(ca, cert, key)


def _context(purpose: ssl.Purpose, files: TlsFiles) -> ssl.SSLContext:
    ctx = ssl.create_default_context(purpose, cafile=str(files.ca))
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.load_cert_chain(str(files.cert), str(files.key))
    ctx.verify_mode = ssl.CERT_REQUIRED
    return ctx


def server_context(files: TlsFiles) -> ssl.SSLContext:
    """For a listening side: its own certificate, and a client certificate from the CA required."""
    return _context(ssl.Purpose.CLIENT_AUTH, files)


def client_context(files: TlsFiles) -> ssl.SSLContext:
    """For a dialing side: the peer's certificate must come from the cluster CA.

    Host names are not checked: centers dial agents by the address they advertise, often an
    IP. Who may connect is decided by the CA (and then by the cluster secret) instead.
    """
    ctx = _context(ssl.Purpose.SERVER_AUTH, files)
    ctx.check_hostname = False
    return ctx
