"""`ctl rules`: list, show, pause, resume, run now, kill, history, diff and rollback."""

from __future__ import annotations

import sys
from typing import Annotated, Any

import typer

from ctl.client import Api
from ctl.context import JsonOpt, api, emit, exit_with, handled, settings
from ctl.errors import ExitCode, Failed, UsageError
from ctl.follow import started_runids, wait_command
from ctl.output import facts, rule_state, table, when
from ctl.progress import Progress
from ctl.runs import COLUMNS as RUN_COLUMNS
from ctl.runs import follow_and_exit
from ctl.words import reason, say
from i18n.marks import N_

app = typer.Typer(no_args_is_help=True, help="Rules: list, show, pause, run, history, rollback.")

RuleId = Annotated[int, typer.Argument(help="The rule's id.")]
WaitOpt = Annotated[
    float, typer.Option("--wait", help="Seconds to wait for a center to carry it out.")
]
COLUMNS = [
    (N_("ID"), lambda r: r["id"]),
    (N_("NAME"), lambda r: r["name"]),
    (N_("GROUP"), lambda r: r.get("group_name") or r.get("gid")),
    (N_("STATE"), lambda r: say(rule_state(r))),
    (N_("SCHEDULE"), lambda r: say("daemon") if r.get("is_daemon") else r.get("rule")),
    (N_("AGENTS"), lambda r: ",".join(map(str, r.get("agents", [])))),
    (N_("COMMAND"), lambda r: r.get("execute")),
]
VERSION_COLUMNS = [
    (N_("VERSION"), lambda v: f"v{v['version']}"),
    (N_("WHEN"), lambda v: when(v["at_us"])),
    (N_("WHO"), lambda v: v["username"] + (f" ({reason(v['via'])})" if v.get("via") else "")),
    (N_("SUMMARY"), lambda v: reason(v["summary"])),
]
CHANGE_COLUMNS = [
    (N_("FIELD"), lambda c: c["field"]),
    (N_("OLD"), lambda c: c["old"]),
    (N_("NEW"), lambda c: c["new"]),
]
STATES = {"enabled": 1, "paused": 0}
# The words a command's status shows as (center/commands.py), for the catalogs.
COMMAND_STATES = (N_("pending"), N_("done"), N_("failed"))


@app.command("ls")
@handled
def list_rules(
    ctx: typer.Context,
    group: Annotated[int | None, typer.Option("--group", help="A group id.")] = None,
    name: Annotated[str, typer.Option("--name", help="Part of the name.")] = "",
    state: Annotated[str | None, typer.Option("--state", help="enabled or paused.")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Rules of your groups, by name."""
    if state is not None and state not in STATES:
        raise UsageError("must be enabled or paused", "--state")
    status = STATES.get(state or "")
    with api(ctx) as client:
        rows = client.get("/rules", gid=group, name=name or None, status=status)
    emit(as_json, rows, lambda r: table(r, COLUMNS))


@app.command()
@handled
def show(ctx: typer.Context, task_id: RuleId, as_json: JsonOpt = False) -> None:
    """Every field of a rule."""
    with api(ctx) as client:
        emit(as_json, client.get(f"/rules/{task_id}"), _rule_text)


def _rule_text(rule: dict[str, Any]) -> str:
    skip = {"commands", "daemons", "group_name"}
    pairs = [(say("state"), say(rule_state(rule)))] + [
        (k, v) for k, v in sorted(rule.items()) if k not in skip and not isinstance(v, dict)
    ]
    return facts([(k, ",".join(map(str, v)) if isinstance(v, list) else v) for k, v in pairs])


def _set_status(ctx: typer.Context, task_id: int, status: int, as_json: bool) -> None:
    with api(ctx) as client:
        rule = client.patch(f"/rules/{task_id}", {"status": status})
    emit(as_json, rule, _rule_line)


def _rule_line(r: dict[str, Any]) -> str:
    state = say(rule_state(r))
    return say("rule %(id)s (%(name)s) %(state)s", id=r["id"], name=r["name"], state=state)


@app.command()
@handled
def pause(ctx: typer.Context, task_id: RuleId, as_json: JsonOpt = False) -> None:
    """Stop planning the rule's runs (operator role)."""
    _set_status(ctx, task_id, 0, as_json)


@app.command()
@handled
def resume(ctx: typer.Context, task_id: RuleId, as_json: JsonOpt = False) -> None:
    """Plan the rule's runs again (operator role)."""
    _set_status(ctx, task_id, 1, as_json)


def _env(pairs: list[str]) -> dict[str, str]:
    out = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        if not sep or not name:
            raise UsageError(f"{pair!r} is not NAME=value", "--env")
        out[name] = value
    return out


@app.command("run")
@handled
def run_now(
    ctx: typer.Context,
    task_id: RuleId,
    param: Annotated[
        str | None, typer.Option("--param", help="Parameters (rules that allow_params).")
    ] = None,
    env: Annotated[
        list[str] | None, typer.Option("--env", help="NAME=value for this run; repeatable.")
    ] = None,
    follow: Annotated[
        bool, typer.Option("-f", "--follow", help="Tail the runs; exit 1 unless all succeed.")
    ] = False,
    wait_s: WaitOpt = 30.0,
    as_json: JsonOpt = False,
) -> None:
    """Run the rule now on its agents; wait for a center to start it and list the runs."""
    body: dict[str, Any] = {}
    if param is not None:
        body["params"] = param
    if env:
        body["env"] = _env(env)
    with api(ctx) as client:
        command = client.post(f"/rules/{task_id}/run", body or None)
        command = wait_command(client, command, wait_s, settings(ctx).poll_s, Progress(sys.stderr))
        runs = _started(client, task_id, command)
        if follow and not as_json and command["status"] == "done":
            print(_command_text(command, runs), file=sys.stderr)
            follow_and_exit(client, [r["id"] for r in runs], settings(ctx).poll_s)
            return
    emit(as_json, {"command": command, "runs": runs}, lambda v: _command_text(v["command"], runs))
    if command["status"] != "done":
        exit_with(ExitCode.FAILED)


def _started(client: Api, task_id: int, command: dict[str, Any]) -> list[dict[str, Any]]:
    wanted = started_runids(command.get("result", ""))
    if command["status"] != "done" or not wanted:
        return []
    rows = client.get("/runs", rule=task_id, limit=max(50, 2 * len(wanted)))
    by_runid = {r["runid"]: r for r in rows}
    return [by_runid[r] for r in wanted if r in by_runid]


def _command_text(command: dict[str, Any], runs: list[dict[str, Any]]) -> str:
    head = say(
        "command %(id)s %(status)s: %(result)s",
        id=command["id"],
        status=say(command["status"]),
        result=reason(command.get("result") or ""),
    ).rstrip()
    return f"{head}\n{table(runs, RUN_COLUMNS)}" if runs else head


@app.command()
@handled
def kill(
    ctx: typer.Context, task_id: RuleId, wait_s: WaitOpt = 30.0, as_json: JsonOpt = False
) -> None:
    """Stop every running run of the rule; wait for a center to carry it out."""
    with api(ctx) as client:
        command = client.post(f"/rules/{task_id}/kill")
        command = wait_command(client, command, wait_s, settings(ctx).poll_s, Progress(sys.stderr))
    emit(as_json, command, lambda c: _command_text(c, []))
    if command["status"] != "done":
        raise Failed(f"the center could not: {command.get('result')}")


@app.command()
@handled
def history(
    ctx: typer.Context,
    task_id: RuleId,
    limit: Annotated[int, typer.Option("--limit", min=1, max=1000)] = 100,
    as_json: JsonOpt = False,
) -> None:
    """Every saved version of the rule, newest first: when, who, what changed."""
    with api(ctx) as client:
        rows = client.get(f"/rules/{task_id}/versions", limit=limit)
    emit(as_json, rows, lambda r: table(r, VERSION_COLUMNS))


@app.command()
@handled
def diff(
    ctx: typer.Context,
    task_id: RuleId,
    old: Annotated[int | None, typer.Argument(help="From this version (default: to - 1).")] = None,
    new: Annotated[
        int | None, typer.Argument(help="To this version (default: the newest).")
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """The fields that differ between two versions, old → new (default: the last change)."""
    with api(ctx) as client:
        answer = client.get(f"/rules/{task_id}/diff", **{"from": old, "to": new})
    emit(
        as_json,
        answer,
        lambda a: table(a["changes"], CHANGE_COLUMNS) if a["changes"] else say("same"),
    )


@app.command()
@handled
def rollback(
    ctx: typer.Context,
    task_id: RuleId,
    version: Annotated[int, typer.Argument(help="The version to write back.")],
    as_json: JsonOpt = False,
) -> None:
    """Write an old version back (admin role); it becomes a new version."""
    with api(ctx) as client:
        row = client.post(f"/rules/{task_id}/rollback", {"version": version})
    emit(as_json, row, lambda v: _rolled_back(task_id, version, v["version"]))


def _rolled_back(task_id: int, version: int, now: int) -> str:
    return say(
        "rule %(id)s rolled back to v%(version)s: now v%(now)s",
        id=task_id,
        version=version,
        now=now,
    )
