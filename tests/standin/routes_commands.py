"""Application command routes (global and guild scoped)."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from aiohttp import web

from .models import snowflake
from .responses import error, json_response, no_content
from .validation import check_commands, form_error

if TYPE_CHECKING:
    from .rest import Req
    from .server import StandIn

DAILY_CREATES_MAX = 200


def _scope(s: StandIn, r: Req) -> int | web.Response | None:
    if int(r.params["app_id"]) != s.app_id:
        return error(403, 50001, "Missing Access")
    if r.params.get("guild_id") is None:
        return None
    gid = int(r.params["guild_id"])
    if gid not in s.guilds:
        return error(403, 50001, "Missing Access")
    return gid


def _stored(s: StandIn, scope: int | None, cmd: dict[str, Any], old: dict[str, Any] | None) -> dict[str, Any]:
    data = {
        "type": 1,
        "options": [],
        "default_member_permissions": None,
        "nsfw": False,
        "integration_types": [0],
        "contexts": None,
        "name_localizations": None,
        "description_localizations": None,
        **cmd,
        "id": old["id"] if old else str(snowflake()),
        "application_id": str(s.app_id),
        "version": str(snowflake()),
    }
    if data["type"] != 1:
        data["description"] = ""
    if scope is not None:
        data["guild_id"] = str(scope)
        data.pop("contexts", None)
    return data


def _creates_left(s: StandIn, scope: int | None, new: int) -> bool:
    day_ago = time.time() - 86400
    log = [t for t in s.command_creates.get(scope, []) if t > day_ago]
    log += [time.time()] * new
    s.command_creates[scope] = log
    return len(log) <= DAILY_CREATES_MAX


def _too_many_creates() -> web.Response:
    return error(400, 30034, f"Max number of daily application command creates has been reached ({DAILY_CREATES_MAX})")


async def list_commands(s: StandIn, r: Req) -> web.Response:
    scope = _scope(s, r)
    if isinstance(scope, web.Response):
        return scope
    return json_response(s.commands.get(scope, []))


async def bulk_overwrite_commands(s: StandIn, r: Req) -> web.Response:
    scope = _scope(s, r)
    if isinstance(scope, web.Response):
        return scope
    problems = check_commands(r.body)
    if problems:
        return json_response(form_error(problems), 400)
    existing = {(c.get("type", 1), c["name"]): c for c in s.commands.get(scope, [])}
    result = [_stored(s, scope, cmd, existing.get((cmd.get("type", 1), cmd["name"]))) for cmd in r.body]
    new = sum(1 for cmd in r.body if (cmd.get("type", 1), cmd["name"]) not in existing)
    if not _creates_left(s, scope, new):
        return _too_many_creates()
    s.commands[scope] = result
    return json_response(result)


async def upsert_command(s: StandIn, r: Req) -> web.Response:
    scope = _scope(s, r)
    if isinstance(scope, web.Response):
        return scope
    body = r.body if isinstance(r.body, dict) else {}
    problems = check_commands([body])
    if problems:
        return json_response(form_error(problems), 400)
    commands = s.commands.setdefault(scope, [])
    key = (body.get("type", 1), body.get("name"))
    old = next((c for c in commands if (c.get("type", 1), c["name"]) == key), None)
    if old is None and not _creates_left(s, scope, 1):
        return _too_many_creates()
    stored = _stored(s, scope, body, old)
    if old is not None:
        commands[commands.index(old)] = stored
    else:
        commands.append(stored)
    if len([c for c in commands if c.get("type", 1) == 1]) > 100:
        commands.remove(stored)
        return json_response(form_error([((), "BASE_TYPE_MAX_LENGTH", "Must be 100 or fewer commands.")]), 400)
    return json_response(stored, 200 if old else 201)


def _find(s: StandIn, scope: int | None, cmd_id: str) -> dict[str, Any] | None:
    return next((c for c in s.commands.get(scope, []) if c["id"] == cmd_id), None)


async def one_command(s: StandIn, r: Req) -> web.Response:
    scope = _scope(s, r)
    if isinstance(scope, web.Response):
        return scope
    cmd = _find(s, scope, r.params["command_id"])
    if cmd is None:
        return error(404, 10063, "Unknown application command")
    if r.request.method == "GET":
        return json_response(cmd)
    if r.request.method == "DELETE":
        s.commands[scope].remove(cmd)
        return no_content()
    merged = {k: v for k, v in {**cmd, **(r.body or {})}.items() if k not in ("id", "version", "application_id")}
    problems = check_commands([merged])
    if problems:
        return json_response(form_error(problems), 400)
    stored = _stored(s, scope, merged, cmd)
    s.commands[scope][s.commands[scope].index(cmd)] = stored
    return json_response(stored)


async def command_permissions(s: StandIn, r: Req) -> web.Response:
    return json_response([])


_APP = r"/applications/(?P<app_id>\d+)"
_GUILD = _APP + r"/guilds/(?P<guild_id>\d+)"
ROUTES: list[tuple[str, str, Any, bool]] = []
for _base in (_APP, _GUILD):
    ROUTES += [
        ("GET", _base + "/commands", list_commands, True),
        ("PUT", _base + "/commands", bulk_overwrite_commands, True),
        ("POST", _base + "/commands", upsert_command, True),
        ("GET", _base + r"/commands/(?P<command_id>\d+)", one_command, True),
        ("PATCH", _base + r"/commands/(?P<command_id>\d+)", one_command, True),
        ("DELETE", _base + r"/commands/(?P<command_id>\d+)", one_command, True),
    ]
ROUTES.append(("GET", _GUILD + "/commands/permissions", command_permissions, True))
