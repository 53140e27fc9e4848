"""Payload builders and the stored objects of the stand-in."""

from __future__ import annotations

import asyncio
import datetime as dt
import itertools
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from .validation import pinged, would_ping

DISCORD_EPOCH_MS = 1420070400000
_counter = itertools.count()

# permission bits
VIEW_CHANNEL = 1 << 10
SEND_MESSAGES = 1 << 11
EMBED_LINKS = 1 << 14
MENTION_EVERYONE = 1 << 17
USE_APPLICATION_COMMANDS = 1 << 31
MANAGE_GUILD = 1 << 5
ADMINISTRATOR = 1 << 3
MANAGE_EVENTS = 1 << 33
MANAGE_MESSAGES = 1 << 13
CREATE_PUBLIC_THREADS = 1 << 35
CREATE_PRIVATE_THREADS = 1 << 36
SEND_MESSAGES_IN_THREADS = 1 << 38
THREAD_TYPES = (10, 11, 12)  # announcement, public, private thread
# what @everyone gets in a fresh guild (a typical default)
DEFAULT_EVERYONE = 0x0000_0006_3264_0E41 | VIEW_CHANNEL | SEND_MESSAGES | USE_APPLICATION_COMMANDS


def snowflake() -> int:
    """A fresh, increasing snowflake."""
    ms = int(time.time() * 1000) - DISCORD_EPOCH_MS
    return (ms << 22) | (next(_counter) & 0x3FFFFF)


def iso(ts: float) -> str:
    return dt.datetime.fromtimestamp(ts, dt.UTC).isoformat()


def user_payload(user_id: int, name: str, *, bot: bool = False) -> dict[str, Any]:
    return {
        "id": str(user_id),
        "username": name,
        "global_name": name,
        "discriminator": "0",
        "avatar": None,
        "bot": bot,
        "public_flags": 0,
        "flags": 0,
    }


@dataclass
class ChannelSpec:
    id: int
    name: str
    type: int = 0  # 0 text, 5 announcement, 2 voice, 4 category
    position: int = 0
    topic: str | None = None
    parent_id: int | None = None  # a thread's channel
    owner_id: int | None = None  # who opened a thread
    message_count: int = 0

    @property
    def is_thread(self) -> bool:
        return self.type in THREAD_TYPES

    def payload(self, guild_id: int) -> dict[str, Any]:
        if self.is_thread:
            return self.thread_payload(guild_id)
        return {
            "id": str(self.id),
            "type": self.type,
            "guild_id": str(guild_id),
            "name": self.name,
            "position": self.position,
            "permission_overwrites": [],
            "nsfw": False,
            "topic": self.topic,
            "last_message_id": None,
            "parent_id": None,
            "rate_limit_per_user": 0,
            "flags": 0,
        }

    def thread_payload(self, guild_id: int) -> dict[str, Any]:
        return {
            "id": str(self.id),
            "type": self.type,
            "guild_id": str(guild_id),
            "parent_id": str(self.parent_id),
            "owner_id": str(self.owner_id),
            "name": self.name,
            "last_message_id": None,
            "rate_limit_per_user": 0,
            "message_count": self.message_count,
            "member_count": 1,
            "total_message_sent": self.message_count,
            "flags": 0,
            "thread_metadata": {
                "archived": False,
                "auto_archive_duration": 1440,
                "archive_timestamp": iso(time.time()),
                "locked": False,
                "create_timestamp": iso(time.time()),
            },
        }


@dataclass
class RoleSpec:
    id: int
    name: str
    permissions: int = 0
    position: int = 1
    mentionable: bool = False

    def payload(self) -> dict[str, Any]:
        return {
            "id": str(self.id),
            "name": self.name,
            "color": 0,
            "colors": {"primary_color": 0, "secondary_color": None, "tertiary_color": None},
            "hoist": False,
            "icon": None,
            "unicode_emoji": None,
            "position": self.position,
            "permissions": str(self.permissions),
            "managed": False,
            "mentionable": self.mentionable,
            "flags": 0,
        }


@dataclass
class GuildSpec:
    id: int
    name: str = "Conference"
    channels: list[ChannelSpec] = field(default_factory=list)
    roles: list[RoleSpec] = field(default_factory=list)
    owner_id: int = 0
    # user id -> (name, role ids)
    members: dict[int, tuple[str, list[int]]] = field(default_factory=dict)
    threads: list[ChannelSpec] = field(default_factory=list)  # active threads (not in `channels`, as on Discord)

    def channel(self, channel_id: int) -> ChannelSpec | None:
        """A channel or an active thread of this guild."""
        return next((c for c in (*self.channels, *self.threads) if c.id == int(channel_id)), None)

    def member_payload(self, user_id: int, *, permissions: int | None = None) -> dict[str, Any]:
        name, roles = self.members.get(user_id, (f"user{user_id % 10000}", []))
        data: dict[str, Any] = {
            "user": user_payload(user_id, name, bot=False),
            "roles": [str(r) for r in roles],
            "joined_at": iso(time.time() - 86400),
            "nick": None,
            "avatar": None,
            "deaf": False,
            "mute": False,
            "pending": False,
            "flags": 0,
            "premium_since": None,
            "communication_disabled_until": None,
        }
        if permissions is not None:
            data["permissions"] = str(permissions)
        return data

    def payload(self, bot_member: dict[str, Any]) -> dict[str, Any]:
        members = [self.member_payload(uid) for uid in self.members]
        return {
            "id": str(self.id),
            "name": self.name,
            "icon": None,
            "splash": None,
            "discovery_splash": None,
            "owner_id": str(self.owner_id),
            "afk_channel_id": None,
            "afk_timeout": 300,
            "verification_level": 0,
            "default_message_notifications": 1,
            "explicit_content_filter": 0,
            "roles": [r.payload() for r in self.roles],
            "emojis": [],
            "stickers": [],
            "features": [],
            "mfa_level": 0,
            "application_id": None,
            "system_channel_id": None,
            "system_channel_flags": 0,
            "rules_channel_id": None,
            "public_updates_channel_id": None,
            "safety_alerts_channel_id": None,
            "vanity_url_code": None,
            "description": None,
            "banner": None,
            "premium_tier": 0,
            "premium_subscription_count": 0,
            "preferred_locale": "en-US",
            "max_video_channel_users": 25,
            "nsfw_level": 0,
            "premium_progress_bar_enabled": False,
            "joined_at": iso(time.time() - 86400),
            "large": False,
            "unavailable": False,
            "member_count": len(members) + 1,
            "voice_states": [],
            "members": [bot_member, *members],
            "channels": [c.payload(self.id) for c in self.channels],
            "threads": [t.payload(self.id) for t in self.threads],
            "presences": [],
            "stage_instances": [],
            "guild_scheduled_events": [],
            "soundboard_sounds": [],
        }


@dataclass
class StoredMessage:
    """A message the bot created (channel post, interaction response or follow-up)."""

    id: int
    channel_id: int
    guild_id: int | None
    author: dict[str, Any]
    body: dict[str, Any]  # the request body as sent (payload_json for multipart)
    source: str  # "channel" | "interaction" | "followup"
    created_at: float = field(default_factory=time.time)
    edits: list[dict[str, Any]] = field(default_factory=list)
    deleted: bool = False
    edited_at: float | None = None
    attachments: list[dict[str, Any]] = field(default_factory=list)
    files: list[bytes] = field(default_factory=list, repr=False)  # the attachments' bytes, in order
    thread_id: int | None = None  # the thread opened on this message (it has the message's id)

    @property
    def content(self) -> str:
        return self.body.get("content") or ""

    @property
    def embeds(self) -> list[dict[str, Any]]:
        return self.body.get("embeds") or []

    @property
    def allowed_mentions(self) -> dict[str, Any] | None:
        return self.body.get("allowed_mentions")

    @property
    def nonce(self) -> Any:
        return self.body.get("nonce")

    @property
    def flags(self) -> int:
        return int(self.body.get("flags") or 0)

    @property
    def timestamp(self) -> dt.datetime:
        return dt.datetime.fromtimestamp(self.created_at, dt.UTC)

    @property
    def would_ping(self) -> bool:
        return would_ping(self.body)

    def apply_edit(self, body: dict[str, Any]) -> None:
        self.edited_at = time.time()
        self.edits.append(body)
        self.body = {**self.body, **{k: v for k, v in body.items() if k != "attachments"}}

    def payload(self, *, with_nonce: bool = False) -> dict[str, Any]:
        """The message as Discord returns it; the nonce only where Discord sends it back
        (the create response and MESSAGE_CREATE), never in fetched history."""
        who = pinged(self.body)
        data: dict[str, Any] = {
            "id": str(self.id),
            "channel_id": str(self.channel_id),
            "author": self.author,
            "content": self.content,
            "timestamp": iso(self.created_at),
            "edited_timestamp": iso(self.edited_at) if self.edited_at else None,
            "tts": bool(self.body.get("tts")),
            "mention_everyone": who["everyone"],
            "mentions": [user_payload(u, f"user{u % 10000}") for u in who["users"]],
            "mention_roles": [str(r) for r in who["roles"]],
            "attachments": self.attachments,
            "embeds": self.embeds,
            "pinned": False,
            "type": 0 if self.source == "channel" else (20 if self.source == "interaction" else 0),
            "flags": self.flags,
            "components": self.body.get("components") or [],
        }
        if self.guild_id is not None:
            data["guild_id"] = str(self.guild_id)
        if with_nonce and self.nonce is not None:
            data["nonce"] = self.nonce
        if self.source != "channel":
            data["webhook_id"] = self.author["id"]
        return data

    def summary(self) -> dict[str, Any]:
        """JSON-friendly view for the control API."""
        return {
            **self.payload(),
            "allowed_mentions": self.allowed_mentions,
            "would_ping": self.would_ping,
            "source": self.source,
            "deleted": self.deleted,
            "edits": self.edits,
            "body": self.body,
        }


class Watchable:
    """Something tests wait on: ``await obj.wait_until(pred, timeout)``."""

    def __init__(self) -> None:
        self._changed = asyncio.Event()

    def _notify(self) -> None:
        self._changed.set()
        self._changed = asyncio.Event()

    async def wait_until(self, predicate: Callable[[], Any], timeout: float = 5.0) -> Any:
        async def loop() -> Any:
            while True:
                event = self._changed
                result = predicate()
                if result:
                    return result
                await event.wait()

        return await asyncio.wait_for(loop(), timeout)


def new_token() -> str:
    return "aW50ZXJhY3Rpb24" + secrets.token_urlsafe(48)
