"""Admin on a big history: each page's time with N runs in MariaDB, next to a 10k-run baseline.

Run: .venv/bin/python bench/bench_admin.py [N] [--reps R] [--keep]   (N runs, default 1000000)
"""

# Two fresh MariaDB databases (`UNITEDCRON_TEST_MYSQL`, default root@127.0.0.1:3306), schema by
# the real migrations, loaded with the same shape of history: RULES rules in GROUPS groups on
# AGENTS agents, DAYS days up to now (rates per rule from 1 to 60 an hour, scaled to N), 5%
# not successful, 2% of the rules long (minutes to hours), runs going on now and runs planned
# ahead; rollups built from the same rows (center.rollup's own sums). One database has
# BASELINE runs, the other N. Runs are written as tab-separated files and LOAD DATA LOCAL
# INFILE with task_process's secondary indexes dropped, which are then built again in one
# ALTER (as the migrations define them): minutes for 10 million rows instead of hours.
#
# Then each page (the real admin app, in-process over httpx, logged in as a superadmin) is
# fetched once to warm up and --reps times (default 7); the table gives the median and p95 of
# each on both databases, against the target of 300 ms. Databases are dropped unless --keep.

from __future__ import annotations

import argparse
import asyncio
import heapq
import math
import os
import random
import secrets
import statistics
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pymysql
from _common import pct  # bench/ is on sys.path when run as a script
from sqlalchemy import insert
from sqlalchemy.engine import URL, make_url

from admin import credentials
from admin.app import create_app
from admin.config import AdminConfig
from admin.queries import users
from admin.services import auth
from center.rollup import RunFacts, Sums
from center.store import rollups
from center.store.db import create_engine, upgrade_database
from center.tables import agents, api_token, cron_group, crontab, crontab_agent

RULES, AGENTS, GROUPS, DAYS = 500, 50, 20, 30
BASELINE = 10_000
TARGET_MS = 300.0
S = 1_000_000
HOUR = 3600 * S
SERVER = os.environ.get("UNITEDCRON_TEST_MYSQL", "mysql+aiomysql://root@127.0.0.1:3306")
_COLUMNS = (
    *("task_id", "runid", "aid", "pid", "start", "end", "code", "signal", "status", "result"),
    *("sched_us", "attempt", "instance", "trigger", "run_user", "uid", "gid", "output_bytes"),
    *("reason", "created_us", "updated_us"),
)


@dataclass(frozen=True, slots=True)
class Shape:
    """Which rule runs how often, where, and how long."""

    per_rule: list[int]  # runs of rule k+1
    targets: list[list[int]]  # agents of rule k+1
    long: frozenset[int]  # rules whose runs take minutes to hours


def shape(n: int, rng: random.Random) -> Shape:
    weights = [rng.choice((1, 2, 4, 6, 12, 30, 60)) for _ in range(RULES)]
    total = sum(weights)
    per_rule = [max(1, round(n * w / total)) for w in weights]
    targets = []
    for k in range(1, RULES + 1):
        mine = [a for a in range(1, AGENTS + 1) if _group_of(a) == _group_of(k)]
        first = mine[k % len(mine)]
        targets.append([first] if k % 5 else sorted({first, mine[(k + 1) % len(mine)]}))
    long = frozenset(k for k in range(1, RULES + 1) if k % 50 == 7)
    return Shape(per_rule, targets, long)


def _group_of(k: int) -> int:
    return (k - 1) % GROUPS + 1


def _status(rng: random.Random) -> str:
    u = rng.random()
    for status, upto in (
        ("success", 0.95),
        ("failed", 0.98),
        ("timeout", 0.99),
        ("killed", 0.994),
        ("lost", 0.997),
        ("missed", 0.9985),
    ):
        if u < upto:
            return status
    return "skipped"


def runs(sh: Shape, now: int, rng: random.Random) -> Iterator[list[Any]]:
    """Every run row (in _COLUMNS order), in order of scheduled time, as a center inserts them
    (ids in time order: a rule's last runs sit with every other rule's, at the table's end)."""
    return heapq.merge(
        *(_rule_runs(k, count, sh, now, rng) for k, count in enumerate(sh.per_rule, start=1)),
        key=lambda row: row[10],
    )


def _rule_runs(k: int, count: int, sh: Shape, now: int, rng: random.Random) -> Iterator[list[Any]]:
    first = now - DAYS * 24 * HOUR
    ahead = 5 * 60 * S  # the center plans this far ahead
    step = (DAYS * 24 * HOUR + ahead) // count
    offset = rng.randrange(step)
    median_ms = 20 * 60_000 if k in sh.long else 2_000
    targets = sh.targets[k - 1]
    for i in range(count):
        sched = first + offset + i * step
        yield _row(k, targets[i % len(targets)], sched, now, median_ms=median_ms, rng=rng)


def _row(
    k: int, aid: int, sched: int, now: int, *, median_ms: int, rng: random.Random
) -> list[Any]:
    runid = f"{k}-{sched}-{aid}-0-0"
    late = int(rng.lognormvariate(math.log(30), 1.0) * 1000)
    dur = int(rng.lognormvariate(math.log(median_ms), 0.8) * 1000)
    start, status = sched + late, _status(rng)
    end = start + dur
    if sched > now:
        status, start, end = "planned", 0, 0
    elif end > now and status not in ("missed", "skipped"):
        status, end = "running", 0
    elif status in ("missed", "skipped"):
        start = end = 0
    elif status == "lost":
        end = 0
    code = {"success": 0, "failed": 1}.get(status, "\\N")
    # As LOAD DATA reads it: \n a newline, \N a NULL.
    result = "ok\\n" if status == "success" else ("" if not end else "error: exit 1\\n")
    updated = max(end, start, sched)
    return [
        k, runid, aid, 4000 + k, start, end, code, "\\N", status, result, sched, 0, 0,
        "schedule", "app", 1000, 1000, len(result), "", sched - 60 * S, updated,
    ]  # fmt: skip


def _add(sums: dict[tuple[int, int], Sums], row: list[Any]) -> None:
    if row[8] in ("planned", "running", "dispatched"):
        return
    run = RunFacts(row[1], row[0], row[10], row[8], row[4], row[5], row[2])
    sums.setdefault(run.key(), Sums()).add(run, +1)


# ---------------------------------------------------------------- the database


def _server() -> URL:
    return make_url(SERVER)


def _connect(database: str | None = None) -> Any:
    url = _server()
    return pymysql.connect(
        host=url.host or "127.0.0.1",
        port=url.port or 3306,
        user=url.username or "root",
        password=url.password or "",
        database=database,
        local_infile=True,
        autocommit=True,
    )


async def load(name: str, n: int, seed: int) -> dict[str, Any]:
    """A fresh database `name` at head with the fleet and n runs; what was made."""
    with _connect() as conn, conn.cursor() as cur:
        cur.execute(f"DROP DATABASE IF EXISTS `{name}`")
        cur.execute(f"CREATE DATABASE `{name}` CHARACTER SET utf8mb4")
    url = _server().set(database=name).render_as_string(hide_password=False)
    await upgrade_database(url)
    now = time.time_ns() // 1000
    rng = random.Random(seed)
    sh = shape(n, rng)
    await _fleet(url, sh, now)
    started = time.perf_counter()
    sums = _load_runs(name, sh, now, rng)
    engine = create_engine(url)
    try:
        async with engine.begin() as conn:
            await rollups.write_sums(conn, sums, now)
    finally:
        await engine.dispose()
    return {"url": url, "shape": sh, "now": now, "load_s": time.perf_counter() - started}


async def _fleet(url: str, sh: Shape, now: int) -> None:
    engine = create_engine(url)
    times = {"create_time": now, "update_time": now}
    try:
        async with engine.begin() as conn:
            for g in range(1, GROUPS + 1):
                await conn.execute(insert(cron_group).values(id=g, name=f"team-{g}", **times))
            fleet = [
                {"id": a, "gid": _group_of(a), "name": f"host-{a:02d}", "status": 1, **times}
                for a in range(1, AGENTS + 1)
            ]
            await conn.execute(insert(agents), fleet)
            rules = [
                {
                    "id": k,
                    "gid": _group_of(k),
                    "name": f"job-{k:03d}",
                    "rule": "*/5 * * * *",
                    "execute": f"/opt/jobs/job-{k}.sh",
                    "run_user": "app",
                    **times,
                }
                for k in range(1, RULES + 1)
            ]
            await conn.execute(insert(crontab), rules)
            links = [
                {"task_id": k, "aid": a} for k in range(1, RULES + 1) for a in sh.targets[k - 1]
            ]
            await conn.execute(insert(crontab_agent), links)
    finally:
        await engine.dispose()


def _load_runs(name: str, sh: Shape, now: int, rng: random.Random) -> dict[Any, Sums]:
    """Runs through LOAD DATA with the secondary indexes dropped, then built again."""
    sums: dict[tuple[int, int], Sums] = {}
    with _connect(name) as conn, conn.cursor() as cur, tempfile.TemporaryDirectory() as tmp:
        keys = _secondary_keys(cur)
        cur.execute("ALTER TABLE task_process " + ", ".join(f"DROP KEY `{k}`" for k, _ in keys))
        cur.execute("SET SESSION unique_checks = 0")
        path = Path(tmp) / "runs.tsv"
        batch: list[list[Any]] = []
        for row in runs(sh, now, rng):
            _add(sums, row)
            batch.append(row)
            if len(batch) >= 500_000:
                _load_file(cur, path, batch)
                batch = []
        _load_file(cur, path, batch)
        cur.execute("ALTER TABLE task_process " + ", ".join(f"ADD {d}" for _, d in keys))
    return sums


def _secondary_keys(cur: Any) -> list[tuple[str, str]]:
    """(name, definition) of task_process's keys but the primary one, as the schema has them."""
    cur.execute("SHOW CREATE TABLE task_process")
    create = cur.fetchone()[1]
    out = []
    for raw in create.splitlines():
        line = raw.strip().rstrip(",")
        if line.startswith(("KEY ", "UNIQUE KEY ")):
            out.append((line.split("`")[1], line))
    return out


def _load_file(cur: Any, path: Path, rows: list[list[Any]]) -> None:
    if not rows:
        return
    with path.open("w") as f:
        f.writelines("\t".join(map(str, row)) + "\n" for row in rows)
    cols = ", ".join(f"`{c}`" for c in _COLUMNS)
    cur.execute(f"LOAD DATA LOCAL INFILE '{path}' INTO TABLE task_process ({cols})")


def _reused(name: str, n: int, seed: int) -> dict[str, Any]:
    """What `load` made, for a kept database: the same seed gives the same shape."""
    url = _server().set(database=name).render_as_string(hide_password=False)
    sh = shape(n, random.Random(seed))
    return {"url": url, "shape": sh, "now": time.time_ns() // 1000, "load_s": 0.0}


def _drop(name: str) -> None:
    with _connect() as conn, conn.cursor() as cur:
        cur.execute(f"DROP DATABASE IF EXISTS `{name}`")


# ---------------------------------------------------------------- the pages


def pages(made: dict[str, Any]) -> list[tuple[str, str]]:
    """(name, path) of each page timed, with ids picked from the history made."""
    sh: Shape = made["shape"]
    busy = max(range(RULES), key=lambda k: sh.per_rule[k]) + 1
    typical = sorted(range(RULES), key=lambda k: sh.per_rule[k])[RULES // 2] + 1
    agent = sh.targets[busy - 1][0]
    day = time.strftime("%Y-%m-%dT%H:%M", time.gmtime(made["now"] / S - 3 * 86400))
    day_end = time.strftime("%Y-%m-%dT%H:%M", time.gmtime(made["now"] / S - 3 * 86400 + 3600))
    return [
        ("dashboard", "/"),
        ("runs list", "/runs"),
        ("runs: rule (busy)", f"/runs?rule={busy}"),
        ("runs: rule (typical)", f"/runs?rule={typical}"),
        ("runs: agent", f"/runs?agent={agent}"),
        ("runs: status failed", "/runs?status=failed"),
        ("runs: 1 h, 3 days ago", f"/runs?since={day}&until={day_end}"),
        ("runs: rule + failed", f"/runs?rule={busy}&status=failed"),
        ("runs: agent + failed", f"/runs?agent={agent}&status=failed"),
        ("runs: older page", "/runs?before_id=5000"),
        ("rules list (page of 100)", "/rules"),
        ("rules list, page 5", "/rules?page=5"),
        ("rule page (busy)", f"/rules/{busy}"),
        ("rule page (typical)", f"/rules/{typical}"),
        ("agent page", f"/agents/{agent}"),
        ("group page (stats)", f"/groups/{_group_of(busy)}"),
        ("api rule stats", f"/api/v1/rules/{busy}/stats"),
        ("api group stats", f"/api/v1/groups/{_group_of(busy)}/stats"),
        ("timeline 1 h (agents)", "/timeline?hours=1"),
        ("timeline 6 h (rules)", "/timeline?hours=6&lane=rule"),
        ("timeline 24 h", "/timeline?hours=24"),
        ("trivial: /api/v1/groups", "/api/v1/groups"),
    ]


async def time_pages(
    made: dict[str, Any], paths: list[tuple[str, str]], reps: int
) -> dict[str, list[float]]:
    app = create_app(AdminConfig(db_url=made["url"]))
    engine = app.state.engine
    try:
        client = await _logged_in(app, engine)
        out: dict[str, list[float]] = {}
        async with client:
            for name, path in paths:
                times = []
                for i in range(reps + 1):
                    started = time.perf_counter()
                    reply = await client.get(path)
                    took = (time.perf_counter() - started) * 1000
                    if reply.status_code != 200:
                        raise SystemExit(f"{path}: {reply.status_code} {reply.text[:300]}")
                    if i:  # the first fetch warms caches up
                        times.append(took)
                out[name] = times
        return out
    finally:
        await engine.dispose()


async def _logged_in(app: Any, engine: Any) -> httpx.AsyncClient:
    """A client with a session cookie (pages) and a bearer token (API) of a superadmin."""
    now = time.time_ns() // 1000
    token = credentials.new_api_token()
    async with engine.begin() as conn:
        uid = await users.insert_user(conn, f"bench-{secrets.token_hex(3)}", "!", True, now)
        await conn.execute(
            insert(api_token).values(
                user_id=uid, name="bench", token_hash=credentials.digest(token),
                prefix=token[:12], created_us=now,
            )
        )  # fmt: skip
    async with engine.connect() as conn:
        actor = await auth.actor_of(conn, uid, "127.0.0.1")
    assert actor is not None
    session_id = await auth.start_session(engine, actor, app.state.config, None)
    transport = httpx.ASGITransport(app=app, client=("127.0.0.1", 5555))
    client = httpx.AsyncClient(
        transport=transport, base_url="http://admin.bench", timeout=120,
        headers={"Authorization": f"Bearer {token}"},
    )  # fmt: skip
    client.cookies.set("uc_session", session_id, domain="admin.bench")
    return client


def _table(n: int, small: dict[str, list[float]], big: dict[str, list[float]]) -> str:
    head = f"{'page':<28} {'10k median':>11} {_n(n) + ' median':>13} {_n(n) + ' p95':>10}  target"
    lines = [head, "-" * len(head)]
    for name, times in big.items():
        med = statistics.median(times)
        verdict = "ok" if med <= TARGET_MS else "OVER"
        lines.append(
            f"{name:<28} {statistics.median(small[name]):>9.1f}ms {med:>11.1f}ms "
            f"{pct(times, 0.95):>8.1f}ms  {TARGET_MS:.0f} ms {verdict}"
        )
    return "\n".join(lines)


def _n(n: int) -> str:
    return f"{n / 1e6:g}M" if n >= 1_000_000 else f"{n / 1e3:g}k"


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("n", nargs="?", type=int, default=1_000_000)
    parser.add_argument("--reps", type=int, default=7)
    parser.add_argument("--keep", action="store_true", help="keep the databases")
    parser.add_argument(
        "--reuse", nargs=2, metavar=("SMALL", "BIG"), help="time the pages of kept databases"
    )
    args = parser.parse_args()
    names = args.reuse or [f"uc_bench_{k}_{secrets.token_hex(3)}" for k in ("small", "big")]
    try:
        if args.reuse:
            small, big = _reused(names[0], BASELINE, seed=1), _reused(names[1], args.n, seed=2)
        else:
            small = await load(names[0], BASELINE, seed=1)
            big = await load(names[1], args.n, seed=2)
        print(f"loaded {args.n} runs in {big['load_s']:.0f} s (rules {RULES}, agents {AGENTS}, "
              f"groups {GROUPS}, {DAYS} days)", flush=True)  # fmt: skip
        paths = pages(big)
        small_times = await time_pages(small, paths, args.reps)
        big_times = await time_pages(big, paths, args.reps)
        print(_table(args.n, small_times, big_times))
    finally:
        if not args.keep and not args.reuse:
            for name in names:
                _drop(name)
        else:
            print("kept:", ", ".join(names), file=sys.stderr)


if __name__ == "__main__":
    asyncio.run(main())
