"""What can go wrong in `unitedcron ctl`, each with the exit code a script can test.

CtlError          base; `code` is the process's exit status
├── Failed        1: the server refused the change (a field, a conflict), a run failed
├── UsageError    2: bad arguments, or a local setting that cannot be used (no URL, ctl.json
│                 readable by others)
├── NotFound      3: no such rule, run, agent or version (or one you may not see)
├── AuthRefused   4: no token, a bad or expired one, a role too low, too many failed logins
└── Unreachable   5: the admin did not answer (refused, unknown host, timed out)
"""

from __future__ import annotations

from enum import IntEnum


class ExitCode(IntEnum):
    OK = 0
    FAILED = 1
    USAGE = 2
    NOT_FOUND = 3
    AUTH = 4
    UNREACHABLE = 5


class CtlError(Exception):
    code = ExitCode.FAILED

    def __init__(self, message: str, field: str | None = None, english: str = "") -> None:
        super().__init__(f"{field}: {message}" if field else message)
        self.field = field
        self.reason = message
        # The server's English words when it answered in another language (for tests of the
        # reason, like "is a second factor asked for?", that must not depend on the language).
        self.english = english or message


class Failed(CtlError):
    code = ExitCode.FAILED


class UsageError(CtlError):
    code = ExitCode.USAGE


class NotFound(CtlError):
    code = ExitCode.NOT_FOUND


class AuthRefused(CtlError):
    code = ExitCode.AUTH


class Unreachable(CtlError):
    code = ExitCode.UNREACHABLE


def for_status(status: int) -> type[CtlError]:
    """The error an HTTP status answer is, as this tool reports it."""
    if status in (401, 403, 429):
        return AuthRefused
    if status == 404:
        return NotFound
    return Failed
