"""Guild scheduled events (the guild's Events tab), with Discord's limits."""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING, Any

from aiohttp import web

from .models import snowflake
from .responses import error, json_response, no_content
from .validation import Problem, _length, form_error

if TYPE_CHECKING:
    from .rest import Req
    from .server import StandIn

GUILD_SCHEDULED_EVENTS = 1 << 16
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


def _guild(s: StandIn, r: Req) -> int | web.Response:
    gid = r.int("guild_id")
    return gid if gid in s.guilds else error(404, 10004, "Unknown Guild")


async def _announce(s: StandIn, event: str, data: dict[str, Any]) -> None:
    session = s.gateway.current
    if session is not None and session.intents & GUILD_SCHEDULED_EVENTS:
        await s.gateway.dispatch(event, data)


async def list_events(s: StandIn, r: Req) -> web.Response:
    gid = _guild(s, r)
    if isinstance(gid, web.Response):
        return gid
    return json_response([e for e in s.events.values() if e["guild_id"] == str(gid)])


async def create_event(s: StandIn, r: Req) -> web.Response:
    gid = _guild(s, r)
    if isinstance(gid, web.Response):
        return gid
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
