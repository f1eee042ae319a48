"""Who is asking: the user, their grants and address, with the permission checks bound to them."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from admin.errors import AdminError, Forbidden, NotFound, Refusal
from admin.permissions import Action, Decision, User, decide, gids_with, visible_gids
from center.rule_versions import Author


@dataclass(frozen=True, slots=True)
class Actor:
    user: User
    grants: Mapping[int, str] = field(default_factory=dict)
    client: str = ""
    # How the request came: "" a browser session, "api token <prefix>" a bearer token.
    via: str = ""
    # The user's own choices ("": not chosen): the language and time zone pages are shown in.
    language: str = ""
    timezone: str = ""

    @property
    def author(self) -> Author:
        """Who a rule version saved by this actor names."""
        return Author(self.user.id, self.user.name, self.via)

    @property
    def scope(self) -> frozenset[int] | None:
        """The groups this actor sees; None means all of them."""
        return visible_gids(self.user, self.grants)

    def scope_for(self, action: Action) -> frozenset[int] | None:
        return gids_with(self.user, self.grants, action)

    def can(self, action: Action, gid: int | None) -> bool:
        return decide(self.user, self.grants, action, gid) is Decision.ALLOW

    def require(self, action: Action, gid: int | None, what: str) -> None:
        """Raise NotFound for a group the actor cannot see, Forbidden for too low a role; either
        carries the refusal, which the app records in the audit log."""
        decision = decide(self.user, self.grants, action, gid)
        if decision is Decision.ALLOW:
            return
        error: AdminError = (
            NotFound(f"no such {what}")
            if decision is Decision.HIDDEN
            else Forbidden(f"your role does not allow {action.value} on this {what}")
        )
        error.refusal = Refusal(
            self.user.id, self.user.name, self.client, action.value, what.replace(" ", "_"), gid
        )
        raise error
