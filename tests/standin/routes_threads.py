"""Threads: opened on a message (public) or in a channel (private unless told otherwise), with Discord's rules.

A thread opened on a message has the message's id; a message carries at most one thread. Opening a
public thread needs Create Public Threads, a private one Create Private Threads, and posting in any
thread Send Messages in Threads. The client hears THREAD_CREATE.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from aiohttp import web

from .models import CREATE_PRIVATE_THREADS, CREATE_PUBLIC_THREADS, SEND_MESSAGES_IN_THREADS, ChannelSpec, GuildSpec, snowflake
from .responses import error, json_response
from .routes_events import bot_permissions_in
from .validation import Problem, _length, form_error

if TYPE_CHECKING:
    from .rest import Req
    from .server import StandIn

PUBLIC_THREAD, PRIVATE_THREAD, ANNOUNCEMENT_THREAD = 11, 12, 10
ARCHIVE_DURATIONS = (60, 1440, 4320, 10080)
THREAD_ALREADY_CREATED = (400, 160004, "A thread has already been created for this message")
WRONG_CHANNEL_TYPE = (400, 50024, "Cannot execute action on this channel type")


def _check(body: dict[str, Any]) -> list[Problem]:
    problems = _length(body.get("name"), ("name",), 1, 100)
    duration = body.get("auto_archive_duration")
    if duration is not None and duration not in ARCHIVE_DURATIONS:
        problems.append((("auto_archive_duration",), "BASE_TYPE_CHOICES", f"Value must be one of {set(ARCHIVE_DURATIONS)}."))
    return problems


def _parent(s: StandIn, r: Req) -> tuple[GuildSpec, ChannelSpec] | web.Response:
    cid = r.int("channel_id")
    guild = s.guild_of_channel(cid)
    if guild is None:
        return error(404, 10003, "Unknown Channel")
    channel = guild.channel(cid)
    assert channel is not None
    if channel.is_thread or channel.type not in (0, 5):
        return error(*WRONG_CHANNEL_TYPE)
    return guild, channel


async def _open(s: StandIn, guild: GuildSpec, parent: ChannelSpec, thread_id: int, name: str, ttype: int) -> web.Response:
    thread = ChannelSpec(thread_id, name, type=ttype, parent_id=parent.id, owner_id=s.bot_id)
    guild.threads.append(thread)
    payload = thread.payload(guild.id)
    await s.gateway.dispatch("THREAD_CREATE", {**payload, "newly_created": True}, guild_id=guild.id)
    return json_response(payload, 201)


async def thread_from_message(s: StandIn, r: Req) -> web.Response:
    found = _parent(s, r)
    if isinstance(found, web.Response):
        return found
    guild, parent = found
    msg = s.stored.get(r.int("message_id"))
    if msg is None or msg.channel_id != parent.id or msg.deleted:
        return error(404, 10008, "Unknown Message")
    body = r.body if isinstance(r.body, dict) else {}
    problems = _check(body)
    if problems:
        return json_response(form_error(problems), 400)
    if not bot_permissions_in(s, guild.id) & CREATE_PUBLIC_THREADS:
        return error(403, 50013, "Missing Permissions")
    if msg.thread_id is not None:
        return error(*THREAD_ALREADY_CREATED)
    msg.thread_id = msg.id
    ttype = ANNOUNCEMENT_THREAD if parent.type == 5 else PUBLIC_THREAD
    return await _open(s, guild, parent, msg.id, str(body["name"]), ttype)


async def thread_without_message(s: StandIn, r: Req) -> web.Response:
    found = _parent(s, r)
    if isinstance(found, web.Response):
        return found
    guild, parent = found
    body = r.body if isinstance(r.body, dict) else {}
    problems = _check(body)
    ttype = body.get("type", PRIVATE_THREAD)  # API v9+: private unless the body says otherwise
    if ttype not in (PUBLIC_THREAD, PRIVATE_THREAD, ANNOUNCEMENT_THREAD):
        problems.append((("type",), "BASE_TYPE_CHOICES", "Value must be one of {10, 11, 12}."))
    if problems:
        return json_response(form_error(problems), 400)
    needed = CREATE_PRIVATE_THREADS if ttype == PRIVATE_THREAD else CREATE_PUBLIC_THREADS
    if not bot_permissions_in(s, guild.id) & needed:
        return error(403, 50013, "Missing Permissions")
    return await _open(s, guild, parent, snowflake(), str(body["name"]), ttype)


def refuse_thread_post(s: StandIn, channel_id: int) -> web.Response | None:
    """Posting in a thread needs Send Messages in Threads (Send Messages alone is not enough)."""
    guild = s.guild_of_channel(channel_id)
    channel = guild.channel(channel_id) if guild else None
    if guild is None or channel is None or not channel.is_thread:
        return None
    if not bot_permissions_in(s, guild.id) & SEND_MESSAGES_IN_THREADS:
        return error(403, 50013, "Missing Permissions")
    return None


ROUTES = [
    ("POST", r"/channels/(?P<channel_id>\d+)/messages/(?P<message_id>\d+)/threads", thread_from_message, True),
    ("POST", r"/channels/(?P<channel_id>\d+)/threads", thread_without_message, True),
]
