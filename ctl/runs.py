"""`ctl runs`: list, show one with its output, tail its output (following it with -f)."""

from __future__ import annotations

import sys
from typing import Annotated, Any

import typer

from ctl.client import Api
from ctl.context import JsonOpt, api, emit, exit_with, handled, settings
from ctl.errors import ExitCode
from ctl.follow import follow_run
from ctl.output import duration, facts, table, when
from ctl.progress import Progress
from ctl.words import reason, say
from i18n.marks import N_

app = typer.Typer(no_args_is_help=True, help="Runs: list, show, tail.")

COLUMNS = [
    (N_("ID"), lambda r: r["id"]),
    (N_("RULE"), lambda r: r.get("rule_name") or r["task_id"]),
    (N_("AGENT"), lambda r: r.get("agent_name") or r["aid"]),
    (N_("STATUS"), lambda r: say(r["status"])),
    (N_("TRIGGER"), lambda r: say(r["trigger"]) if r.get("trigger") else None),
    (N_("SCHEDULED"), lambda r: when(r.get("sched_us"))),
    (N_("TOOK"), lambda r: duration(r.get("start"), r.get("end"))),
    (N_("CODE"), lambda r: r.get("code")),
]


def run_outcome(run: dict[str, Any]) -> ExitCode:
    """0 for a run that succeeded, 1 for any other end."""
    return ExitCode.OK if run["status"] == "success" else ExitCode.FAILED


def ended_line(run: dict[str, Any]) -> str:
    line = say("run %(id)s ended %(status)s", id=run["id"], status=say(run["status"]))
    if run.get("code") is not None:
        line += say(", exit code %(code)s", code=run["code"])
    if run.get("reason"):
        line += say(": ") + reason(run["reason"])
    return line


@app.command("ls")
@handled
def list_runs(
    ctx: typer.Context,
    rule: Annotated[int | None, typer.Option("--rule", help="A rule id.")] = None,
    agent: Annotated[int | None, typer.Option("--agent", help="An agent id.")] = None,
    status: Annotated[str | None, typer.Option("--status", help="success, failed, …")] = None,
    limit: Annotated[int, typer.Option("--limit", min=1, max=1000)] = 20,
    as_json: JsonOpt = False,
) -> None:
    """Runs of your groups' rules, newest first."""
    with api(ctx) as client:
        rows = client.get("/runs", rule=rule, agent=agent, status=status, limit=limit)
    emit(as_json, rows, lambda r: table(r, COLUMNS))


@app.command()
@handled
def show(
    ctx: typer.Context,
    run_id: Annotated[int, typer.Argument(help="The run's id.")],
    as_json: JsonOpt = False,
) -> None:
    """One run: where, when, how it ended, and its output."""
    with api(ctx) as client:
        emit(as_json, client.get(f"/runs/{run_id}"), _run_text)


def _run_text(r: dict[str, Any]) -> str:
    head = facts(
        [
            (say("run"), f"{r['id']} ({r['runid']})"),
            (say("rule"), f"{r.get('rule_name') or ''} #{r['task_id']}"),
            (say("agent"), f"{r.get('agent_name') or ''} #{r['aid']}"),
            (say("status"), say(r["status"])),
            (say("trigger"), say(r["trigger"]) if r.get("trigger") else None),
            (say("scheduled"), when(r.get("sched_us"))),
            (say("started"), when(r.get("start"))),
            (say("ended"), when(r.get("end"))),
            (say("took"), duration(r.get("start"), r.get("end"))),
            (say("exit code"), r.get("code")),
            (say("reason"), reason(r.get("reason") or "")),
        ]
    )
    return f"{head}\n--- {say('output')}\n{r.get('result') or ''}".rstrip("\n")


@app.command()
@handled
def tail(
    ctx: typer.Context,
    run_id: Annotated[int, typer.Argument(help="The run's id.")],
    follow: Annotated[
        bool, typer.Option("-f", "--follow", help="Until the run ends; exit 1 unless success.")
    ] = False,
) -> None:
    """The run's output so far; with -f, new output as it comes until the run ends."""
    with api(ctx) as client:
        if follow:
            follow_and_exit(client, [run_id], settings(ctx).poll_s)
            return
        chunk = client.get(f"/runs/{run_id}/output", offset=0)
        text = chunk["text"] or (client.get(f"/runs/{run_id}").get("result") or "")
    sys.stdout.write(text)


def follow_and_exit(client: Api, run_ids: list[int], poll_s: float) -> None:
    """Follow each run in turn; exit 0 if all succeeded, else 1 (each ending told on stderr)."""
    progress = Progress(sys.stderr)
    code = ExitCode.OK
    for run_id in run_ids:
        run = follow_run(client, run_id, sys.stdout, progress, poll_s)
        print(ended_line(run), file=sys.stderr)
        code = max(code, run_outcome(run))
    exit_with(code)
