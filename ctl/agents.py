"""`ctl agents`: list (approved or pending), approve into a group, drain."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from ctl.context import JsonOpt, api, emit, handled
from ctl.output import agent_state, table, when
from ctl.words import say
from i18n.marks import N_

app = typer.Typer(no_args_is_help=True, help="Agents: list, approve, drain.")

COLUMNS = [
    (N_("ID"), lambda a: a["id"]),
    (N_("NAME"), lambda a: a["name"]),
    (N_("GROUP"), lambda a: a.get("gid")),
    (N_("STATE"), lambda a: say(agent_state(a))),
    (N_("ADDRESS"), lambda a: f"{a.get('ip', '')}:{a.get('port', '')}"),
    (N_("LOAD"), lambda a: a.get("load1")),
    (N_("VERSION"), lambda a: a.get("version")),
    (N_("SEEN"), lambda a: when(a.get("heart_beat_time"))),
]


@app.command("ls")
@handled
def list_agents(
    ctx: typer.Context,
    pending: Annotated[bool, typer.Option("--pending", help="Those awaiting approval.")] = False,
    group: Annotated[int | None, typer.Option("--group", help="A group id.")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Approved agents of your groups (or, with --pending, those waiting for approval)."""
    with api(ctx) as client:
        rows = client.get("/agents/pending") if pending else client.get("/agents", gid=group)
    emit(as_json, rows, lambda r: table(r, COLUMNS))


@app.command()
@handled
def approve(
    ctx: typer.Context,
    aid: Annotated[int, typer.Argument(help="The agent's id.")],
    group: Annotated[int, typer.Option("--group", help="The group it joins.")],
    as_json: JsonOpt = False,
) -> None:
    """Enable a pending agent in a group you administer."""
    with api(ctx) as client:
        row = client.post(f"/agents/{aid}/approve", {"gid": group})
    emit(as_json, row, _approved)


def _approved(a: dict[str, Any]) -> str:
    return say(
        "agent %(id)s (%(name)s) approved in group %(gid)s",
        id=a["id"],
        name=a["name"],
        gid=a["gid"],
    )


@app.command()
@handled
def drain(
    ctx: typer.Context,
    aid: Annotated[int, typer.Argument(help="The agent's id.")],
    confirm: Annotated[
        bool, typer.Option("--confirm", help="Even if a fleet service is left without an agent.")
    ] = False,
    as_json: JsonOpt = False,
) -> None:
    """No new work for the agent; it is disabled once its runs have ended."""
    with api(ctx) as client:
        row = client.post(f"/agents/{aid}/drain", {"confirm": confirm})
    emit(as_json, row, _drained)


def _drained(row: dict[str, Any]) -> str:
    left = row.get("unplaced") or []
    note = say("; services left without an agent: %(left)s", left=left) if left else ""
    return say("agent %(aid)s draining", aid=row["aid"]) + note
