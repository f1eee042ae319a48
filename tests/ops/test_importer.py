"""`unitedcron import-united-cron`: the original's schema and rows in MariaDB, imported twice."""

from __future__ import annotations

import asyncio
import secrets
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pymysql
import pytest
from sqlalchemy import select
from sqlalchemy.engine import URL

from center.store.db import create_engine
from center.store.importer import ImportOptions, import_united_cron
from center.tables import admin_grant, admin_user, agents, cron_group, crontab, crontab_agent
from tests.conftest import _server_connection
from tests.integration.test_processes import _env, _run

pytestmark = [pytest.mark.mysql, pytest.mark.timeout(120)]
FIXTURE = Path(__file__).with_name("united_cron_orig.sql")
UNITEDCRON = str(Path(sys.executable).with_name("unitedcron"))
TABLES = (cron_group, agents, crontab, crontab_agent, admin_user, admin_grant)


@pytest.fixture
def original_url(mysql_server: URL) -> Iterator[str]:
    """A database `uc_orig_<random>` with the original's tables and sample rows."""
    name = f"uc_orig_{secrets.token_hex(5)}"
    statements = [s for s in FIXTURE.read_text().split(";\n") if s.strip(" \n-")]
    with _server_connection(mysql_server) as conn, conn.cursor() as cur:
        cur.execute(f"CREATE DATABASE `{name}` CHARACTER SET utf8")
        cur.execute(f"USE `{name}`")
        for statement in statements:
            cur.execute(statement)
    try:
        yield mysql_server.set(database=name).render_as_string(hide_password=False)
    finally:
        with _server_connection(mysql_server) as conn, conn.cursor() as cur:
            cur.execute(f"DROP DATABASE IF EXISTS `{name}`")


async def snapshot(url: str) -> dict[str, list[dict[str, Any]]]:
    engine = create_engine(url)
    try:
        async with engine.connect() as conn:
            out = {}
            for table in TABLES:
                key = list(table.primary_key.columns)
                rows = (await conn.execute(select(table).order_by(*key))).mappings()
                out[table.name] = [dict(r) for r in rows]
            return out
    finally:
        await engine.dispose()


def by_name(rows: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {r["name"]: r for r in rows}


Snapshot = dict[str, list[dict[str, Any]]]


def check_groups_and_agents(first: Snapshot) -> dict[int, str]:
    groups = {r["id"]: r["name"] for r in first["cron_group"]}
    assert sorted(groups.values()) == ["JAVA组", "PHP组", "运维组"]
    hosts = by_name(first["agents"])
    assert set(hosts) == {"web-1", "php-1", "本地虚拟机", "web-1-5"}
    assert groups[hosts["web-1"]["gid"]] == "运维组" and hosts["web-1"]["status"] == 1
    assert hosts["php-1"]["status"] == 1  # "connection failed" comes in enabled
    assert hosts["本地虚拟机"]["gid"] is None and hosts["本地虚拟机"]["status"] == 0
    return groups


def check_rules(first: Snapshot) -> None:
    rules = by_name(first["crontab"])
    assert "removed" not in rules and len(rules) == 9
    daemon = rules["测试"]
    assert (daemon["is_daemon"], daemon["rule"], daemon["status"]) == (1, "", 1)
    assert rules["nightly"]["rule"] == "0 3 * * *" and rules["nightly"]["status"] == 1
    assert rules["nightly"]["timezone"] == "Asia/Shanghai"
    for name, field in (("hash rule", "rule"), ("bad user", "run_user"), ("new year 2017", "year")):
        assert rules[name]["status"] == 0 and field in rules[name]["error"], rules[name]
    assert rules["broken once"]["status"] == 0 and "error state" in rules["broken once"]["error"]
    assert "year (2017)" in rules["new year 2017"]["description"]  # kept: the center rewrites error
    assert rules["report"]["status"] == 0 and rules["report"]["error"] == ""
    assert rules["quoted"]["gid"] is None and rules["quoted"]["execute"] == "php -r 'echo 1;'"
    names = {r["id"]: r["name"] for r in first["agents"]}
    task_names = {r["id"]: r["name"] for r in first["crontab"]}
    targets: dict[str, set[str]] = {}
    for link in first["crontab_agent"]:
        targets.setdefault(task_names[link["task_id"]], set()).add(names[link["aid"]])
    assert targets["测试二"] == {"web-1", "php-1"}  # CSV "1" and join table (2, 2)
    assert targets["report"] == {"web-1", "php-1"}  # 99 never existed, 3 was deleted


def check_users(first: Snapshot, groups: dict[int, str]) -> None:
    users = by_name(first["admin_user"])
    assert set(users) == {"admin", "zhang.san"}
    assert all(u["status"] == 0 and u["password_hash"].startswith("!") for u in users.values())
    roles = {(r["user_id"], groups[r["gid"]], r["role"]) for r in first["admin_grant"]}
    assert roles == {
        (users["admin"]["id"], "运维组", "operator"),
        (users["zhang.san"]["id"], "PHP组", "operator"),
        (users["zhang.san"]["id"], "运维组", "operator"),
    }


async def test_import_maps_every_table_and_a_second_run_changes_nothing(
    original_url: str, db_url: str
):
    """Groups, agents, rules (broken ones paused with the reason), targets from both the CSV
    and the join table, users and roles arrive; importing again writes nothing."""
    options = ImportOptions(original_url, db_url, timezone="Asia/Shanghai")
    async with asyncio.timeout(60):
        report = await import_united_cron(options)
    first = await snapshot(db_url)
    check_users(first, check_groups_and_agents(first))
    check_rules(first)
    notes = "\n".join(report.lines())
    for expected in (
        "agent 99 does not exist in the original",
        "agent 3 was not imported",
        "no usable user name",
        "user 9 was not imported",
        "group 4 was not imported",
        "imported as 'web-1-5'",
    ):
        assert expected in notes, notes
    assert report.counts["crontab"].imported == 9 and report.counts["crontab"].skipped == 1
    async with asyncio.timeout(60):
        again = await import_united_cron(options)
    assert all(c.imported == 0 and c.updated == 0 for c in again.counts.values()), again.lines()
    assert await snapshot(db_url) == first


async def test_a_changed_original_row_is_updated_on_the_next_import(original_url: str, db_url: str):
    """Re-importing after a rule changed in the original updates that rule, and only it."""
    options = ImportOptions(original_url, db_url)
    await import_united_cron(options)
    mysql = pymysql.connect(**_pymysql_args(original_url), autocommit=True, charset="utf8mb4")
    with mysql, mysql.cursor() as cur:
        cur.execute("UPDATE crontab SET execute = '/usr/bin/backup --fast' WHERE id = 5")
    report = await import_united_cron(options)
    assert report.counts["crontab"].updated == 1 and report.counts["crontab"].imported == 0
    rules = by_name((await snapshot(db_url))["crontab"])
    assert rules["nightly"]["execute"] == "/usr/bin/backup --fast"


def _pymysql_args(url: str) -> dict[str, Any]:
    from sqlalchemy.engine import make_url

    u = make_url(url)
    return {
        "host": u.host,
        "port": u.port or 3306,
        "user": u.username,
        "password": u.password or "",
        "database": u.database,
    }


async def test_the_command_prints_a_report(original_url: str, tmp_path: Path):
    """`unitedcron import-united-cron` runs against a migrated database and prints the report."""
    target = f"sqlite+aiosqlite:///{tmp_path}/uc.db"
    code, _, err = await _run(UNITEDCRON, "db", "upgrade", "--db-url", target, env=_env())
    assert code == 0, err
    source = original_url.replace("mysql+aiomysql://", "mysql://")
    args = (UNITEDCRON, "import-united-cron", source, "--db-url", target, "--timezone", "UTC")
    code, out, err = await _run(*args, env=_env())
    assert code == 0, err
    assert "crontab" in out and "imported" in out and "agent 99 does not exist" in out
    code, out, err = await _run(*args, env=_env())
    assert code == 0 and "imported" in out, err


async def test_an_unmigrated_target_is_refused(original_url: str, tmp_path: Path):
    """Importing into a database without the schema stops with a line saying what to run."""
    target = f"sqlite+aiosqlite:///{tmp_path}/empty.db"
    code, _, err = await _run(
        UNITEDCRON, "import-united-cron", original_url, "--db-url", target, env=_env()
    )
    assert code == 1 and "unitedcron db upgrade" in err
