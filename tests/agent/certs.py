"""Test certificates made by `openssl`: a cluster CA with a center and an agent, and a rogue CA."""

from __future__ import annotations

import subprocess
from dataclasses import dataclass
from pathlib import Path

from protocol.tls import TlsFiles

OPENSSL_TIMEOUT_S = 30
LEAF_EXTENSIONS = (
    "basicConstraints=critical,CA:FALSE\n"
    "keyUsage=critical,digitalSignature\n"
    "extendedKeyUsage=serverAuth,clientAuth\n"
    "subjectAltName=IP:127.0.0.1,DNS:localhost\n"
)


@dataclass(frozen=True)
class Certs:
    """TLS files for a center and an agent of the cluster, and a rogue peer of another CA
    (it trusts the cluster CA, so only its own certificate gives it away)."""

    center: TlsFiles
    agent: TlsFiles
    rogue: TlsFiles


def _openssl(*args: str | Path) -> None:
    subprocess.run(
        ["openssl", *map(str, args)], check=True, capture_output=True, timeout=OPENSSL_TIMEOUT_S
    )


def _key_args(key: Path) -> list[str | Path]:
    return ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-keyout", key]


def make_ca(directory: Path, name: str) -> tuple[Path, Path]:
    """A self-signed CA: (certificate, key)."""
    cert, key = directory / f"{name}.pem", directory / f"{name}.key"
    _openssl("req", "-x509", *_key_args(key), "-out", cert, "-subj", f"/CN={name}", "-days", "2")
    return cert, key


def make_leaf(directory: Path, name: str, ca: tuple[Path, Path]) -> tuple[Path, Path]:
    """A certificate and key for `name`, signed by `ca`, usable as client and server."""
    cert, key, csr = (directory / f"{name}{ext}" for ext in (".pem", ".key", ".csr"))
    extensions = directory / f"{name}.ext"
    extensions.write_text(LEAF_EXTENSIONS)
    _openssl("req", "-new", *_key_args(key), "-out", csr, "-subj", f"/CN={name}")
    _openssl(
        "x509",
        "-req",
        "-in",
        csr,
        "-CA",
        ca[0],
        "-CAkey",
        ca[1],
        "-CAcreateserial",
        "-out",
        cert,
        "-days",
        "2",
        "-extfile",
        extensions,
    )
    return cert, key


def make_certs(directory: Path) -> Certs:
    """The cluster CA with a `center` and an `agent` certificate, and a rogue CA's `rogue`."""
    directory.mkdir(parents=True, exist_ok=True)
    ca = make_ca(directory, "cluster-ca")
    rogue_ca = make_ca(directory, "rogue-ca")
    center = make_leaf(directory, "center", ca)
    agent = make_leaf(directory, "agent", ca)
    rogue = make_leaf(directory, "rogue", rogue_ca)
    return Certs(
        center=TlsFiles(ca[0], *center),
        agent=TlsFiles(ca[0], *agent),
        rogue=TlsFiles(ca[0], *rogue),
    )
