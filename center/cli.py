"""The `unitedcron` command: one console script, a subcommand per process and task."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path
from typing import Annotated

import typer

from ctl.app import app as ctl_app
from protocol.logs import configure_logging
from protocol.settings import settings_or_exit

app = typer.Typer(
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    help="UnitedCron: a distributed cron for fleets of Linux servers.",
)
db_app = typer.Typer(no_args_is_help=True, help="Database schema.")
app.add_typer(db_app, name="db")
user_app = typer.Typer(no_args_is_help=True, help="Accounts of the admin web app.")
app.add_typer(user_app, name="user")
pki_app = typer.Typer(no_args_is_help=True, help="The cluster's built-in PKI (its CAs).")
app.add_typer(pki_app, name="pki")
rules_app = typer.Typer(no_args_is_help=True, help="Rules as YAML files, to keep them in git.")
app.add_typer(rules_app, name="rules")
# The fleet over the admin's REST API (HTTP only: ctl imports nothing of the center).
app.add_typer(ctl_app, name="ctl")

ConfigOpt = Annotated[
    Path | None,
    typer.Option("--config", help="TOML file with settings.", exists=True, dir_okay=False),
]
DbUrlOpt = Annotated[str | None, typer.Option("--db-url", help="UNITEDCRON_DB_URL")]
LevelOpt = Annotated[str | None, typer.Option("--log-level", help="debug, info, warning, error")]
FormatOpt = Annotated[str | None, typer.Option("--log-format", help="json, console or auto")]


@app.command()
def center(
    config: ConfigOpt = None,
    db_url: DbUrlOpt = None,
    listen: Annotated[str | None, typer.Option(help="UNITEDCRON_CENTER_LISTEN")] = None,
    name: Annotated[str | None, typer.Option(help="UNITEDCRON_CENTER_NAME")] = None,
    log_level: LevelOpt = None,
    log_format: FormatOpt = None,
) -> None:
    """Run a center: plans runs and dispatches them to agents (leader) or stands by."""
    from center.config import CenterConfig
    from center.main import run_center

    cfg = settings_or_exit(
        CenterConfig,
        config,
        db_url=db_url,
        center_listen=listen,
        center_name=name,
        log_level=log_level,
        log_format=log_format,
    )
    configure_logging(cfg.log_level, cfg.log_format)
    raise typer.Exit(run_center(cfg))


@app.command()
def agent(
    config: ConfigOpt = None,
    listen: Annotated[str | None, typer.Option(help="UNITEDCRON_AGENT_LISTEN")] = None,
    center: Annotated[str | None, typer.Option("--center", help="UNITEDCRON_AGENT_CENTER")] = None,
    advertise: Annotated[str | None, typer.Option(help="UNITEDCRON_AGENT_ADVERTISE")] = None,
    name: Annotated[str | None, typer.Option(help="UNITEDCRON_AGENT_NAME")] = None,
    log_level: LevelOpt = None,
    log_format: FormatOpt = None,
) -> None:
    """Run an agent: runs what the center sends, as the rule's user, and reports back."""
    from agent.__main__ import main as agent_main

    raise typer.Exit(
        agent_main(
            config_file=config,
            agent_listen=listen,
            agent_center=center,
            agent_advertise=advertise,
            agent_name=name,
            log_level=log_level,
            log_format=log_format,
        )
    )


@app.command()
def admin(
    config: ConfigOpt = None,
    db_url: DbUrlOpt = None,
    listen: Annotated[str | None, typer.Option(help="UNITEDCRON_ADMIN_LISTEN")] = None,
    log_level: LevelOpt = None,
    log_format: FormatOpt = None,
) -> None:
    """Run the admin web app: pages for people, a JSON API under /api/v1."""
    from admin.__main__ import main as admin_main

    raise typer.Exit(
        admin_main(
            config_file=config,
            db_url=db_url,
            admin_listen=listen,
            log_level=log_level,
            log_format=log_format,
        )
    )


def _read_password() -> str:
    """One line from stdin when it is not a terminal; otherwise prompted twice."""
    if not sys.stdin.isatty():
        return sys.stdin.readline().rstrip("\r\n")
    import getpass

    first = getpass.getpass("Password: ")
    if first != getpass.getpass("Password again: "):
        typer.echo("unitedcron: the passwords differ", err=True)
        raise typer.Exit(1)
    return first


@user_app.command("add")
def user_add(
    name: Annotated[str, typer.Argument(help="The user's name (stored in lower case).")],
    superadmin: Annotated[bool, typer.Option(help="May do everything, in every group.")] = False,
    config: ConfigOpt = None,
    db_url: DbUrlOpt = None,
) -> None:
    """Create an admin user; the password comes from stdin, or is prompted for twice."""
    from admin.bootstrap import add_user
    from center.config import DbConfig

    cfg = settings_or_exit(DbConfig, config, db_url=db_url)
    password = _read_password()
    try:
        user_id = asyncio.run(add_user(cfg.db_url, name, password, superadmin))
    except Exception as exc:  # a bad name or password, the database: one line, no traceback
        typer.echo(f"unitedcron: cannot add user: {exc}", err=True)
        raise typer.Exit(1) from None
    kind = "superadmin" if superadmin else "user (give it roles in groups)"
    typer.echo(f"created {kind} {name.strip().lower()!r} with id {user_id}")


@db_app.command("upgrade")
def db_upgrade(config: ConfigOpt = None, db_url: DbUrlOpt = None) -> None:
    """Create the schema, or migrate it to the newest version; with UNITEDCRON_SECRET set,
    also create the cluster's CA if there is none."""
    from center.config import PkiConfig
    from center.pki_admin import ensure_ca
    from center.store.db import safe_url, upgrade_database

    cfg = settings_or_exit(PkiConfig, config, db_url=db_url)
    try:
        revision = asyncio.run(upgrade_database(cfg.db_url))
        made = cfg.secret is not None and asyncio.run(
            ensure_ca(cfg.db_url, cfg.secret, cfg.center_name)
        )
    except Exception as exc:  # one line for the operator, not a traceback
        typer.echo(f"unitedcron: db upgrade failed for {safe_url(cfg.db_url)}: {exc}", err=True)
        raise typer.Exit(1) from None
    typer.echo(f"schema of {safe_url(cfg.db_url)} is at revision {revision}")
    if made:
        typer.echo("created the cluster's CA (its key sealed under the cluster secret)")


@db_app.command("rollups")
def db_rollups(config: ConfigOpt = None, db_url: DbUrlOpt = None) -> None:
    """Build the statistics' rollups again from the stored runs (after an upgrade from a
    version without them, or a bulk import); stop the centers first."""
    from center.config import DbConfig
    from center.store.db import safe_url
    from center.store.rollups import rebuild_all

    cfg = settings_or_exit(DbConfig, config, db_url=db_url)
    try:
        written = asyncio.run(rebuild_all(cfg.db_url))
    except Exception as exc:  # one line for the operator, not a traceback
        typer.echo(f"unitedcron: db rollups failed for {safe_url(cfg.db_url)}: {exc}", err=True)
        raise typer.Exit(1) from None
    typer.echo(f"wrote {written} rollup rows (rule × hour) of {safe_url(cfg.db_url)}")


@pki_app.command("status")
def pki_status(config: ConfigOpt = None, db_url: DbUrlOpt = None) -> None:
    """The trusted CAs and every approved agent's certificate."""
    from center.config import PkiConfig
    from center.pki_admin import status

    cfg = settings_or_exit(PkiConfig, config, db_url=db_url)
    typer.echo("\n".join(asyncio.run(status(cfg.db_url))))


@pki_app.command("rotate")
def pki_rotate(config: ConfigOpt = None, db_url: DbUrlOpt = None) -> None:
    """Make a new CA the signing one; the old stays trusted until `pki retire`."""
    from center.config import PkiConfig
    from center.pki_admin import rotate

    cfg = settings_or_exit(PkiConfig, config, db_url=db_url)
    if not cfg.secret:
        typer.echo("unitedcron: pki rotate needs UNITEDCRON_SECRET (it seals the key)", err=True)
        raise typer.Exit(1)
    typer.echo(asyncio.run(rotate(cfg.db_url, cfg.secret, cfg.center_name)))


@pki_app.command("retire")
def pki_retire(
    config: ConfigOpt = None,
    db_url: DbUrlOpt = None,
    force: Annotated[
        bool, typer.Option(help="Even if agents still hold old certificates.")
    ] = False,
) -> None:
    """Stop trusting the CAs a rotation replaced."""
    from center.config import PkiConfig
    from center.pki_admin import retire

    cfg = settings_or_exit(PkiConfig, config, db_url=db_url)
    done, message = asyncio.run(retire(cfg.db_url, force=force))
    typer.echo(message, err=not done)
    raise typer.Exit(0 if done else 1)


@app.command()
def runs(
    config: ConfigOpt = None,
    db_url: DbUrlOpt = None,
    limit: Annotated[int, typer.Option(help="How many of the newest runs.")] = 20,
    rule: Annotated[int | None, typer.Option(help="Only runs of this rule id.")] = None,
) -> None:
    """Print the newest runs with their status, exit code and first line of output."""
    from center.config import DbConfig
    from center.run_listing import print_runs

    cfg = settings_or_exit(DbConfig, config, db_url=db_url)
    asyncio.run(print_runs(cfg.db_url, limit=limit, task_id=rule, out=sys.stdout))


@app.command("import-united-cron")
def import_united_cron(
    source: Annotated[
        str, typer.Argument(help="The original's database: mysql://USER:PASS@HOST:3306/united_cron")
    ],
    config: ConfigOpt = None,
    db_url: DbUrlOpt = None,
    timezone: Annotated[
        str, typer.Option(help="Time zone the original ran its rules in (PHP's date.timezone).")
    ] = "UTC",
    role: Annotated[
        str, typer.Option(help="Role for each auth_group_access row: viewer, operator, admin.")
    ] = "operator",
    table_prefix: Annotated[
        str, typer.Option(help="Prefix of the original's table names, if it had one.")
    ] = "",
) -> None:
    """Import the original PHP UnitedCron database; running it again changes nothing."""
    from center.config import DbConfig
    from center.store.importer import ImportOptions
    from center.store.importer import import_united_cron as run_import

    cfg = settings_or_exit(DbConfig, config, db_url=db_url)
    options = ImportOptions(source, cfg.db_url, timezone, role, table_prefix)
    try:
        report = asyncio.run(run_import(options))
    except Exception as exc:  # one line for the operator; the transaction was rolled back
        typer.echo(f"unitedcron: import failed, nothing was written: {exc}", err=True)
        raise typer.Exit(1) from None
    typer.echo("\n".join(report.lines()))


@rules_app.command("export")
def rules_export(
    group: Annotated[str | None, typer.Option(help="Only the rules of this group.")] = None,
    config: ConfigOpt = None,
    db_url: DbUrlOpt = None,
) -> None:
    """Print every rule as YAML (sorted by group and name, agents by name)."""
    from center.config import DbConfig
    from center.rulefiles import RuleFileError
    from center.store.rulefiles import export_text

    cfg = settings_or_exit(DbConfig, config, db_url=db_url)
    try:
        text, stored = asyncio.run(export_text(cfg.db_url, group))
    except RuleFileError as exc:
        typer.echo(f"unitedcron: {exc}", err=True)
        raise typer.Exit(1) from None
    sys.stdout.write(text)
    for (group_name, name), ids in stored.duplicates().items():
        typer.echo(
            f"unitedcron: warning: rules {ids} of {group_name} share the name {name!r}: "
            "rename all but one before importing this file",
            err=True,
        )
    if stored.ungrouped and group is None:
        typer.echo(
            f"unitedcron: warning: {stored.ungrouped} rules without a group are not in the file",
            err=True,
        )


@rules_app.command("import")
def rules_import(
    file: Annotated[
        Path, typer.Argument(help="A YAML file of `rules export`.", exists=True, dir_okay=False)
    ],
    apply: Annotated[bool, typer.Option(help="Write the changes (one transaction).")] = False,
    prune: Annotated[
        bool, typer.Option(help="Delete rules of the file's groups that the file lacks.")
    ] = False,
    config: ConfigOpt = None,
    db_url: DbUrlOpt = None,
) -> None:
    """Show what FILE changes (a dry run), or with --apply write it all in one transaction."""
    from center.config import DbConfig
    from center.rulefiles import RuleFileError
    from center.store.rulefiles import import_text

    cfg = settings_or_exit(DbConfig, config, db_url=db_url)
    try:
        text = file.read_text(encoding="utf-8")
        plan = asyncio.run(import_text(cfg.db_url, text, str(file), write=apply, prune=prune))
    except (RuleFileError, OSError, UnicodeDecodeError) as exc:
        typer.echo(f"unitedcron: {exc}; nothing was written", err=True)
        raise typer.Exit(1) from None
    typer.echo("\n".join(plan.lines()))
    if not apply and plan.changes:
        typer.echo("dry run: nothing was written; add --apply to make these changes")


@app.command()
def demo(
    directory: Annotated[
        Path, typer.Option("--dir", help="Where the demo keeps its files.")
    ] = Path("unitedcron-demo"),
) -> None:
    """Everything in one: schema on SQLite, a center, a local agent, sample rules."""
    from center.demo import run_demo

    raise typer.Exit(run_demo(directory))


def main() -> None:
    app()
