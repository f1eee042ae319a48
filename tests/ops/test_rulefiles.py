"""Rules as files: export every field, dry-run diffs, one-transaction apply, named errors."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncEngine

from center.rulefiles import ORDER, RuleFileError
from center.store.rulefiles import export_text, import_text
from center.tables import agents, crontab, crontab_agent
from tests.admin.seed import add_agent
from tests.integration.cluster import add_group, add_rule
from tests.integration.test_processes import _env, _run

UNITEDCRON = str(Path(sys.executable).with_name("unitedcron"))


async def seed(engine: AsyncEngine) -> dict[str, int]:
    ops, web = await add_group(engine, "ops"), await add_group(engine, "web")
    a1, a2 = await add_agent(engine, "db-1", ops), await add_agent(engine, "db-2", ops)
    w1 = await add_agent(engine, "www-1", web)
    backup = await add_rule(
        engine,
        [a2, a1],
        gid=ops,
        name="backup",
        rule="0 30 3 * * *",
        timezone="Europe/Berlin",
        execute="/usr/local/bin/backup --all",
        run_user="backup",
        env='{"B": "2", "A": "1"}',
        timeout_s=3600.0,
        retries=2,
    )
    await add_rule(
        engine,
        [a1],
        gid=ops,
        name="verify",
        rule="",
        depends_on=backup,
        execute="/usr/local/bin/verify",
    )
    await add_rule(engine, [w1], gid=web, name="rotate", rule="@daily", execute="logrotate x")
    await add_rule(engine, [], gid=web, name="gone", status=-1, execute="/bin/true")
    return {"ops": ops, "web": web, "backup": backup}


async def rules_table(engine: AsyncEngine) -> list[dict[str, Any]]:
    async with engine.connect() as conn:
        rows = (await conn.execute(select(crontab).order_by(crontab.c.id))).mappings()
        return [dict(r) for r in rows]


async def test_export_shows_every_field_by_name_in_a_stable_order(engine: AsyncEngine, db_url: str):
    """Every field of every live rule, agents and groups by name, sorted; twice the same text."""
    await seed(engine)
    text, _ = await export_text(db_url, None)
    assert text == (await export_text(db_url, None))[0]
    doc = yaml.safe_load(text)
    assert [(r["group"], r["name"]) for r in doc["rules"]] == [
        ("ops", "backup"),
        ("ops", "verify"),
        ("web", "rotate"),
    ]
    backup = doc["rules"][0]
    assert list(backup) == list(ORDER)
    assert backup["agents"] == ["db-1", "db-2"] and backup["env"] == {"A": "1", "B": "2"}
    assert backup["timeout_s"] == 3600.0 and backup["retries"] == 2 and backup["shell"] is False
    assert doc["rules"][1]["depends_on"] == "backup"
    only_web, _ = await export_text(db_url, "web")
    assert [r["name"] for r in yaml.safe_load(only_web)["rules"]] == ["rotate"]


async def test_an_unchanged_export_imports_as_no_change(engine: AsyncEngine, db_url: str):
    """Importing what was just exported changes nothing, even with --apply."""
    await seed(engine)
    before = await rules_table(engine)
    text, _ = await export_text(db_url, None)
    result = await import_text(db_url, text, "rules.yaml", write=True, prune=True)
    assert result.changes == [] and result.unchanged == 3
    assert await rules_table(engine) == before


async def test_dry_run_diffs_then_apply_writes_in_one_go(engine: AsyncEngine, db_url: str):
    """A dry run lists additions and field changes and writes nothing; --apply writes them,
    bumps update_time, and --prune deletes what the file no longer has."""
    ids = await seed(engine)
    doc = yaml.safe_load((await export_text(db_url, None))[0])
    backup = doc["rules"][0]
    backup |= {"rule": "0 45 3 * * *", "agents": ["db-1"]}
    doc["rules"].append(
        {
            "group": "ops",
            "name": "report",
            "execute": "/bin/report",
            "rule": "",
            "depends_on": "verify",
            "agents": ["db-2"],
        }
    )
    doc["rules"] = [r for r in doc["rules"] if r["name"] != "rotate"]
    text = yaml.safe_dump(doc, allow_unicode=True)
    before = await rules_table(engine)
    dry = await import_text(db_url, text, "rules.yaml", write=False, prune=True)
    lines = "\n".join(dry.lines())
    assert "+ ops/report (new)" in lines and "- web/rotate (deleted)" in lines
    assert "rule: '0 30 3 * * *' -> '0 45 3 * * *'" in lines
    assert "agents: ['db-1', 'db-2'] -> ['db-1']" in lines
    assert await rules_table(engine) == before
    await import_text(db_url, text, "rules.yaml", write=True, prune=True)
    after = {r["name"]: r for r in await rules_table(engine)}
    assert after["backup"]["rule"] == "0 45 3 * * *"
    old_backup = next(r for r in before if r["name"] == "backup")
    assert after["backup"]["update_time"] > old_backup["update_time"]
    assert after["report"]["depends_on"] == after["verify"]["id"]
    assert after["rotate"]["status"] == -1
    async with engine.connect() as conn:
        targets = (
            (
                await conn.execute(
                    select(agents.c.name)
                    .join(crontab_agent, crontab_agent.c.aid == agents.c.id)
                    .where(crontab_agent.c.task_id == ids["backup"])
                )
            )
            .scalars()
            .all()
        )
    assert targets == ["db-1"]
    again = await import_text(db_url, text, "rules.yaml", write=False, prune=True)
    assert again.changes == [] and again.unchanged == 3


@pytest.mark.parametrize(
    ("edit", "field", "reason"),
    [
        ({"rule": "61 * * * *"}, "rule", ""),
        ({"run_user": "no such user"}, "run_user", "not a valid Unix user name"),
        ({"agents": ["db-9"]}, "agents", "no agent 'db-9' in group ops"),
        ({"group": "nobody"}, "group", "no group named 'nobody'"),
        ({"process_num": "two"}, "process_num", "wrong type"),
        ({"colour": "red"}, "colour", "unknown field"),
        ({"depends_on": "ghost"}, "depends_on", "no rule 'ghost'"),
    ],
)
async def test_a_bad_rule_names_its_place_and_nothing_is_written(
    engine: AsyncEngine, db_url: str, edit: dict[str, Any], field: str, reason: str
):
    """One bad rule in the file stops the whole import, naming its position and field."""
    await seed(engine)
    doc = yaml.safe_load((await export_text(db_url, None))[0])
    doc["rules"][2]["execute"] = "/bin/changed"  # a good change that must not be written
    doc["rules"][0].update(edit)
    before = await rules_table(engine)
    with pytest.raises(RuleFileError) as caught:
        await import_text(db_url, yaml.safe_dump(doc), "rules.yaml", write=True, prune=False)
    assert caught.value.field == field and reason in caught.value.reason
    assert caught.value.where.startswith("rules.yaml: rules[0]")
    assert await rules_table(engine) == before


async def test_the_commands_export_and_apply(engine: AsyncEngine, tmp_path: Path):
    """`unitedcron rules export > f` then `rules import f` (dry run) and `--apply`."""
    url = str(engine.url.render_as_string(hide_password=False))
    await seed(engine)
    code, out, err = await _run(UNITEDCRON, "rules", "export", "--db-url", url, env=_env())
    assert code == 0, err
    path = tmp_path / "rules.yaml"
    path.write_text(out.replace("logrotate x", "logrotate y"))
    args = (UNITEDCRON, "rules", "import", str(path), "--db-url", url)
    code, out, err = await _run(*args, env=_env())
    assert code == 0, err
    assert "~ web/rotate" in out and "execute: 'logrotate x' -> 'logrotate y'" in out
    assert "dry run" in out
    code, out, err = await _run(*args, "--apply", env=_env())
    assert code == 0 and "1 to change" in out, err
    path.write_text(out.replace("x", "y") + "\nnot: [valid")
    code, out, err = await _run(*args, "--apply", env=_env())
    assert code == 1 and "yaml" in err and "nothing was written" in err


async def test_paused_rules_round_trip(engine: AsyncEngine, db_url: str):
    """A paused rule exports as status 0 and stays paused through an import."""
    ids = await seed(engine)
    async with engine.begin() as conn:
        await conn.execute(update(crontab).where(crontab.c.id == ids["backup"]).values(status=0))
    text, _ = await export_text(db_url, "ops")
    assert yaml.safe_load(text)["rules"][0]["status"] == 0
    result = await import_text(db_url, text, "f", write=True, prune=False)
    assert result.changes == []
