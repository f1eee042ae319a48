"""Mutual TLS under the handshake: a cluster on certificates from its CA works; others are out."""

from __future__ import annotations

import asyncio
import subprocess
from pathlib import Path

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from center.tables import task_process
from protocol import statuses
from tests.integration.cluster import (
    add_rule,
    agent_row,
    approve_agent,
    poll,
    running_agent,
    running_center,
    runs_of,
)

pytestmark = pytest.mark.timeout(90)


def _openssl(*args: str) -> None:
    subprocess.run(["openssl", *args], check=True, capture_output=True, timeout=30)


def make_ca(folder: Path, name: str) -> dict[str, Path]:
    """A CA and one certificate signed by it (EC P-256, valid a day), as PEM files."""
    folder.mkdir(parents=True, exist_ok=True)
    ca, ca_key = folder / "ca.pem", folder / "ca.key"
    cert, key, csr = folder / "node.pem", folder / "node.key", folder / "node.csr"
    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
    _openssl(
        "req",
        "-x509",
        *ec,
        "-keyout",
        str(ca_key),
        "-out",
        str(ca),
        "-days",
        "1",
        "-subj",
        f"/CN={name} CA",
    )
    _openssl("req", *ec, "-keyout", str(key), "-out", str(csr), "-subj", f"/CN={name} node")
    _openssl(
        "x509",
        "-req",
        "-in",
        str(csr),
        "-CA",
        str(ca),
        "-CAkey",
        str(ca_key),
        "-CAcreateserial",
        "-out",
        str(cert),
        "-days",
        "1",
    )
    return {"ca": ca, "cert": cert, "key": key}


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict[str, Path]]:
    root = tmp_path_factory.mktemp("pki")
    return {
        "cluster": make_ca(root / "cluster", "cluster"),
        "rogue": make_ca(root / "rogue", "rogue"),
    }


def _center_tls(files: dict[str, Path]) -> dict[str, Path]:
    return {f"center_tls_{k}": v for k, v in files.items()}


def _agent_tls(files: dict[str, Path]) -> dict[str, Path]:
    return {f"agent_tls_{k}": v for k, v in files.items()}


async def test_a_tls_cluster_runs_rules(db_url: str, engine: AsyncEngine, tmp_path: Path, pki):
    """Center and agent on certificates from the cluster CA register, connect and run a rule."""
    cluster = pki["cluster"]
    async with (
        running_center(db_url, **_center_tls(cluster)) as center,
        running_agent(tmp_path, center.registration_port, **_agent_tls(cluster)),
    ):
        aid = await approve_agent(engine, "agent-1")
        task_id = await add_rule(engine, [aid], execute="/usr/bin/id -un")
        [row, *_] = await poll(
            lambda: runs_of(engine, task_id, task_process.c.status == statuses.SUCCESS), 15
        )
    assert row["result"] == "nobody\n"


@pytest.mark.parametrize("agent_pki", ["plain", "rogue"])
async def test_agents_without_a_cluster_certificate_never_register(
    db_url: str, engine: AsyncEngine, tmp_path: Path, pki, agent_pki: str
):
    """A plain-TCP agent, or one with a certificate from another CA, gets nowhere (right secret)."""
    agent_tls = {} if agent_pki == "plain" else _agent_tls(pki["rogue"])
    async with (
        running_center(db_url, **_center_tls(pki["cluster"])) as center,
        running_agent(tmp_path, center.registration_port, **agent_tls),
    ):
        # A negative: nothing announces that no row appears. The agent tries at once, then
        # every second while it has never succeeded.
        await asyncio.sleep(3)
        assert await agent_row(engine, "agent-1") is None
