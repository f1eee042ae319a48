"""`unitedcron demo`: schema on SQLite, a center, a local agent and sample rules, in one command."""

from __future__ import annotations

import asyncio
import contextlib
import getpass
import os
import secrets
import signal
import socket
import sys
from pathlib import Path

from center.run_listing import format_run
from center.store import listing
from center.store.db import create_engine, upgrade_database
from protocol.clock import now_us

AGENT_NAME = "demo-agent"
ADMIN_USER = "admin"
ADMIN_PORT = 8080


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _admin_port() -> int:
    """8080 when it is free, else any free port."""
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", ADMIN_PORT))
        except OSError:
            return _free_port()
    return ADMIN_PORT


def _secret(directory: Path) -> str:
    path = directory / "secret"
    if not path.exists():
        path.write_text(secrets.token_urlsafe(32))
        path.chmod(0o600)
    return path.read_text().strip()


def sample_rules(run_user: str) -> list[dict[str, object]]:
    return [
        {
            "name": "hello every 5 seconds",
            "rule": "*/5 * * * * *",
            "execute": "/bin/echo hello from UnitedCron",
        },
        {"name": "who runs me", "rule": "*/10 * * * * *", "execute": "/usr/bin/id -un"},
        {
            "name": "load report (shell mode)",
            "rule": "@every 30s",
            "shell": 1,
            "execute": "echo \"$(date -u +%T) on $(hostname): $(cut -d' ' -f1-3 /proc/loadavg)\"",
        },
        {
            "name": "nightly cleanup (Berlin time)",
            "rule": "30 3 * * *",
            "timezone": "Europe/Berlin",
            "execute": "/usr/bin/find /tmp -maxdepth 1 -name unitedcron-demo-* -mtime +7 -print",
        },
    ]


async def _seed(db_url: str, run_user: str) -> None:
    """A demo group, the local agent approved in it, and the sample rules on a fresh database."""
    engine = create_engine(db_url)
    try:
        rules = sample_rules(run_user)
        await listing.seed_demo(engine, AGENT_NAME, run_user, rules, now_us())
    finally:
        await engine.dispose()


async def _tail_runs(db_url: str, stop: asyncio.Event) -> None:
    """Print each run as it finishes."""
    engine = create_engine(db_url)
    seen_us = now_us()
    try:
        while not stop.is_set():
            for row in await listing.finished_since(engine, seen_us):
                seen_us = max(seen_us, row["updated_us"])
                print(format_run(row), flush=True)
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(1.0):
                    await stop.wait()
    finally:
        await engine.dispose()


def _child_env(directory: Path, db_url: str, center_port: int, admin_port: int) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("UNITEDCRON_")}
    env.update(
        {
            "UNITEDCRON_DB_URL": db_url,
            "UNITEDCRON_SECRET": _secret(directory),
            "UNITEDCRON_CENTER_LISTEN": f"127.0.0.1:{center_port}",
            "UNITEDCRON_AGENT_LISTEN": "127.0.0.1:0",
            "UNITEDCRON_AGENT_CENTER": f"127.0.0.1:{center_port}",
            "UNITEDCRON_AGENT_NAME": AGENT_NAME,
            "UNITEDCRON_AGENT_STATE_DIR": str(directory / "agent-state"),
            "UNITEDCRON_ADMIN_LISTEN": f"127.0.0.1:{admin_port}",
            "UNITEDCRON_LOG_FORMAT": "json",
        }
    )
    return env


async def _start(name: str, directory: Path, env: dict[str, str]) -> asyncio.subprocess.Process:
    log_file = (directory / f"{name}.log").open("ab")
    try:
        return await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            name,
            env=env,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=log_file,
            stderr=log_file,
            start_new_session=True,
        )
    finally:
        log_file.close()


async def _stop_children(children: dict[str, asyncio.subprocess.Process]) -> None:
    for proc in children.values():
        if proc.returncode is None:
            proc.send_signal(signal.SIGTERM)
    for name, proc in children.items():
        try:
            async with asyncio.timeout(20):
                await proc.wait()
        except TimeoutError:
            print(f"{name} did not stop within 20 s; killing it", flush=True)
            proc.kill()
            await proc.wait()


async def _demo(directory: Path, db_url: str, env: dict[str, str]) -> int:
    run_user = "nobody" if os.geteuid() == 0 else getpass.getuser()
    from admin.bootstrap import add_user

    await upgrade_database(db_url)
    await _seed(db_url, run_user)
    password = secrets.token_urlsafe(12)  # a new one each time the demo starts
    await add_user(db_url, ADMIN_USER, password, superadmin=True, reset=True)
    names = ("center", "agent", "admin")
    children = {name: await _start(name, directory, env) for name in names}
    admin_url = f"http://{env['UNITEDCRON_ADMIN_LISTEN']}/"
    _banner(directory, db_url, run_user, (admin_url, password))
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    tail = asyncio.create_task(_tail_runs(db_url, stop))
    waits = [asyncio.create_task(p.wait()) for p in children.values()]
    await asyncio.wait(
        [tail, asyncio.create_task(stop.wait()), *waits], return_when=asyncio.FIRST_COMPLETED
    )
    died = [n for n, p in children.items() if p.returncode is not None]
    stop.set()
    print("\nstopping the demo ...", flush=True)
    await _stop_children(children)
    await asyncio.gather(tail, return_exceptions=True)
    if died:
        print(f"{', '.join(died)} exited early; see {directory}/<name>.log", flush=True)
        return 1
    return 0


def _banner(directory: Path, db_url: str, run_user: str, admin: tuple[str, str]) -> None:
    url, password = admin
    print(
        f"""UnitedCron demo is running.
  admin:     {url}  (log in as {ADMIN_USER!r} with password {password!r})
  database:  {db_url}
  logs:      {directory}/center.log, {directory}/agent.log, {directory}/admin.log (JSON lines)
  agent:     {AGENT_NAME}, running the sample rules as user {run_user!r}
  runs:      printed below as they finish; or `unitedcron runs --db-url {db_url}`
Press Ctrl-C to stop.
""",
        flush=True,
    )


def run_demo(directory: Path) -> int:
    directory = directory.resolve()
    directory.mkdir(parents=True, exist_ok=True)
    # The demo is the one place that reads the environment itself: it builds its children's.
    db_url = os.environ.get("UNITEDCRON_DB_URL") or f"sqlite+aiosqlite:///{directory}/unitedcron.db"
    env = _child_env(directory, db_url, _free_port(), _admin_port())
    return asyncio.run(_demo(directory, db_url, env))
