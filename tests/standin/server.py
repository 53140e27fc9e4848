"""StandIn: a local aiohttp stand-in for Discord's REST API and gateway.

Usage (in-process)::

    async with StandIn() as standin, standin.redirect():
        client = discord.Client(intents=discord.Intents.default())
        ...
"""

from __future__ import annotations

import collections
import json
import logging
import re
import socket
import time
import traceback
from typing import Any

from aiohttp import web

from . import rest
from .gateway import Gateway
from .interactions import APPLICATION_COMMAND, APPLICATION_COMMAND_AUTOCOMPLETE, InteractionHandle, build_interaction
from .models import (
    DEFAULT_EVERYONE,
    EMBED_LINKS,
    MANAGE_EVENTS,
    SEND_MESSAGES,
    VIEW_CHANNEL,
    ChannelSpec,
    GuildSpec,
    RoleSpec,
    StoredMessage,
    snowflake,
    user_payload,
)
from .redirect import redirect_discord
from .rest import Fault, RequestRecord

log = logging.getLogger(__name__)

# permissions the bot's managed role has by default
BOT_PERMISSIONS = VIEW_CHANNEL | SEND_MESSAGES | EMBED_LINKS | MANAGE_EVENTS | (1 << 16) | (1 << 31) | (1 << 44)  # ... Create Events


class StandIn:
    """A fake Discord that a real discord.py client can log in to."""

    def __init__(
        self,
        *,
        guild_id: int | None = None,
        channels: dict[int, str] | list[int] | None = None,
        app_id: int | None = None,
        bot_id: int | None = None,
        bot_name: str = "ConfBot",
        token: str | None = None,
        interaction_deadline: float = 3.0,
        token_lifetime: float = 15 * 60,
        nonce_window: float = 300.0,
        global_limit: int | None = 50,
        heartbeat_interval_ms: int = 41250,
        privileged_intents_enabled: int = 0,
        bot_permissions: int = BOT_PERMISSIONS,
        member_ids: list[int] | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
        shard_count_recommended: int = 1,
        max_concurrency: int = 1,
        identify_window: float = 5.0,
        guilds_per_shard: int = 2500,
        session_start_total: int = 1000,
    ) -> None:
        self.app_id = app_id or snowflake()
        self.bot_id = bot_id or self.app_id
        self.bot_name = bot_name
        self.token = token
        self.app_flags = 0
        self.interaction_deadline = interaction_deadline
        self.token_lifetime = token_lifetime
        self.nonce_window = nonce_window
        self.heartbeat_interval_ms = heartbeat_interval_ms
        self.privileged_intents_enabled = privileged_intents_enabled
        self.bot_permissions = bot_permissions
        self.host, self._port = host, port
        # gateway sharding (Discord's rules; see Gateway): GET /gateway/bot's `shards`, the
        # identify rate limit (one IDENTIFY per `identify_window` s per bucket
        # `shard_id % max_concurrency`), a shard holding `guilds_per_shard` guilds or more
        # is refused with 4011, and `session_start_total` IDENTIFYs a day (past that every
        # session ends and the token is reset).
        self.shard_count_recommended = shard_count_recommended
        self.max_concurrency = max_concurrency
        self.identify_window = identify_window
        self.guilds_per_shard = guilds_per_shard
        self.session_start_total = session_start_total
        self.token_reset = False
        self.guilds: dict[int, GuildSpec] = {}
        self.commands: dict[int | None, list[dict[str, Any]]] = {}
        self.command_creates: dict[int | None, list[float]] = {}
        self.stored: dict[int, StoredMessage] = {}
        self.dm_channels: dict[int, int] = {}  # DM channel id -> user id
        self.dm_of_user: dict[int, int] = {}
        self.dms_closed: set[int] = set()  # users whose privacy settings refuse DMs from the bot (50007)
        # Discord's global limit: 50 requests a second per bot (interaction callbacks are exempt).
        self.global_limit: int | None = global_limit
        self._recent: collections.deque[float] = collections.deque()
        self.global_429s = 0
        self.nonces: dict[tuple[int, str], StoredMessage] = {}
        self.events: dict[str, dict[str, Any]] = {}  # guild scheduled events by id
        self.interactions: dict[int, InteractionHandle] = {}
        self.by_token: dict[str, InteractionHandle] = {}
        self.requests: list[RequestRecord] = []
        self.faults: list[Fault] = []
        self.gateway = Gateway(self)
        self._ws: set[web.WebSocketResponse] = set()
        self._runner: web.AppRunner | None = None
        self.internal_errors: list[str] = []  # tracebacks of stand-in bugs (should stay empty)
        if isinstance(channels, list):
            channels = {cid: f"channel-{i}" for i, cid in enumerate(channels)}
        self.add_guild(guild_id or snowflake(), channels=channels, member_ids=member_ids)

    # --- setup -------------------------------------------------------------------
    def add_guild(
        self,
        guild_id: int,
        *,
        name: str = "Conference",
        channels: dict[int, str] | None = None,
        member_ids: list[int] | None = None,
    ) -> GuildSpec:
        """Add a guild the bot is in (text channels ``{id: name}``, roles, some members)."""
        channels = channels or {snowflake(): "general", snowflake(): "announcements"}
        roles = [
            RoleSpec(guild_id, "@everyone", DEFAULT_EVERYONE, position=0),
            RoleSpec(snowflake(), "Organizers", DEFAULT_EVERYONE | (1 << 5) | (1 << 33), position=2),
            RoleSpec(snowflake(), "Attendees", DEFAULT_EVERYONE, position=1, mentionable=True),
            RoleSpec(snowflake(), self.bot_name, self.bot_permissions, position=3),
        ]
        guild = GuildSpec(
            id=guild_id,
            name=name,
            channels=[ChannelSpec(cid, cname, position=i) for i, (cid, cname) in enumerate(channels.items())],
            roles=roles,
            owner_id=snowflake(),
        )
        for uid in member_ids or [snowflake(), snowflake()]:
            guild.members[uid] = (f"user{uid % 10000}", [roles[2].id])
        self.guilds[guild_id] = guild
        return guild

    async def join(self, guild_id: int | None = None, **options: Any) -> GuildSpec:
        """The bot is invited to a new guild while connected: GUILD_CREATE over the gateway."""
        guild = self.add_guild(guild_id or snowflake(), **options)
        payload = guild.payload(self.bot_member(guild.id))
        payload.pop("unavailable", None)  # Discord sends `unavailable: false` only for guilds of READY coming online
        await self.gateway.dispatch("GUILD_CREATE", payload, guild_id=guild.id)
        return guild

    async def leave(self, guild_id: int) -> None:
        """The bot is removed from a guild: GUILD_DELETE (without `unavailable`)."""
        self.guilds.pop(guild_id)
        await self.gateway.dispatch("GUILD_DELETE", {"id": str(guild_id)}, guild_id=guild_id)

    def publish_globally(self, from_guild: int) -> None:
        """Copy the commands synced to one guild to the global scope (what `python -m bot sync` does)."""
        keep = ("name", "description", "options", "default_member_permissions", "dm_permission", "contexts", "integration_types", "nsfw", "type")
        self.seed_commands([{k: c[k] for k in keep if k in c} for c in self.commands.get(from_guild, [])], None)

    @property
    def guild(self) -> GuildSpec:
        """The first (default) guild."""
        return next(iter(self.guilds.values()))

    @property
    def guild_id(self) -> int:
        return self.guild.id

    @property
    def channel_ids(self) -> list[int]:
        return [c.id for c in self.guild.channels]

    @property
    def channel_id(self) -> int:
        return self.channel_ids[0]

    def guild_of_channel(self, channel_id: int) -> GuildSpec | None:
        return next((g for g in self.guilds.values() if g.channel(channel_id) is not None), None)

    def token_ok(self, token: str | None) -> bool:
        if not token or self.token_reset:
            return False
        token = token.removeprefix("Bot ")
        return self.token is None or token == self.token

    def bot_user(self) -> dict[str, Any]:
        return {**user_payload(self.bot_id, self.bot_name, bot=True), "verified": True, "mfa_enabled": False}

    def bot_member(self, guild_id: int) -> dict[str, Any]:
        guild = self.guilds[guild_id]
        return {
            "user": self.bot_user(),
            "roles": [str(guild.roles[-1].id)],
            "joined_at": "2024-01-01T00:00:00+00:00",
            "nick": None,
            "avatar": None,
            "deaf": False,
            "mute": False,
            "pending": False,
            "flags": 0,
        }

    # --- lifecycle ---------------------------------------------------------------
    @property
    def port(self) -> int:
        return self._port

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self._port}"

    @property
    def ws_url(self) -> str:
        return f"ws://{self.host}:{self._port}"

    @property
    def api_base(self) -> str:
        return f"{self.url}/api/v10"

    @property
    def gateway_url(self) -> str:
        return f"{self.ws_url}/gateway"

    def make_app(self) -> web.Application:
        from .control import add_control_routes

        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_get("/gateway", self.gateway.handle)
        app.router.add_get("/resume-gateway", self.gateway.handle)
        add_control_routes(app, self)
        app.router.add_route("*", "/api/{tail:.*}", self._api)
        return app

    async def start(self) -> StandIn:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((self.host, self._port))
        self._port = sock.getsockname()[1]
        self._runner = web.AppRunner(self.make_app(), access_log=None, shutdown_timeout=1.0)
        await self._runner.setup()
        await web.SockSite(self._runner, sock).start()
        return self

    async def stop(self) -> None:
        await self.gateway.close_all()
        for ws in list(self._ws):
            await ws.close(code=1001)
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> StandIn:
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    def redirect(self):
        """Context manager pointing discord.py (Route.BASE, DEFAULT_GATEWAY) here."""
        return redirect_discord(self.url)

    # --- REST dispatch -----------------------------------------------------------
    async def _api(self, request: web.Request) -> web.StreamResponse:
        tail = request.match_info["tail"]
        path = "/" + tail.split("/", 1)[1] if re.match(r"v\d+(/|$)", tail) else "/" + tail
        body, files = await rest.read_body(request)
        record = RequestRecord(request.method, path, dict(request.query), body)
        self.requests.append(record)
        limited = self._over_global_limit(path)
        if limited is not None:
            record.faulted, record.status = True, 429
            return limited
        fault = self._fault(request.method, path)
        if fault is not None and fault.applied:
            await rest.route(self, request, record, files)  # it happened; the client just never hears so
        response = rest.fault_response(fault) if fault is not None else None
        if response is not None:
            record.faulted = True
        else:
            try:
                response = await rest.route(self, request, record, files)
            except Exception as exc:  # a stand-in bug: answer fast (400, no retries) and keep it
                log.exception("stand-in internal error on %s %s", request.method, path)
                self.internal_errors.append(traceback.format_exc())
                response = rest.error(400, 0, f"stand-in internal error: {exc!r}")
        record.status = response.status
        if isinstance(response, web.Response) and response.body is not None:
            try:
                record.response = json.loads(response.body)  # type: ignore[arg-type]
            except (TypeError, ValueError):
                record.response = None
        return response

    def _over_global_limit(self, path: str) -> web.Response | None:
        """Discord's global rate limit: more than `global_limit` requests in a second get a global 429."""
        if self.global_limit is None or path.startswith(("/interactions/", "/webhooks/")):
            return None
        now = time.monotonic()
        while self._recent and now - self._recent[0] >= 1.0:
            self._recent.popleft()
        if len(self._recent) >= self.global_limit:
            retry = max(0.001, 1.0 - (now - self._recent[0]))
            self.global_429s += 1
            return rest.fault_response(Fault("*", re.compile(""), 429, 1, None, retry, True))
        self._recent.append(now)
        return None

    def dms(self, user_id: int) -> list[StoredMessage]:
        """The messages the bot sent to one user by DM, oldest first."""
        channel = self.dm_of_user.get(user_id)
        return [m for m in self.stored.values() if channel is not None and m.channel_id == channel and not m.deleted]

    def _fault(self, method: str, path: str) -> Fault | None:
        for fault in self.faults:
            if fault.matches(method, path):
                fault.hits += 1
                if fault.remaining is not None:
                    fault.remaining -= 1
                return fault
        return None

    # --- test API ----------------------------------------------------------------
    def inject(
        self,
        method: str,
        path_regex: str,
        status: int,
        count: int | None = 1,
        body: Any = None,
        retry_after: float | None = None,
        *,
        is_global: bool = False,
        applied: bool = False,
    ) -> Fault:
        """Answer the next ``count`` (None: all) requests matching ``method`` ("*" for any)
        and ``path_regex`` (searched in the path after /api/v10) with ``status``.
        429 gets Discord's body and headers (retry_after defaults to 0.05 s); 403 defaults to
        50013 Missing Permissions, 404 to 10003 Unknown Channel, 5xx to a plain error.
        ``applied``: the request takes effect first and only its answer is replaced (Discord
        committed the message, then the client got a 5xx or lost the connection)."""
        fault = Fault(method.upper(), re.compile(path_regex), status, count, body, retry_after, is_global, applied=applied)
        self.faults.append(fault)
        return fault

    def clear_faults(self) -> None:
        self.faults.clear()

    def messages(self, channel_id: int | None = None, *, include_interactions: bool = False) -> list[StoredMessage]:
        """Messages created in a channel (all channels if None), oldest first, excluding
        deleted ones. Interaction responses/follow-ups only with ``include_interactions``."""
        return [
            m
            for m in self.stored.values()
            if (channel_id is None or m.channel_id == int(channel_id)) and not m.deleted and (include_interactions or m.source == "channel")
        ]

    def outgoing(self) -> list[RequestRecord]:
        """Every request that carried a message body (channel posts and edits, message
        callbacks, follow-ups, @original edits), accepted or not."""
        return [r for r in self.requests if r.message_body is not None]

    def unknown_routes(self) -> list[RequestRecord]:
        return [r for r in self.requests if r.route is None and not r.faulted]

    def seed_commands(self, commands: list[dict[str, Any]], guild_id: int | None = None) -> list[dict[str, Any]]:
        """Store commands as if synced earlier (``guild_id=None``: global); returns them with ids."""
        scope = guild_id
        stored = [{"type": 1, **c, "id": str(snowflake()), "application_id": str(self.app_id)} for c in commands]
        for cmd in stored:
            if scope is not None:
                cmd["guild_id"] = str(scope)
        self.commands[scope] = stored
        return stored

    def find_command(self, name: str, guild_id: int | None = None) -> dict[str, Any]:
        """A synced command by name: the guild's first, then global ones."""
        gid = self.guild_id if guild_id is None else guild_id
        for scope in (gid, None):
            for cmd in self.commands.get(scope, []):
                if cmd["name"] == name and cmd.get("type", 1) == 1:
                    return cmd
        raise LookupError(f"command {name!r} was not synced (guild {gid} or global)")

    async def invoke(
        self,
        name: str,
        options: dict[str, Any] | None = None,
        *,
        guild_id: int | None = None,
        channel_id: int | None = None,
        user_id: int | None = None,
        permissions: int = DEFAULT_EVERYONE,
        roles: list[int] | None = None,
        locale: str = "en-US",
    ) -> InteractionHandle:
        """Dispatch a slash command (``name`` may be "group sub") over the gateway."""
        return await self._inject(APPLICATION_COMMAND, name, options, None, guild_id, channel_id, user_id,
                                  permissions, roles, locale)  # fmt: skip

    async def autocomplete(
        self,
        name: str,
        focused: str,
        value: str = "",
        options: dict[str, Any] | None = None,
        *,
        guild_id: int | None = None,
        channel_id: int | None = None,
        user_id: int | None = None,
        permissions: int = DEFAULT_EVERYONE,
        roles: list[int] | None = None,
        locale: str = "en-US",
    ) -> InteractionHandle:
        """Dispatch an autocomplete interaction with ``focused`` being typed as ``value``."""
        opts = {**(options or {}), focused: value}
        return await self._inject(APPLICATION_COMMAND_AUTOCOMPLETE, name, opts, focused, guild_id, channel_id,
                                  user_id, permissions, roles, locale)  # fmt: skip

    async def _inject(self, kind, name, options, focused, guild_id, channel_id, user_id, permissions, roles, locale):
        parts = name.split()
        gid = guild_id if guild_id is not None else self.guild_id
        command = self.find_command(parts[0], gid)
        guild = self.guilds.get(gid)
        payload = build_interaction(
            self,
            command,
            kind=kind,
            path=parts[1:],
            options=options or {},
            focused=focused,
            guild_id=gid,
            channel_id=channel_id or (guild.channels[0].id if guild else self.channel_id),
            user_id=user_id or (next(iter(guild.members)) if guild and guild.members else snowflake()),
            permissions=permissions,
            roles=roles,
            locale=locale,
        )
        handle = InteractionHandle(payload, deadline=self.interaction_deadline, token_lifetime=self.token_lifetime)
        self.interactions[handle.id] = handle
        self.by_token[handle.token] = handle
        await self.gateway.dispatch("INTERACTION_CREATE", payload, guild_id=gid)
        return handle

    async def click(
        self,
        message_id: int,
        custom_id: str,
        *,
        user_id: int | None = None,
        permissions: int = DEFAULT_EVERYONE,
        roles: list[int] | None = None,
        locale: str = "en-US",
    ) -> InteractionHandle:
        """Click a button on a message (a MESSAGE_COMPONENT interaction); raises ValueError for a
        click Discord's client would not send (no such button, disabled, deleted, someone else's ephemeral)."""
        from .components import click

        return await click(self, message_id, custom_id, user_id=user_id, permissions=permissions, roles=roles, locale=locale)

    def threads(self, channel_id: int | None = None, guild_id: int | None = None) -> list[ChannelSpec]:
        """Active threads (of one parent channel, or all) in a guild."""
        guild = self.guilds[guild_id or self.guild_id]
        return [t for t in guild.threads if channel_id is None or t.parent_id == int(channel_id)]

    async def drop_gateway(self, code: int = 4000, *, abrupt: bool = False, shard_id: int | None = None) -> None:
        await self.gateway.drop(code, abrupt=abrupt, shard_id=shard_id)

    def shard_of(self, guild_id: int, num_shards: int | None = None) -> int:
        """The shard that gets a guild's events: ``(guild_id >> 22) % num_shards``."""
        return self.gateway.shard_of(guild_id, num_shards)

    def add_guilds_over_shards(self, num_shards: int, per_shard: int = 1, **options: Any) -> list[GuildSpec]:
        """Add ``per_shard`` guilds to each of ``num_shards`` shards (ids picked so that
        ``(id >> 22) % num_shards`` is that shard); returns them in shard order."""
        from .gateway import guild_id_in_shard

        return [self.add_guild(guild_id_in_shard(shard, num_shards), name=f"Guild {shard}.{i}", **options)
                for shard in range(num_shards) for i in range(per_shard)]  # fmt: skip
