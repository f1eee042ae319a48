"""Alerts reach public addresses only, unless the operator's UNITEDCRON_ALERT_ALLOWED_NETWORKS
lists the network: checked when a channel is saved (admin) and when a notification is sent
(center, which connects to the very address it checked)."""

from __future__ import annotations

import asyncio
import ipaddress
import socket
import ssl
import subprocess
from pathlib import Path
from typing import Any

import httpx
import pydantic
import pytest
import structlog
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine

from admin.config import AdminConfig
from center.alert_loop import AlertLoop
from center.alerts import pinned
from center.alerts.senders import Destination, SmtpSettings, TargetRefused, deliver
from center.alerts.targets import parse_networks, target_problem
from center.config import CenterConfig
from center.metrics import CenterMetrics
from center.tables import alert_channel
from tests.admin.seed import World
from tests.admin.test_pages import _csrf, _session_client
from tests.integration.cluster import SECRET, add_group, center_config, now_us
from tests.ops.receivers import LOCAL_TARGETS, webhook_receiver
from tests.ops.test_alert_isolation import _queue
from tests.ops.test_alerts import add_channel, notifications

URL = "/api/v1/alert-channels"
NONE: tuple[Any, ...] = ()
LAN = parse_networks("10.1.0.0/16, fd00:1::/32")


@pytest.mark.parametrize(
    ("url", "resolved", "allowed", "kind"),
    [
        ("https://hooks.example.com/x", ["93.184.216.34"], NONE, None),
        ("https://hooks.example.com/x", ["2606:2800:220:1::248"], NONE, None),
        ("https://hooks.example.com/x", [], NONE, None),  # not resolvable now: checked at send
        ("http://127.0.0.1:9/x", [], NONE, "loopback"),  # an address is checked as it is
        ("http://127.0.0.2/x", ["93.184.216.34"], NONE, "loopback"),  # never what DNS says
        ("http://localhost/x", ["127.0.0.1"], NONE, "loopback"),
        ("http://[::1]/x", [], NONE, "loopback"),
        ("http://10.1.2.3/x", [], NONE, "private"),
        ("http://192.168.1.1/x", [], NONE, "private"),
        ("http://[fd00::1]/x", [], NONE, "private"),
        ("http://169.254.169.254/latest", [], NONE, "link-local"),  # cloud metadata
        ("http://[fe80::1]/x", [], NONE, "link-local"),
        ("http://h.example/x", ["fe80::1%eth0"], NONE, "link-local"),
        ("http://0.0.0.0/x", [], NONE, "unspecified"),
        ("http://[::]/x", [], NONE, "unspecified"),
        ("http://224.0.0.1/x", [], NONE, "multicast"),
        ("http://[ff02::1]/x", [], NONE, "multicast"),
        ("http://[::ffff:127.0.0.1]/x", [], NONE, "loopback"),  # IPv4-mapped
        ("http://[::ffff:10.0.0.1]/x", [], NONE, "private"),
        ("http://[2002:7f00:1::]/x", [], NONE, "loopback"),  # 6to4 of 127.0.0.1
        ("http://100.64.0.1/x", [], NONE, "non-public"),  # shared (carrier NAT)
        ("http://h.example/x", ["93.184.216.34", "10.0.0.1"], NONE, "private"),  # any one
        ("http://h.example/x", ["not-an-ip"], NONE, "not an IP"),
        ("http://10.1.2.3/x", [], LAN, None),  # the operator allows this network
        ("http://h.example/x", ["10.1.2.3"], LAN, None),
        ("http://[::ffff:10.1.2.3]/x", [], LAN, None),
        ("http://[fd00:1::5]/x", [], LAN, None),
        ("http://10.2.0.1/x", [], LAN, "private"),  # but not the next one
        ("http://127.0.0.1/x", [], LAN, "loopback"),
    ],
)
def test_target_problem(url, resolved, allowed, kind):
    """Every resolved address (or the URL's own) must be public or in an allowed network;
    the reason names the host, the address, what it is and the setting that would allow it."""
    problem = target_problem(url, resolved, allowed)
    if kind is None:
        assert problem is None
    else:
        assert problem is not None and kind in problem
        if kind != "not an IP":
            assert "UNITEDCRON_ALERT_ALLOWED_NETWORKS" in problem


@pytest.mark.parametrize("text", ["10.0.0.0/33", "fd00::/8, nonsense", "10.0.0.0/8;"])
def test_a_bad_network_stops_the_process_naming_the_setting(text: str):
    """The center and the admin refuse a value that is not a list of networks."""
    for make in (
        lambda: CenterConfig(secret=SECRET, alert_allowed_networks=text),
        lambda: AdminConfig(alert_allowed_networks=text),
    ):
        with pytest.raises(pydantic.ValidationError, match="alert_allowed_networks"):
            make()
    config = CenterConfig(secret=SECRET, alert_allowed_networks="10.0.0.0/8, 127.0.0.1")
    assert config.alert_networks == (
        ipaddress.ip_network("10.0.0.0/8"),
        ipaddress.ip_network("127.0.0.1/32"),
    )


# ------------------------------------------------------------ saving, in the admin


async def _channels(engine: AsyncEngine) -> int:
    async with engine.connect() as conn:
        return int((await conn.execute(select(func.count()).select_from(alert_channel))).scalar())


@pytest.mark.parametrize(
    "target", ["http://127.0.0.1:9/x", "http://localhost/x", "https://10.1.2.3/x"]
)
async def test_the_api_refuses_an_internal_target_and_stores_nothing(
    api: httpx.AsyncClient, world: World, app: Any, target: str
):
    """Create and update answer 422 naming `target` and why; nothing is stored or changed."""
    auth = world.auth("admin")
    before = await _channels(app.state.engine)
    body = {"gid": world.alpha, "name": "inside", "target": target}
    answer = await api.post(URL, json=body, headers=auth)
    assert answer.status_code == 422, answer.text
    error = answer.json()["error"]
    assert error["field"] == "target" and "UNITEDCRON_ALERT_ALLOWED_NETWORKS" in error["reason"]
    assert await _channels(app.state.engine) == before
    made = await api.post(URL, json=body | {"target": "https://hooks.example/x"}, headers=auth)
    patched = await api.patch(f"{URL}/{made.json()['id']}", json={"target": target}, headers=auth)
    assert patched.status_code == 422 and patched.json()["error"]["field"] == "target"
    seen = await api.get(f"{URL}/{made.json()['id']}", headers=auth)
    assert seen.json()["target"] == "https://hooks.example/x"


async def test_the_form_refuses_an_internal_target(app: Any, world: World):
    """The page answers 422 with the reason shown, and stores nothing."""
    before = await _channels(app.state.engine)
    async with await _session_client(app, world, "admin") as client:
        form = {
            "csrf": await _csrf(client, "/alerts"),
            "gid": str(world.alpha),
            "name": "metadata",
            "kind": "webhook",
            "target": "http://169.254.169.254/latest",
            "events": ["run_failed"],
            "throttle_s": "600",
            "grace_s": "60",
            "status": "1",
        }
        answer = await client.post("/alerts", data=form)
    assert answer.status_code == 422
    assert "link-local" in answer.text and "UNITEDCRON_ALERT_ALLOWED_NETWORKS" in answer.text
    assert await _channels(app.state.engine) == before


# ------------------------------------------------------------ sending, in the center


async def test_the_center_refuses_to_send_to_loopback_with_a_log_line_and_a_count(
    engine: AsyncEngine, db_url: str
):
    """A channel stored before the check (or by hand) to 127.0.0.1: nothing is sent, the
    notification keeps the reason, one `alert.target_refused` line, the counter goes up."""
    gid = await add_group(engine)
    metrics = CenterMetrics()
    async with webhook_receiver() as hook:
        channel = await add_channel(engine, gid, hook.url)
        await _queue(engine, channel, 1, now_us())
        loop = AlertLoop(engine, center_config(db_url), metrics=metrics)
        with structlog.testing.capture_logs() as logs:
            assert await loop.deliver_due(2**62) == 0
        assert hook.received.empty()
    refused = [e for e in logs if e["event"] == "alert.target_refused"]
    assert len(refused) == 1 and "127.0.0.1, a loopback address" in refused[0]["reason"]
    [row] = await notifications(engine)
    assert row["status"] == "pending" and "loopback" in row["error"]
    assert metrics.registry.get_sample_value("unitedcron_alert_targets_refused_total") == 1


async def test_the_name_is_resolved_once_and_the_checked_address_is_the_one_connected_to(
    monkeypatch: pytest.MonkeyPatch,
):
    """DNS rebinding: the name is looked up once; the POST goes to that address, with the
    URL's own host name in the Host header."""
    lookups: list[str] = []

    async def resolver(host: str, port: int, **_: Any) -> list[Any]:
        lookups.append(host)
        if len(lookups) > 1:
            raise AssertionError("a second lookup could answer differently")
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", ("127.0.0.1", port))]

    monkeypatch.setattr(asyncio.get_running_loop(), "getaddrinfo", resolver)
    data = {"event": "run_failed", "state": "test", "summary": "s"}
    async with webhook_receiver() as hook:
        url = f"http://hooks.rebind.example:{hook.port}/hook"
        to = Destination("webhook", url, "k" * 20)
        with pytest.raises(TargetRefused, match=r"resolves to 127\.0\.0\.1"):
            await deliver(to, data, SmtpSettings(host=""), 5)
        lookups.clear()
        allowed = parse_networks(LOCAL_TARGETS["alert_allowed_networks"])
        await deliver(to, data, SmtpSettings(host=""), 5, allowed)
        got = await hook.next(10)
    assert lookups == ["hooks.rebind.example"]
    assert got.headers["host"] == f"hooks.rebind.example:{hook.port}"


def _self_signed(tmp_path: Path, name: str) -> tuple[Path, Path]:
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
         "-nodes", "-days", "1", "-subj", f"/CN={name}", "-addext", f"subjectAltName=DNS:{name}",
         "-keyout", str(key), "-out", str(cert)],
        check=True, capture_output=True, timeout=30,
    )  # fmt: skip
    return cert, key


async def test_https_to_a_checked_address_verifies_the_names_certificate_and_sends_it_as_sni(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    """Connected to 127.0.0.1, the TLS server sees the URL's host name as SNI, and the
    certificate is checked against that name (not against the address)."""
    cert, key = _self_signed(tmp_path, "hooks.tls.example")
    server_tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_tls.load_cert_chain(cert, key)
    names: list[str | None] = []
    server_tls.sni_callback = lambda sock, name, ctx: names.append(name)  # type: ignore[assignment,func-returns-value]
    trusting = ssl.create_default_context(cafile=str(cert))
    monkeypatch.setattr(pinned.ssl, "create_default_context", lambda: trusting)

    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(b"HTTP/1.1 204 No Content\r\nContent-Length: 0\r\n\r\n")
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(answer, "127.0.0.1", 0, ssl=server_tls)
    port = server.sockets[0].getsockname()[1]
    try:
        async with asyncio.timeout(10):
            url = f"https://hooks.tls.example:{port}/x"
            status = await asyncio.to_thread(pinned.post, url, ["127.0.0.1"], b"{}", {}, 5)
            wrong = f"https://other.example:{port}/x"
            with pytest.raises(pinned.PostFailed, match="certificate"):
                await asyncio.to_thread(pinned.post, wrong, ["127.0.0.1"], b"{}", {}, 5)
    finally:
        server.close()
        await server.wait_closed()
    assert status == 204 and names[0] == "hooks.tls.example"
