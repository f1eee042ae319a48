"""The calendar_ending check on the leader: what it knows of the rules and workflows using an
ending calendar, read whole once an hour and kept up to date from the changed rows between."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncConnection

from center.alerts.calendar_ending import (
    CalendarUser,
    affected_last,
    calendar_findings,
    ending_calendars,
)
from center.alerts.model import CALENDAR_ENDING, Channel, Finding
from center.calendars import BUILTINS, Calendar, builtin
from center.store import calendar_users as store
from center.store.calendars import load_calendars

# Read whole at least this often: a calendar's end comes nearer by days, not seconds. The
# whole read scans the rules while some calendar is ending (0.4 s for a million rules, 10k on
# cn-workdays, on SQLite; 5 ms when none is). A changed rule or workflow is read alone at the
# next poll (from the update_time index, under 1 ms); a changed group calendar or channel
# makes the next poll read whole.
RECHECK_US = 3600 * 1_000_000


class CalendarCheck:
    """The findings of calendar_ending at every evaluation (a condition not seen at one is
    over), without reading a million rules every few seconds."""

    def __init__(self) -> None:
        self._at: int | None = None
        self._whole: tuple[object, ...] = ()  # the channels' groups, the calendars' stamp
        self._marks = (0, 0)  # the newest rule's and workflow's update_time already read
        self._groups: dict[tuple[int, str], Calendar] = {}
        self._names: set[str] = set()
        # The affected rules and workflows by (kind, id), and the findings made of them.
        self._users: dict[tuple[str, int], CalendarUser] = {}
        self._found: list[Finding] = []

    async def findings(
        self, conn: AsyncConnection, channels: list[Channel], now: int
    ) -> list[Finding]:
        gids = frozenset(c.gid for c in channels if CALENDAR_ENDING in c.events)
        if not gids:
            self._at = None
            return []
        rules_mark, flows_mark, *calendars = await store.calendar_stamp(conn)
        whole = (gids, *calendars)
        if self._at is None or not 0 <= now - self._at < RECHECK_US or whole != self._whole:
            await self._read_whole(conn, gids, now)
            self._at, self._whole = now, whole
        elif (rules_mark, flows_mark) != self._marks:
            for user in await store.changed_users(conn, *self._marks):
                self._keep(user, gids, now)
            self._found = calendar_findings(self._users.values(), self._groups, now)
        self._marks = (rules_mark, flows_mark)
        return self._found

    async def _read_whole(self, conn: AsyncConnection, gids: frozenset[int], now: int) -> None:
        """Each ending calendar found once; the rules read only when some calendar ends."""
        self._groups = {k: c for k, c in (await load_calendars(conn)).items() if k[0] in gids}
        builtins = [c for c in (builtin(name) for name in BUILTINS) if c is not None]
        self._names = ending_calendars(self._groups, builtins, now)
        self._users = {}
        for user in await store.calendar_users(conn, gids, self._names):
            self._keep(user, gids, now)
        self._found = calendar_findings(self._users.values(), self._groups, now)

    def _keep(self, user: CalendarUser, gids: frozenset[int], now: int) -> None:
        """What the check knows of one rule or workflow, as it is now."""
        hit = user.gid in gids and user.calendar in self._names
        if hit and affected_last(user, self._groups, now) is not None:
            self._users[user.kind, user.id] = user
        else:
            self._users.pop((user.kind, user.id), None)
