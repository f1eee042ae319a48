"""`unitedcron ctl`: the root command, its options, login/logout and the fleet's status."""

from __future__ import annotations

import os
import socket
import sys
from pathlib import Path
from typing import Annotated, Any

import typer

from ctl import agents, config, rules, runs, words
from ctl.client import Api
from ctl.context import JsonOpt, Settings, api, emit, error_line, handled, settings
from ctl.errors import AuthRefused, CtlError, UsageError
from ctl.output import counts, facts, when
from ctl.words import say
from i18n.marks import N_

app = typer.Typer(
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    help=(
        "The fleet over the admin's REST API. Exit codes: 0 ok, 1 failed (a refused change, a"
        " failed run), 2 usage, 3 not found, 4 auth refused, 5 server unreachable."
    ),
)
app.add_typer(rules.app, name="rules")
app.add_typer(runs.app, name="runs")
app.add_typer(agents.app, name="agents")


@app.callback()
def main(
    ctx: typer.Context,
    url: Annotated[
        str | None, typer.Option("--url", envvar="UNITEDCRON_URL", help="The admin's base URL.")
    ] = None,
    token: Annotated[
        str | None,
        typer.Option("--token", envvar="UNITEDCRON_TOKEN", help="An API token of the admin."),
    ] = None,
    config_file: Annotated[
        Path | None,
        typer.Option(
            "--config-file",
            envvar="UNITEDCRON_CTL_CONFIG",
            help="Where `login` keeps the URL and token (~/.config/unitedcron/ctl.json).",
        ),
    ] = None,
    timeout_s: Annotated[float, typer.Option("--timeout", help="Seconds per request.")] = 10.0,
    poll_s: Annotated[float, typer.Option("--poll", help="Seconds between polls.")] = 0.5,
    lang: Annotated[
        str | None,
        typer.Option(
            "--lang",
            envvar="UNITEDCRON_LANGUAGE",
            help="en or zh-CN (default: the locale's, LC_ALL / LC_MESSAGES / LANG, else en).",
        ),
    ] = None,
) -> None:
    """Settings for every command; the options win over the environment and the saved login."""
    try:
        language = words.choose(lang, os.environ)  # the entry point: the one place env is read
    except CtlError as exc:
        print(error_line(exc), file=sys.stderr)
        raise typer.Exit(int(exc.code)) from None
    words.use(language)
    ctx.obj = Settings(url, token, config.config_file(config_file), timeout_s, poll_s, language)


@app.command()
@handled
def login(
    ctx: typer.Context,
    user: Annotated[str | None, typer.Option("--user", help="Asked for if not given.")] = None,
    password_stdin: Annotated[
        bool, typer.Option("--password-stdin", help="Read the password from stdin.")
    ] = False,
    totp_code: Annotated[str | None, typer.Option("--totp-code")] = None,
) -> None:
    """Trade a user name and password for an API token; keep it (and the URL), mode 0600."""
    s = settings(ctx)
    saved = config.load_saved(s.config_file)
    target = config.resolve(s.url, None, saved)
    name = user or typer.prompt(say("user"))
    password = sys.stdin.readline().rstrip("\n") if password_stdin else None
    if password is None:
        password = typer.prompt(say("password"), hide_input=True)
    body: dict[str, Any] = {
        "username": name,
        "password": password,
        "name": f"unitedcron ctl on {socket.gethostname()}"[:64],
    }
    with Api(config.Target(target.url, ""), s.timeout_s, s.language) as client:
        answer = _token(client, body, totp_code)
    values = {"url": target.url, "token": answer["token"], "token_id": answer["id"], "user": name}
    config.save(s.config_file, values)
    kept = {"url": target.url, "name": name, "file": s.config_file}
    print(say("logged in to %(url)s as %(name)s; token kept in %(file)s", **kept))


def _token(client: Api, body: dict[str, Any], totp_code: str | None) -> Any:
    if totp_code:
        body["totp_code"] = totp_code
    try:
        return client.post("/auth/token", body)
    except AuthRefused as exc:
        if "totp_code" not in exc.english or totp_code or not sys.stdin.isatty():
            raise
    return _token(client, body, typer.prompt(say("TOTP code")))


@app.command()
@handled
def logout(ctx: typer.Context) -> None:
    """Revoke the saved token and forget it."""
    s = settings(ctx)
    saved = config.load_saved(s.config_file)
    if not saved:
        raise UsageError(f"not logged in (no {s.config_file})")
    if saved.get("token_id"):
        with api(ctx) as client:
            client.delete(f"/auth/tokens/{saved['token_id']}")
    s.config_file.unlink()
    print(say("logged out of %(url)s", url=saved.get("url", "")))


@app.command()
@handled
def status(ctx: typer.Context, as_json: JsonOpt = False) -> None:
    """The fleet at a glance: agents up and down, rules, runs of the last hour, the leader."""
    with api(ctx) as client:
        emit(as_json, client.get("/status"), _status_text)


def _status_text(s: dict[str, Any]) -> str:
    leader = s["leader"]
    if leader["holder"]:
        if leader["alive"]:
            state = say("lease alive")
        else:
            state = say("lease expired at %(when)s", when=when(leader["expires_us"]))
        lead = say(
            "%(holder)s (epoch %(epoch)s), %(state)s",
            holder=leader["holder"],
            epoch=leader["epoch"],
            state=state,
        )
    else:
        lead = say("none: no center has led yet")
    runs = counts(s["runs_last_hour"], ("success", "failed", "running"))
    return facts(
        [
            (say("leader"), lead),
            (say("agents"), counts(s["agents"], ("up", "down", "disabled", "pending"))),
            (say("rules"), counts(s["rules"], ("enabled", "paused", N_("in_error")))),
            (say("last hour"), runs),
        ]
    )
