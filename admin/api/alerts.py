"""API: alert channels of groups, their notifications, a test send."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, status
from pydantic import Field

from admin.api.models import Body
from admin.api.responses import ChannelOut, NotificationOut
from admin.services import alerts
from admin.web import ApiActor, Config, Engine, Int32, Int64

router = APIRouter(tags=["alerts"])
EVENTS_HELP = (
    "run_failed, run_timeout, crash_looping, agent_offline, did_not_start, calendar_ending"
)
KINDS_HELP = "webhook | email | dingtalk | wecom | feishu | slack"
TARGET_HELP = "The webhook's or the chat robot's URL, or comma-separated emails"
SECRET_HELP = (
    "webhook: HMAC key of the signature header; dingtalk (SEC…), feishu: the robot's signing "
    "secret; wecom, slack: none (their URL is the secret)"
)
MENTIONS_HELP = "dingtalk, wecom: whom the robot @s, comma-separated phone numbers, user ids, all"
LANGUAGE_HELP = "en | zh-CN: the language of its messages; empty: the center's alert_language"


class ChannelPatch(Body):
    """Fields of an alert channel; see the README's Operations section."""

    name: str | None = None
    kind: str | None = Field(default=None, description=KINDS_HELP)
    target: str | None = Field(default=None, description=TARGET_HELP)
    secret: str | None = Field(default=None, description=SECRET_HELP)
    mentions: str | None = Field(default=None, description=MENTIONS_HELP)
    language: str | None = Field(default=None, description=LANGUAGE_HELP)
    events: list[str] | None = Field(default=None, description=EVENTS_HELP)
    throttle_s: Int32 | None = Field(default=None, description="One alert per subject per window")
    grace_s: Int32 | None = Field(default=None, description="did_not_start: wait this long")
    status: Int32 | None = Field(default=None, description="1 on, 0 off")


class ChannelIn(ChannelPatch):
    """A new channel: `gid`, `name` and `target` are required."""

    gid: Int32
    name: str | None = Field(description="A name, unique in the group")
    target: str | None = Field(description=TARGET_HELP)


@router.get("/alert-channels", response_model=list[ChannelOut], response_model_exclude_unset=True)
async def list_channels(
    actor: ApiActor, engine: Engine, gid: Int64 | None = None
) -> list[dict[str, Any]]:
    """Channels of your groups; `secret` only where you are an admin."""
    return await alerts.list_channels(engine, actor, gid)


@router.post(
    "/alert-channels",
    status_code=status.HTTP_201_CREATED,
    response_model=ChannelOut,
    response_model_exclude_unset=True,
)
async def create_channel(
    body: ChannelIn, actor: ApiActor, engine: Engine, config: Config
) -> dict[str, Any]:
    """Needs the admin role in `gid`; a webhook without a `secret` gets a random one. A
    webhook's or a chat robot's host must be public (see UNITEDCRON_ALERT_ALLOWED_NETWORKS),
    and a chat robot's URL https."""
    return await alerts.create_channel(engine, actor, body.changes(), config.alert_networks)


@router.get(
    "/alert-channels/{channel_id}", response_model=ChannelOut, response_model_exclude_unset=True
)
async def get_channel(channel_id: Int64, actor: ApiActor, engine: Engine) -> dict[str, Any]:
    """The channel with its open conditions (`open`) and its latest `notifications`."""
    return await alerts.get_channel(engine, actor, channel_id)


@router.patch(
    "/alert-channels/{channel_id}", response_model=ChannelOut, response_model_exclude_unset=True
)
async def update_channel(
    channel_id: Int64, body: ChannelPatch, actor: ApiActor, engine: Engine, config: Config
) -> dict[str, Any]:
    changes = body.changes()
    return await alerts.update_channel(engine, actor, channel_id, changes, config.alert_networks)


@router.delete("/alert-channels/{channel_id}", status_code=status.HTTP_204_NO_CONTENT)
async def delete_channel(channel_id: Int64, actor: ApiActor, engine: Engine) -> None:
    await alerts.delete_channel(engine, actor, channel_id)


@router.post(
    "/alert-channels/{channel_id}/test",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=NotificationOut,
    response_model_exclude_unset=True,
)
async def send_test(channel_id: Int64, actor: ApiActor, engine: Engine) -> dict[str, Any]:
    """Queue a test notification; the leader center sends it (see `notifications`)."""
    return await alerts.send_test(engine, actor, channel_id)
