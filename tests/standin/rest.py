"""REST handlers of the stand-in. Paths are relative to /api/v10."""

from __future__ import annotations

import json
import math
import re
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from aiohttp import web

from . import routes_commands, routes_dms, routes_events, routes_messages, routes_threads
from .responses import error, json_response

if TYPE_CHECKING:
    from .server import StandIn

Handler = Callable[["StandIn", "Req"], Awaitable[web.Response]]

# routes whose body is a message (for StandIn.outgoing)
MESSAGE_ROUTES = {"create_message", "edit_message", "execute_webhook", "edit_webhook_message"}


class Req:
    """A parsed API request handed to a handler."""

    def __init__(self, request: web.Request, record: RequestRecord, params: dict[str, str], files: list) -> None:
        self.request = request
        self.record = record
        self.params = params
        self.files = files
        self.body = record.body
        self.query = record.query

    def int(self, name: str) -> int:
        return int(self.params[name])


@dataclass
class Fault:
    """An injected answer for the next ``remaining`` matching REST requests (None: forever)."""

    method: str
    pattern: re.Pattern[str]
    status: int
    remaining: int | None
    body: Any = None
    retry_after: float | None = None
    is_global: bool = False
    hits: int = 0
    applied: bool = False  # the request takes effect, then the answer is lost (a 5xx after the commit)

    def matches(self, method: str, path: str) -> bool:
        if self.remaining is not None and self.remaining <= 0:
            return False
        return self.method in ("*", method) and self.pattern.search(path) is not None


@dataclass
class RequestRecord:
    method: str
    path: str  # after /api/vN, e.g. /channels/1/messages
    query: dict[str, str]
    body: Any
    status: int = 0
    response: Any = None
    faulted: bool = False
    route: str | None = None  # the handler's name, None for unknown routes
    at: float = field(default_factory=time.time)

    @property
    def message_body(self) -> dict[str, Any] | None:
        """The message this request would create/edit (the ``data`` of a message callback)."""
        if not isinstance(self.body, dict):
            return None
        if self.route == "interaction_callback":
            return self.body.get("data") if self.body.get("type") in (4, 7) else None
        if self.route in MESSAGE_ROUTES:
            return self.body
        return None


def _ratelimit_headers(bucket: str, remaining: int = 49, reset_after: float = 1.0) -> dict[str, str]:
    return {
        "X-RateLimit-Limit": "50",
        "X-RateLimit-Remaining": str(remaining),
        "X-RateLimit-Reset": f"{time.time() + reset_after:.3f}",
        "X-RateLimit-Reset-After": f"{reset_after:.3f}",
        "X-RateLimit-Bucket": bucket,
    }


def fault_response(fault: Fault) -> web.Response:
    status = fault.status
    if status == 429:
        retry_after = 0.05 if fault.retry_after is None else fault.retry_after
        body = fault.body or {"message": "You are being rate limited.", "retry_after": retry_after, "global": False}
        body.setdefault("retry_after", retry_after)
        body["global"] = fault.is_global
        headers = _ratelimit_headers("standin-fault", remaining=0, reset_after=retry_after)
        headers.update(
            {
                "Retry-After": str(max(1, math.ceil(retry_after))),
                "X-RateLimit-Scope": "global" if fault.is_global else "user",
                "Via": "1.1 google",
            }
        )
        if fault.is_global:
            headers["X-RateLimit-Global"] = "true"
        return json_response(body, 429, headers)
    if fault.body is not None:
        return json_response(fault.body, status)
    defaults = {
        400: (0, "400: Bad Request"),
        401: (0, "401: Unauthorized"),
        403: (50013, "Missing Permissions"),
        404: (10003, "Unknown Channel"),
    }
    code, message = defaults.get(status, (0, f"{status}: Server Error"))
    return error(status, code, message)


async def read_body(request: web.Request) -> tuple[Any, list[dict[str, Any]]]:
    """JSON body, or the ``payload_json`` part of multipart/form-data (plus file parts)."""
    files: list[dict[str, Any]] = []
    if request.content_type.startswith("multipart/"):
        body: Any = None
        reader = await request.multipart()
        async for part in reader:
            if part.name == "payload_json":
                body = json.loads(await part.text())
            else:
                data = await part.read()
                files.append({"field": part.name, "filename": part.filename, "size": len(data), "data": bytes(data)})
        return body, files
    raw = await request.read()
    if not raw:
        return None, files
    try:
        return json.loads(raw), files
    except ValueError:
        return {"_raw": raw.decode("utf-8", "replace")}, files


# --- misc handlers ----------------------------------------------------------------------


async def get_me(s: StandIn, r: Req) -> web.Response:
    return json_response(s.bot_user())


async def get_gateway_bot(s: StandIn, r: Req) -> web.Response:
    return json_response({"url": s.gateway_url, "shards": s.shard_count_recommended, "session_start_limit": s.gateway.session_start_limit()})


async def get_gateway(s: StandIn, r: Req) -> web.Response:
    return json_response({"url": s.gateway_url})


async def get_application(s: StandIn, r: Req) -> web.Response:
    owner = {"id": str(s.guild.owner_id), "username": "owner", "discriminator": "0", "avatar": None}
    return json_response(
        {
            "id": str(s.app_id),
            "name": s.bot_name,
            "icon": None,
            "description": "",
            "summary": "",
            "type": None,
            "bot_public": False,
            "bot_require_code_grant": False,
            "verify_key": "0" * 64,
            "owner": owner,
            "team": None,
            "flags": s.app_flags,
            "bot": s.bot_user(),
            "interactions_endpoint_url": None,
            "redirect_uris": [],
            "tags": [],
            "approximate_guild_count": len(s.guilds),
        }
    )


async def get_guild(s: StandIn, r: Req) -> web.Response:
    guild = s.guilds.get(r.int("guild_id"))
    if guild is None:
        return error(404, 10004, "Unknown Guild")
    data = guild.payload(s.bot_member(guild.id))
    for key in ("channels", "members", "voice_states", "threads", "presences", "joined_at", "large"):
        data.pop(key, None)
    return json_response(data)


async def get_guild_channels(s: StandIn, r: Req) -> web.Response:
    guild = s.guilds.get(r.int("guild_id"))
    if guild is None:
        return error(404, 10004, "Unknown Guild")
    return json_response([c.payload(guild.id) for c in guild.channels])


async def get_guild_roles(s: StandIn, r: Req) -> web.Response:
    guild = s.guilds.get(r.int("guild_id"))
    if guild is None:
        return error(404, 10004, "Unknown Guild")
    return json_response([role.payload() for role in guild.roles])


async def get_member(s: StandIn, r: Req) -> web.Response:
    guild = s.guilds.get(r.int("guild_id"))
    if guild is None:
        return error(404, 10004, "Unknown Guild")
    uid = r.int("user_id")
    if uid == s.bot_id:
        return json_response(s.bot_member(guild.id))
    if uid not in guild.members:
        return error(404, 10007, "Unknown Member")
    return json_response(guild.member_payload(uid))


async def trigger_typing(s: StandIn, r: Req) -> web.Response:
    if s.guild_of_channel(r.int("channel_id")) is None:
        return error(404, 10003, "Unknown Channel")
    return web.Response(status=204)


async def get_channel(s: StandIn, r: Req) -> web.Response:
    cid = r.int("channel_id")
    guild = s.guild_of_channel(cid)
    if guild is None:
        return error(404, 10003, "Unknown Channel")
    return json_response(guild.channel(cid).payload(guild.id))  # type: ignore[union-attr]


ROUTES: list[tuple[str, str, Handler, bool]] = [
    # method, path regex (named groups), handler, needs bot auth
    ("GET", r"/users/@me", get_me, True),
    ("GET", r"/gateway/bot", get_gateway_bot, True),
    ("GET", r"/gateway", get_gateway, False),
    ("GET", r"/oauth2/applications/@me", get_application, True),
    ("GET", r"/applications/@me", get_application, True),
    ("GET", r"/guilds/(?P<guild_id>\d+)", get_guild, True),
    ("GET", r"/guilds/(?P<guild_id>\d+)/channels", get_guild_channels, True),
    ("GET", r"/guilds/(?P<guild_id>\d+)/roles", get_guild_roles, True),
    ("GET", r"/guilds/(?P<guild_id>\d+)/members/(?P<user_id>\d+)", get_member, True),
    ("GET", r"/channels/(?P<channel_id>\d+)", get_channel, True),
    ("POST", r"/channels/(?P<channel_id>\d+)/typing", trigger_typing, True),
    *routes_commands.ROUTES,
    *routes_messages.ROUTES,
    *routes_events.ROUTES,
    *routes_dms.ROUTES,
    *routes_threads.ROUTES,
]
_COMPILED = [(m, re.compile(p + r"/?"), h, auth) for m, p, h, auth in ROUTES]


async def route(s: StandIn, request: web.Request, record: RequestRecord, files: list) -> web.Response:
    path = record.path
    for method, pattern, handler, auth in _COMPILED:
        match = pattern.fullmatch(path)
        if match is None or method != request.method:
            continue
        record.route = handler.__name__
        if auth and not s.token_ok(request.headers.get("Authorization", "")):
            return error(401, 0, "401: Unauthorized")
        response = await handler(s, Req(request, record, match.groupdict(), files))
        if response.status < 400:
            response.headers.update(_ratelimit_headers(handler.__name__))
        return response
    known_path = any(p.fullmatch(path) for _, p, _, _ in _COMPILED)
    if known_path:
        return error(405, 0, "405: Method Not Allowed")
    return error(404, 0, f"404: Not Found (stand-in has no route {request.method} {path})")
