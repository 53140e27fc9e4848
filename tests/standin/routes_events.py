"""Guild scheduled events (the guild's Events tab), with Discord's limits."""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING, Any

from aiohttp import web

from .models import ADMINISTRATOR, MANAGE_EVENTS, snowflake, user_payload
from .responses import error, json_response, no_content
from .validation import Problem, _length, form_error

if TYPE_CHECKING:
    from .rest import Req
    from .server import StandIn

GUILD_SCHEDULED_EVENTS = 1 << 16
CREATE_EVENTS = 1 << 44
ALL_PERMISSIONS = (1 << 53) - 1
EVENTS_MAX = 100
STAGE, VOICE, EXTERNAL = 1, 2, 3
SCHEDULED, ACTIVE, COMPLETED, CANCELED = 1, 2, 3, 4
TRANSITIONS = {SCHEDULED: {SCHEDULED, ACTIVE, CANCELED}, ACTIVE: {ACTIVE, COMPLETED}}


def _time(value: Any) -> dt.datetime | None:
    if not value:
        return None
    try:
        parsed = dt.datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=dt.UTC)


def check_event(ev: dict[str, Any], *, creating: bool) -> list[Problem]:
    problems: list[Problem] = []
    problems += _length(ev.get("name"), ("name",), 1, 100)
    problems += _length(ev.get("description"), ("description",), 0, 1000)
    start, end = _time(ev.get("scheduled_start_time")), _time(ev.get("scheduled_end_time"))
    if start is None:
        problems.append((("scheduled_start_time",), "BASE_TYPE_REQUIRED", "This field is required"))
    elif creating and start < dt.datetime.now(dt.UTC):
        problems.append((("scheduled_start_time",), "GUILD_SCHEDULED_EVENT_SCHEDULE_PAST", "Cannot schedule event in the past."))
    if start and end and end <= start:
        problems.append((("scheduled_end_time",), "GUILD_SCHEDULED_EVENT_END_BEFORE_START", "End time must be after start time."))
    if ev.get("privacy_level") != 2:
        problems.append((("privacy_level",), "BASE_TYPE_CHOICES", "Value must be one of {2}."))
    etype = ev.get("entity_type")
    if etype == EXTERNAL:
        location = (ev.get("entity_metadata") or {}).get("location")
        problems += _length(location, ("entity_metadata", "location"), 1, 100)
        if end is None:
            problems.append((("scheduled_end_time",), "BASE_TYPE_REQUIRED", "External events require an end time."))
        if ev.get("channel_id") is not None:
            problems.append((("channel_id",), "BASE_TYPE_BAD_VALUE", "External events cannot have a channel."))
    elif etype in (STAGE, VOICE):
        if ev.get("channel_id") is None:
            problems.append((("channel_id",), "BASE_TYPE_REQUIRED", "This field is required"))
    else:
        problems.append((("entity_type",), "BASE_TYPE_CHOICES", "Value must be one of {1, 2, 3}."))
    return problems


def bot_permissions_in(s: StandIn, guild_id: int) -> int:
    """The bot's guild-wide permissions: @everyone's and its roles' together; Administrator grants all."""
    guild = s.guilds[guild_id]
    mine = {int(r) for r in s.bot_member(guild_id)["roles"]} | {guild_id}
    perms = 0
    for role in guild.roles:
        if role.id in mine:
            perms |= role.permissions
    return ALL_PERMISSIONS if perms & ADMINISTRATOR else perms


def _refused(s: StandIn, guild_id: int, event: dict[str, Any] | None = None) -> web.Response | None:
    """Discord's rules since February 2026: creating needs Create Events; changing an event the bot
    created needs Create Events or Manage Events; anyone else's needs Manage Events."""
    perms = bot_permissions_in(s, guild_id)
    if event is None:
        needed = CREATE_EVENTS
    elif event.get("creator_id") == str(s.bot_id):
        needed = CREATE_EVENTS | MANAGE_EVENTS
    else:
        needed = MANAGE_EVENTS
    return None if perms & needed else error(403, 50013, "Missing Permissions")


async def grant(s: StandIn, permissions: int, guild_id: int | None = None) -> None:
    """Give the bot's role `permissions` (e.g. CREATE_EVENTS | MANAGE_EVENTS) in a guild; a connected client hears GUILD_ROLE_UPDATE."""
    await _set_roles(s, guild_id, lambda role, is_bot: role.permissions | permissions if is_bot else role.permissions)


async def revoke(s: StandIn, permissions: int, guild_id: int | None = None) -> None:
    """Take `permissions` from the bot in a guild: from its role and from @everyone (which the stand-in gives Manage Events)."""
    await _set_roles(s, guild_id, lambda role, is_bot: role.permissions & ~permissions)


async def _set_roles(s: StandIn, guild_id: int | None, change: Any) -> None:
    gid = guild_id or s.guild_id
    guild = s.guilds[gid]
    bot_roles = {int(r) for r in s.bot_member(gid)["roles"]}
    for role in guild.roles:
        if role.id not in bot_roles and role.id != gid:
            continue
        new = change(role, role.id in bot_roles)
        if new != role.permissions:
            role.permissions = new
            await s.gateway.dispatch("GUILD_ROLE_UPDATE", {"guild_id": str(gid), "role": role.payload()}, guild_id=gid)


def add_event(
    s: StandIn, name: str, start: dt.datetime, end: dt.datetime, *, guild_id: int | None = None, creator_id: int | None = None, **fields: Any
) -> dict[str, Any]:
    """An external event someone made in the guild (by default a member, not the bot), stored as Discord would hold it."""
    gid = guild_id or s.guild_id
    creator = creator_id or snowflake()
    event = {
        "id": str(snowflake()),
        "guild_id": str(gid),
        "name": name,
        "description": None,
        "scheduled_start_time": start.isoformat(),
        "scheduled_end_time": end.isoformat(),
        "privacy_level": 2,
        "status": SCHEDULED,
        "entity_type": EXTERNAL,
        "entity_id": None,
        "channel_id": None,
        "entity_metadata": {"location": "Somewhere"},
        "creator_id": str(creator),
        "creator": s.bot_user() if creator == s.bot_id else user_payload(creator, f"user{creator % 10000}"),
        "image": None,
        "recurrence_rule": None,
        "user_count": 0,
        **fields,
    }
    s.events[event["id"]] = event
    return event


def _guild(s: StandIn, r: Req) -> int | web.Response:
    gid = r.int("guild_id")
    return gid if gid in s.guilds else error(404, 10004, "Unknown Guild")


async def _announce(s: StandIn, event: str, data: dict[str, Any]) -> None:
    await s.gateway.dispatch(event, data, intents=GUILD_SCHEDULED_EVENTS)


async def list_events(s: StandIn, r: Req) -> web.Response:
    gid = _guild(s, r)
    if isinstance(gid, web.Response):
        return gid
    return json_response([e for e in s.events.values() if e["guild_id"] == str(gid)])


async def create_event(s: StandIn, r: Req) -> web.Response:
    gid = _guild(s, r)
    if isinstance(gid, web.Response):
        return gid
    refused = _refused(s, gid)
    if refused is not None:
        return refused
    body = r.body if isinstance(r.body, dict) else {}
    problems = check_event(body, creating=True)
    if problems:
        return json_response(form_error(problems), 400)
    open_events = [e for e in s.events.values() if e["guild_id"] == str(gid) and e["status"] in (SCHEDULED, ACTIVE)]
    if len(open_events) >= EVENTS_MAX:
        return error(400, 30038, f"Maximum number of uncompleted guild scheduled events reached ({EVENTS_MAX})")
    event = {
        "description": None,
        "scheduled_end_time": None,
        "channel_id": None,
        "entity_metadata": None,
        "image": None,
        "recurrence_rule": None,
        **body,
        "id": str(snowflake()),
        "guild_id": str(gid),
        "creator_id": str(s.bot_id),
        "creator": s.bot_user(),
        "status": SCHEDULED,
        "entity_id": None,
        "user_count": 0,
    }
    s.events[event["id"]] = event
    await _announce(s, "GUILD_SCHEDULED_EVENT_CREATE", event)
    return json_response(event)


async def one_event(s: StandIn, r: Req) -> web.Response:
    gid = _guild(s, r)
    if isinstance(gid, web.Response):
        return gid
    event = s.events.get(r.params["event_id"])
    if event is None or event["guild_id"] != str(gid):
        return error(404, 10070, "Unknown Guild Scheduled Event")
    method = r.request.method
    if method == "GET":
        return json_response(event)
    refused = _refused(s, gid, event)
    if refused is not None:
        return refused
    if method == "DELETE":
        del s.events[event["id"]]
        await _announce(s, "GUILD_SCHEDULED_EVENT_DELETE", event)
        return no_content()
    body = r.body if isinstance(r.body, dict) else {}
    merged = {**event, **body}
    problems = check_event(merged, creating=False)
    if "status" in body and body["status"] not in TRANSITIONS.get(event["status"], set()):
        problems.append((("status",), "GUILD_SCHEDULED_EVENT_INVALID_STATUS", "Invalid status transition."))
    if problems:
        return json_response(form_error(problems), 400)
    event.update(merged)
    await _announce(s, "GUILD_SCHEDULED_EVENT_UPDATE", event)
    return json_response(event)


_BASE = r"/guilds/(?P<guild_id>\d+)/scheduled-events"
ROUTES: list[tuple[str, str, Any, bool]] = [
    ("GET", _BASE, list_events, True),
    ("POST", _BASE, create_event, True),
    *[(m, _BASE + r"/(?P<event_id>\d+)", one_event, True) for m in ("GET", "PATCH", "DELETE")],
]
