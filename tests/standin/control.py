"""HTTP control API under /_standin/ (for tests driving a bot subprocess) and its client."""

from __future__ import annotations

import asyncio
import contextlib
from typing import TYPE_CHECKING, Any

import aiohttp
from aiohttp import web

from .responses import error, json_response
from .validation import would_ping

if TYPE_CHECKING:
    from .server import StandIn

P = "/_standin"


def add_control_routes(app: web.Application, s: StandIn) -> None:
    async def state(request: web.Request) -> web.Response:
        g = s.gateway
        return json_response(
            {
                "url": s.url,
                "app_id": str(s.app_id),
                "bot_id": str(s.bot_id),
                "guild_id": str(s.guild_id),
                "channel_ids": [str(c) for c in s.channel_ids],
                "guilds": {str(gid): [str(c.id) for c in guild.channels] for gid, guild in s.guilds.items()},
                "connected": g.connected,
                # shard id (as a string, JSON keys) -> connected sessions identified for it
                "shards": {str(k): v for k, v in g.connected_shards().items()},
                "sessions": [
                    {"id": x.id, "shard": list(x.shard), "connected": x.connected, "invalidated": x.invalidated, "seq": x.seq, "resumes": x.resumes}
                    for x in g.sessions.values()
                ],
                "guild_shards": {str(gid): g.shard_of(gid, s.shard_count_recommended) for gid in s.guilds},
                "rate_limited": len(g.rate_limited),
                "session_start_limit": g.session_start_limit(),
                "closes": [list(c) for c in g.closes],
                "identifies": g.identifies,
                "resumes": g.resumes,
                "intents": g.intents,
                "commands": {str(k): v for k, v in s.commands.items()},
            }
        )

    async def messages(request: web.Request) -> web.Response:
        cid = request.query.get("channel_id")
        inc = request.query.get("include_interactions", "") in ("1", "true")
        msgs = s.messages(int(cid) if cid else None, include_interactions=inc)
        return json_response([m.summary() for m in msgs])

    async def requests(request: web.Request) -> web.Response:
        only_unknown = request.query.get("unknown", "") in ("1", "true")
        records = s.unknown_routes() if only_unknown else s.requests
        return json_response(
            [
                {
                    "method": r.method,
                    "path": r.path,
                    "query": r.query,
                    "status": r.status,
                    "route": r.route,
                    "faulted": r.faulted,
                    "body": r.body,
                    "response": r.response,
                    "would_ping": None if r.message_body is None else would_ping(r.message_body),
                    "at": r.at,
                }
                for r in records
            ]
        )

    async def interact(request: web.Request) -> web.Response:
        d = await request.json()
        common = {
            k: (int(d[k]) if k in ("guild_id", "channel_id", "user_id", "permissions") else d[k])
            for k in ("guild_id", "channel_id", "user_id", "permissions", "roles", "locale")
            if d.get(k) is not None
        }
        try:
            if d.get("kind") == "click":
                handle = await s.click(int(d["message_id"]), d["custom_id"], **{k: v for k, v in common.items() if k not in ("guild_id", "channel_id")})
            elif d.get("kind", "command") == "autocomplete":
                handle = await s.autocomplete(d["name"], d["focused"], d.get("value", ""), d.get("options"), **common)
            else:
                handle = await s.invoke(d["name"], d.get("options"), **common)
        except (LookupError, KeyError) as exc:
            return error(404, 0, str(exc))
        except ValueError as exc:
            return error(400, 0, str(exc))
        return json_response({"id": str(handle.id), "token": handle.token})

    async def interaction(request: web.Request) -> web.Response:
        handle = s.interactions.get(int(request.match_info["id"]))
        if handle is None:
            return error(404, 10062, "Unknown interaction")
        wait = float(request.query.get("wait", 0))
        if wait > 0 and handle.callback is None and not handle.attempts:
            with contextlib.suppress(TimeoutError):
                await handle.wait_until(lambda: handle.callback is not None or handle.attempts, wait)
        return json_response(handle.summary())

    async def faults(request: web.Request) -> web.Response:
        if request.method == "DELETE":
            s.clear_faults()
            return json_response({"cleared": True})
        d = await request.json()
        s.inject(
            d.get("method", "*"),
            d["path_regex"],
            int(d["status"]),
            d.get("count", 1),
            d.get("body"),
            d.get("retry_after"),
            is_global=bool(d.get("global", False)),
        )
        return json_response({"faults": len(s.faults)})

    async def drop(request: web.Request) -> web.Response:
        d = await request.json() if request.can_read_body else {}
        try:
            shard = d.get("shard_id")
            await s.drop_gateway(int(d.get("code", 4000)), abrupt=bool(d.get("abrupt", False)), shard_id=None if shard is None else int(shard))
        except RuntimeError as exc:
            return error(409, 0, str(exc))
        return json_response({"dropped": True})

    async def seed(request: web.Request) -> web.Response:
        d = await request.json()
        gid = d.get("guild_id")
        return json_response(s.seed_commands(d["commands"], int(gid) if gid else None))

    app.router.add_get(P + "/state", state)
    app.router.add_post(P + "/commands", seed)
    app.router.add_get(P + "/messages", messages)
    app.router.add_get(P + "/requests", requests)
    app.router.add_post(P + "/interactions", interact)
    app.router.add_get(P + "/interactions/{id}", interaction)
    app.router.add_route("*", P + "/faults", faults)
    app.router.add_post(P + "/gateway/drop", drop)


class ControlClient:
    """Async client for the /_standin/ control API::

    async with ControlClient(url) as ctl:
        await ctl.wait_connected()
        i = await ctl.invoke("schedule", {"day": "1"})
        result = await ctl.interaction(i["id"], wait=5)
    """

    def __init__(self, url: str) -> None:
        self.url = url.rstrip("/")
        self._session: aiohttp.ClientSession | None = None

    async def __aenter__(self) -> ControlClient:
        self._session = aiohttp.ClientSession()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def _call(self, method: str, path: str, **kwargs: Any) -> Any:
        if self._session is None:
            self._session = aiohttp.ClientSession()
        async with self._session.request(method, f"{self.url}{P}{path}", **kwargs) as resp:
            data = await resp.json()
            if resp.status >= 400:
                raise RuntimeError(f"stand-in control {method} {path}: {resp.status} {data}")
            return data

    async def state(self) -> dict[str, Any]:
        return await self._call("GET", "/state")

    async def messages(self, channel_id: int | None = None, *, include_interactions: bool = False) -> list[dict]:
        params = {"include_interactions": "1" if include_interactions else "0"}
        if channel_id is not None:
            params["channel_id"] = str(channel_id)
        return await self._call("GET", "/messages", params=params)

    async def requests(self, *, unknown: bool = False) -> list[dict]:
        return await self._call("GET", "/requests", params={"unknown": "1" if unknown else "0"})

    async def invoke(self, name: str, options: dict[str, Any] | None = None, **kw: Any) -> dict[str, Any]:
        return await self._call("POST", "/interactions", json={"kind": "command", "name": name, "options": options, **kw})

    async def autocomplete(self, name: str, focused: str, value: str = "", **kw: Any) -> dict[str, Any]:
        body = {"kind": "autocomplete", "name": name, "focused": focused, "value": value, **kw}
        return await self._call("POST", "/interactions", json=body)

    async def click(self, message_id: str | int, custom_id: str, **kw: Any) -> dict[str, Any]:
        """Click a button (user_id, permissions, roles as for invoke)."""
        return await self._call("POST", "/interactions", json={"kind": "click", "message_id": str(message_id), "custom_id": custom_id, **kw})

    async def interaction(self, interaction_id: str | int, *, wait: float = 0) -> dict[str, Any]:
        return await self._call("GET", f"/interactions/{interaction_id}", params={"wait": str(wait)})

    async def inject(self, method: str, path_regex: str, status: int, count: int | None = 1, **kw: Any) -> None:
        body = {"method": method, "path_regex": path_regex, "status": status, "count": count, **kw}
        await self._call("POST", "/faults", json=body)

    async def seed_commands(self, commands: list[dict[str, Any]], guild_id: int | None = None) -> list[dict[str, Any]]:
        """Store commands as if the bot had synced them before (global when guild_id is None)."""
        return await self._call("POST", "/commands", json={"commands": commands, "guild_id": guild_id})

    async def clear_faults(self) -> None:
        await self._call("DELETE", "/faults")

    async def drop_gateway(self, code: int = 4000, *, abrupt: bool = False, shard_id: int | None = None) -> None:
        await self._call("POST", "/gateway/drop", json={"code": code, "abrupt": abrupt, "shard_id": shard_id})

    async def shards(self) -> dict[int, int]:
        """shard id -> number of connected sessions identified for it."""
        return {int(k): v for k, v in (await self.state())["shards"].items()}

    async def wait_shards(self, shard_ids: set[int] | list[int] | range, *, timeout: float = 15.0, sessions: int = 1) -> dict[str, Any]:
        """Poll until every shard in ``shard_ids`` has at least ``sessions`` connected sessions."""
        wanted = set(shard_ids)
        loop = asyncio.get_running_loop()
        end = loop.time() + timeout
        while True:
            try:
                st = await self.state()
                have = {int(k): v for k, v in st["shards"].items()}
                if all(have.get(sh, 0) >= sessions for sh in wanted):
                    return st
            except aiohttp.ClientError:
                pass
            if loop.time() > end:
                raise TimeoutError(f"shards {sorted(wanted)} not all connected to the stand-in")
            await asyncio.sleep(0.05)

    async def wait_connected(self, *, commands: bool = False, timeout: float = 15.0) -> dict[str, Any]:
        """Poll until a client has identified and is connected (and, with ``commands``,
        has synced at least one command)."""
        loop = asyncio.get_running_loop()
        end = loop.time() + timeout
        while True:
            try:
                st = await self.state()
                if st["connected"] and (not commands or any(st["commands"].values())):
                    return st
            except aiohttp.ClientError:
                pass
            if loop.time() > end:
                raise TimeoutError("no client connected to the stand-in")
            await asyncio.sleep(0.05)
