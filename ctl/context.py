"""What every command shares: the settings from `ctl`'s options, the API, printing, exit codes."""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, ParamSpec, TypeVar

import typer

from ctl import config
from ctl.client import Api
from ctl.errors import CtlError, ExitCode
from ctl.output import json_text
from ctl.words import reason, say
from i18n.languages import Language

P = ParamSpec("P")
R = TypeVar("R")

JsonOpt = Annotated[bool, typer.Option("--json", help="Print one JSON document (for scripts).")]


@dataclass(frozen=True, slots=True)
class Settings:
    """`ctl`'s own options, read once by its callback (Typer reads the environment)."""

    url: str | None
    token: str | None
    config_file: Path
    timeout_s: float
    poll_s: float
    language: Language = Language.EN


def settings(ctx: typer.Context) -> Settings:
    value = ctx.find_root().obj if ctx.obj is None else ctx.obj
    if not isinstance(value, Settings):
        raise RuntimeError("ctl's callback did not run")
    return value


def api(ctx: typer.Context) -> Api:
    """A client for the URL and token the options, the environment or the saved login give."""
    s = settings(ctx)
    target = config.resolve(s.url, s.token, config.load_saved(s.config_file))
    return Api(target, s.timeout_s, s.language)


def emit(as_json: bool, value: Any, human: Callable[[Any], str]) -> None:
    """The answer as JSON (scripts) or as `human` renders it (people)."""
    print(json_text(value) if as_json else human(value))


def handled(command: Callable[P, R]) -> Callable[P, R]:
    """Turn a CtlError into its message on stderr and its exit code; Ctrl-C exits 130."""

    @functools.wraps(command)
    def run(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return command(*args, **kwargs)
        except CtlError as exc:
            print(error_line(exc), file=sys.stderr)
            raise typer.Exit(int(exc.code)) from None
        except KeyboardInterrupt:
            print("", file=sys.stderr)
            raise typer.Exit(130) from None

    return run


def error_line(exc: CtlError) -> str:
    """`error: [field: ]reason`, in the reader's language (the field's name as typed)."""
    parts = [say("error"), *([exc.field] if exc.field else []), reason(exc.reason)]
    return say(": ").join(parts)


def exit_with(code: ExitCode) -> None:
    if code != ExitCode.OK:
        raise typer.Exit(int(code))
