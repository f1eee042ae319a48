"""Admin errors: each carries the HTTP status, the field it concerns (if any) and the reason.

AdminError              base; `status`, `field`, `reason`, and `refusal` when a permission said no
├── BadRequest          400: the request itself is malformed (not JSON, wrong shape)
├── Unauthorized        401: no valid session or token, or a wrong username/password
├── Forbidden           403: the object is visible, but the role is too low for this action
├── NotFound            404: no such object, or one in a group the user cannot see
├── Conflict            409: the change clashes with what is stored (name taken, group in use)
├── Invalid             422: a field's value is wrong; `field` names it
└── Throttled           429: too many failed logins; `retry_after_s` says when to try again
"""

from __future__ import annotations

from dataclasses import dataclass

from i18n.marks import N_


@dataclass(frozen=True, slots=True)
class Refusal:
    """A permission check that said no (a security event for the audit log): who, from where,
    which action, on what kind of object of which group."""

    user_id: int
    username: str
    client: str
    action: str
    object_type: str
    gid: int | None


class AdminError(Exception):
    """Base of the admin's own errors."""

    status = 500
    refusal: Refusal | None = None

    def __init__(self, reason: str, field: str | None = None) -> None:
        super().__init__(f"{field}: {reason}" if field else reason)
        self.reason = reason
        self.field = field

    def as_json(self) -> dict[str, dict[str, str | None]]:
        return {"error": {"field": self.field, "reason": self.reason}}


class BadRequest(AdminError):
    status = 400


class Unauthorized(AdminError):
    status = 401


class Forbidden(AdminError):
    status = 403


class NotFound(AdminError):
    status = 404


class Conflict(AdminError):
    status = 409


class Invalid(AdminError):
    status = 422

    def __init__(self, field: str, reason: str) -> None:
        super().__init__(reason, field)


class Throttled(AdminError):
    status = 429

    def __init__(self, retry_after_s: float) -> None:
        seconds = max(1, round(retry_after_s))
        super().__init__(N_(f"too many failed logins; try again in {seconds} s"))
        self.retry_after_s = seconds
