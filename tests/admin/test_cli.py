"""The admin's commands run as an operator runs them: real processes, signals and HTTP."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import socket
import sys
from pathlib import Path

import httpx
import pytest

pytestmark = pytest.mark.timeout(120)
UNITEDCRON = str(Path(sys.executable).with_name("unitedcron"))


def _env(**values: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("UNITEDCRON_")}
    return env | {"UNITEDCRON_LOG_FORMAT": "json"} | values


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def _run(*args: str, env: dict[str, str], stdin: bytes = b"") -> tuple[int, str, str]:
    proc = await asyncio.create_subprocess_exec(
        *args,
        env=env,
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    async with asyncio.timeout(60):
        out, err = await proc.communicate(stdin)
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


async def _token(base: str, user: str, password: str) -> httpx.Response:
    async with httpx.AsyncClient(base_url=base, timeout=10) as client:
        return await client.post(
            "/api/v1/auth/token", json={"username": user, "password": password}
        )


async def _wait_for_http(base: str, proc: asyncio.subprocess.Process) -> None:
    async with asyncio.timeout(30), httpx.AsyncClient(base_url=base, timeout=2) as client:
        while True:
            assert proc.returncode is None, "the admin exited early"
            try:
                if (await client.get("/login")).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            await asyncio.sleep(0.1)


async def test_user_add_then_serve_and_log_in(db_url: str):
    """`user add` takes the password from stdin; `python -m admin` serves it; SIGTERM stops it."""
    env = _env(UNITEDCRON_DB_URL=db_url)
    code, out, err = await _run(
        UNITEDCRON, "user", "add", "Ops", "--superadmin", env=env, stdin=b"s3cret pass\n"
    )
    assert code == 0 and "created superadmin 'ops'" in out, err
    code, _, err = await _run(UNITEDCRON, "user", "add", "ops", env=env, stdin=b"other pass 1\n")
    assert code == 1 and "exists already" in err
    code, _, err = await _run(UNITEDCRON, "user", "add", "shorty", env=env, stdin=b"short\n")
    assert code == 1 and "password" in err and err.count("\n") == 1
    port = _free_port()
    admin = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "admin",
        # Metrics on a free port: a fixed 9603 may be taken on a shared test machine.
        env=env
        | {
            "UNITEDCRON_ADMIN_LISTEN": f"127.0.0.1:{port}",
            "UNITEDCRON_ADMIN_METRICS_LISTEN": "127.0.0.1:0",
        },
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        base = f"http://127.0.0.1:{port}"
        await _wait_for_http(base, admin)
        assert (await _token(base, "ops", "s3cret pass")).status_code == 201
        admin.send_signal(signal.SIGTERM)
        async with asyncio.timeout(20):
            assert await admin.wait() == 0
    finally:
        if admin.returncode is None:
            admin.kill()
            await admin.wait()


async def test_admin_refuses_an_unmigrated_database(tmp_path: Path):
    """`unitedcron admin` on a database without the schema exits 2, naming the fix."""
    url = f"sqlite+aiosqlite:///{tmp_path / 'empty.db'}"
    code, _, err = await _run(
        UNITEDCRON, "admin", "--db-url", url, "--listen", "127.0.0.1:0", env=_env()
    )
    assert code == 2 and "unitedcron db upgrade" in err


async def test_bad_listen_setting_is_named():
    """A bad UNITEDCRON_ADMIN_LISTEN stops the admin with one line naming it (exit 2)."""
    code, _, err = await _run(
        sys.executable, "-m", "admin", env=_env(UNITEDCRON_ADMIN_LISTEN="nope")
    )
    assert code == 2 and "UNITEDCRON_ADMIN_LISTEN" in err and err.count("\n") == 1


async def test_demo_prints_the_admin_url_and_login(tmp_path: Path):
    """`unitedcron demo` starts the admin too and prints its URL and a working login."""
    demo = await asyncio.create_subprocess_exec(
        UNITEDCRON,
        "demo",
        "--dir",
        str(tmp_path / "demo"),
        env=_env(),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    assert demo.stdout is not None
    try:
        banner = ""
        async with asyncio.timeout(40):
            while "Press Ctrl-C" not in banner:
                line = (await demo.stdout.readline()).decode()
                assert line, "demo exited early:\n" + banner
                banner += line
        found = re.search(
            r"admin:\s+(http://\S+)/\s+\(log in as '(\w+)' with password '([^']+)'\)", banner
        )
        assert found, banner
        base, user, password = found.groups()
        await _wait_for_http(base, demo)
        token = (await _token(base, user, password)).json()["token"]
        async with httpx.AsyncClient(base_url=base, timeout=10) as client:
            rules = await client.get("/api/v1/rules", headers={"Authorization": f"Bearer {token}"})
        assert len(rules.json()) >= 3
        demo.send_signal(signal.SIGINT)
        async with asyncio.timeout(30):
            await demo.stdout.read()
            assert await demo.wait() == 0
    finally:
        if demo.returncode is None:
            demo.kill()
            await demo.wait()
