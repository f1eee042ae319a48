"""One's own preferences: the language and time zone pages are shown in (checked, stored,
audited like other account changes)."""

from __future__ import annotations

from dataclasses import asdict, dataclass

from sqlalchemy.ext.asyncio import AsyncEngine

from admin.actor import Actor
from admin.errors import Invalid, NotFound
from admin.queries import users
from admin.services import audited
from i18n.languages import Language
from i18n.zones import known_zone
from protocol.clock import now_us

# "" = no choice: the browser's Accept-Language, then the admin's default.
LANGUAGES = ("", *(language.value for language in Language))
# The column's width (admin_user.timezone); every IANA name fits.
ZONE_CHARS = 64


@dataclass(frozen=True, slots=True)
class Preferences:
    language: str = ""  # "", "en" or "zh-CN"
    timezone: str = ""  # "" (the admin's default) or an IANA name


def checked(language: str, timezone: str) -> Preferences:
    """The preferences as stored; Invalid naming the field for a language we do not serve or
    a zone nobody knows (pure)."""
    if language not in LANGUAGES:
        raise Invalid("language", "must be empty (automatic), en or zh-CN")
    timezone = timezone.strip()
    if timezone and (len(timezone) > ZONE_CHARS or not known_zone(timezone)):
        shown = timezone[:ZONE_CHARS]
        raise Invalid(
            "timezone", f"unknown time zone {shown!r} (an IANA name such as Asia/Shanghai)"
        )
    return Preferences(language, timezone)


async def save(engine: AsyncEngine, actor: Actor, language: str, timezone: str) -> Preferences:
    """Store the caller's own preferences; the audit log keeps the old and new values."""
    wanted = checked(language, timezone)
    now = now_us()
    async with engine.begin() as conn:
        row = await users.user_by_id(conn, actor.user.id)
        if row is None:
            raise NotFound("no such user")
        before = Preferences(row["language"], row["timezone"])
        await users.update_user(conn, actor.user.id, asdict(wanted), now)
        target = ("user", actor.user.id, None)
        changes = {"before": asdict(before), "after": asdict(wanted)}
        await audited(conn, actor, now, "user.preferences", target, **changes)
    return wanted
