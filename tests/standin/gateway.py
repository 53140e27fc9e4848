"""The gateway websocket: HELLO, IDENTIFY -> READY + GUILD_CREATE, heartbeats, RESUME."""

from __future__ import annotations

import asyncio
import json
import logging
import secrets
import time
import traceback
import zlib
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from aiohttp import WSMsgType, web

from .models import Watchable, snowflake

if TYPE_CHECKING:
    from .server import StandIn

log = logging.getLogger(__name__)

DISPATCH, HEARTBEAT, IDENTIFY, PRESENCE, RESUME, RECONNECT = 0, 1, 2, 3, 6, 7
REQUEST_MEMBERS, INVALID_SESSION, HELLO, HEARTBEAT_ACK = 8, 9, 10, 11

GUILD_MEMBERS = 1 << 1
GUILD_PRESENCES = 1 << 8
GUILD_MESSAGES = 1 << 9
MESSAGE_CONTENT = 1 << 15
PRIVILEGED_INTENTS = GUILD_MEMBERS | GUILD_PRESENCES | MESSAGE_CONTENT


class Connection:
    """One websocket connection (zlib-stream compressed if the client asked for it)."""

    def __init__(self, ws: web.WebSocketResponse, request: web.Request) -> None:
        self.ws = ws
        self.path = request.path
        self.query = dict(request.query)
        self.compress = self.query.get("compress") == "zlib-stream"
        self._zlib = zlib.compressobj() if self.compress else None
        self._lock = asyncio.Lock()
        self.heartbeats = 0
        self.transport = request.transport

    async def send(self, payload: dict[str, Any]) -> None:
        text = json.dumps(payload)
        async with self._lock:
            if self.ws.closed:
                return
            if self._zlib is not None:
                data = self._zlib.compress(text.encode()) + self._zlib.flush(zlib.Z_SYNC_FLUSH)
                await self.ws.send_bytes(data)
            else:
                await self.ws.send_str(text)


@dataclass
class Session:
    id: str
    identify: dict[str, Any]
    shard: tuple[int, int] = (0, 1)  # [shard_id, num_shards] of the IDENTIFY
    seq: int = 0
    buffer: list[dict[str, Any]] = field(default_factory=list)
    conn: Connection | None = None
    resumes: int = 0
    invalidated: bool = False  # closed by the client with 1000/1001, or by the stand-in: no RESUME, no events

    @property
    def intents(self) -> int:
        return int(self.identify.get("intents") or 0)

    @property
    def shard_id(self) -> int:
        return self.shard[0]

    @property
    def connected(self) -> bool:
        return self.conn is not None and not self.conn.ws.closed and not self.invalidated

    def owns(self, guild_id: int | None) -> bool:
        """Discord's routing: a guild's events go to ``(guild_id >> 22) % num_shards``; events
        without a guild (DMs) to shard 0."""
        shard_id, num_shards = self.shard
        if guild_id is None:
            return shard_id == 0
        return (int(guild_id) >> 22) % num_shards == shard_id


def shard_of(guild_id: int, num_shards: int) -> int:
    """The shard that receives a guild's events."""
    return (int(guild_id) >> 22) % num_shards


def guild_id_in_shard(shard_id: int, num_shards: int) -> int:
    """A fresh snowflake whose guild would live on ``shard_id`` of ``num_shards``."""
    base = snowflake()
    ms = base >> 22
    ms += (shard_id - ms % num_shards) % num_shards
    return (ms << 22) | (base & 0x3FFFFF)


def _event_guild(event: str, data: Any) -> int | None:
    if not isinstance(data, dict):
        return None
    if data.get("guild_id"):
        return int(data["guild_id"])
    if event in ("GUILD_CREATE", "GUILD_UPDATE", "GUILD_DELETE") and data.get("id"):
        return int(data["id"])
    return None


class Gateway(Watchable):
    """Any number of concurrent sessions, each identified for one ``[shard_id, num_shards]``.

    Rules kept from Discord: shard validation (4010), sharding required (4011), one IDENTIFY
    per ``identify_window`` per bucket ``shard_id % max_concurrency`` (op 9 past that), the
    daily session start limit (past it every session ends and the token is reset), routing
    by ``(guild_id >> 22) % num_shards`` (DMs to shard 0), and every live session of a shard
    gets that shard's events (several sessions may identify for the same shard)."""

    def __init__(self, standin: StandIn) -> None:
        super().__init__()
        self.standin = standin
        self.sessions: dict[str, Session] = {}
        self.current: Session | None = None  # the latest identified session
        self.identifies: list[dict[str, Any]] = []  # IDENTIFY payloads ("d"), token removed
        self.resumes: list[dict[str, Any]] = []
        self.connections: list[Connection] = []
        self.received: list[dict[str, Any]] = []  # every op the clients sent (token removed)
        self.rate_limited: list[dict[str, Any]] = []  # IDENTIFYs answered with op 9 (over max_concurrency)
        self.closes: list[tuple[int, str]] = []  # (code, reason) of every close the stand-in sent
        self._bucket_last: dict[int, float] = {}  # rate-limit key -> monotonic time of its last accepted IDENTIFY
        self.session_starts = 0  # IDENTIFYs counted against session_start_limit
        self._first_start: float | None = None

    # --- test API ----------------------------------------------------------------
    @property
    def connected(self) -> bool:
        """The latest identified session is connected."""
        return self.current is not None and self.current.connected

    @property
    def intents(self) -> int | None:
        """Intents of the latest IDENTIFY."""
        return int(self.identifies[-1].get("intents") or 0) if self.identifies else None

    def live_sessions(self) -> list[Session]:
        """Sessions that still receive events (connected or waiting for RESUME)."""
        return [s for s in self.sessions.values() if not s.invalidated]

    def sessions_for(self, shard_id: int, *, connected: bool = False) -> list[Session]:
        """Live sessions identified for ``shard_id`` (only connected ones with ``connected``)."""
        return [s for s in self.live_sessions() if s.shard_id == shard_id and (s.connected or not connected)]

    def shard_of(self, guild_id: int, num_shards: int | None = None) -> int:
        """The shard of a guild, for ``num_shards`` (default: the stand-in's recommended count)."""
        return shard_of(guild_id, num_shards or self.standin.shard_count_recommended)

    def connected_shards(self) -> dict[int, int]:
        """shard id -> number of connected sessions identified for it."""
        out: dict[int, int] = {}
        for s in self.live_sessions():
            if s.connected:
                out[s.shard_id] = out.get(s.shard_id, 0) + 1
        return dict(sorted(out.items()))

    async def wait_shards(self, shard_ids: set[int] | list[int] | range, timeout: float = 10.0, *, sessions: int = 1) -> None:
        """Wait until every shard in ``shard_ids`` has ``sessions`` connected sessions that got READY."""
        wanted = set(shard_ids)
        await self.wait_until(lambda: all(self.connected_shards().get(sh, 0) >= sessions for sh in wanted), timeout)

    def targets(self, guild_id: int | None, *, intents: int = 0) -> list[Session]:
        """The sessions an event of ``guild_id`` (None: no guild) goes to."""
        return [s for s in self.live_sessions() if s.owns(guild_id) and (s.intents & intents) == intents]

    async def dispatch(self, event: str, data: dict[str, Any], *, guild_id: int | None = None, intents: int = 0) -> int:
        """Send an event to every live session of the shard owning the guild (``guild_id``, else
        the payload's ``guild_id``, or ``id`` for GUILD_*; none: shard 0, as Discord does for DMs).
        Sessions without all of ``intents`` are skipped; a disconnected session buffers the
        event for RESUME. Returns the number of sessions it went to."""
        gid = guild_id if guild_id is not None else _event_guild(event, data)
        sessions = self.targets(gid, intents=intents)
        if not sessions:
            log.debug("no gateway session for guild %s; dropping %s", gid, event)
        for session in sessions:
            await self._dispatch(session, event, data)
        return len(sessions)

    async def _dispatch(self, session: Session, event: str, data: dict[str, Any]) -> None:
        session.seq += 1
        payload = {"op": DISPATCH, "t": event, "s": session.seq, "d": data}
        session.buffer.append(payload)
        if session.conn is not None:
            try:
                await session.conn.send(payload)
            except (ConnectionError, RuntimeError):
                session.conn = None

    def _chosen(self, shard_id: int | None) -> list[Session]:
        if shard_id is None:
            sessions = [self.current] if self.current is not None and self.current.conn is not None else []
        else:
            sessions = [s for s in self.sessions_for(shard_id) if s.conn is not None]
        if not sessions:
            raise RuntimeError("no connected gateway session" + ("" if shard_id is None else f" for shard {shard_id}"))
        return sessions

    async def drop(self, code: int = 4000, *, abrupt: bool = False, shard_id: int | None = None) -> int:
        """Close the connection of the latest session, or of every session of ``shard_id``
        (4000 is resumable); the client reconnects and resumes. ``abrupt`` cuts the TCP
        connection without a close frame. Returns the number of connections closed."""
        sessions = self._chosen(shard_id)
        for session in sessions:
            conn, session.conn = session.conn, None
            assert conn is not None
            if abrupt:
                if conn.transport is not None:
                    conn.transport.abort()
            else:
                await self._close(conn, code, "stand-in drop")
        self._notify()
        return len(sessions)

    async def send_op(self, op: int, d: Any = None, *, shard_id: int | None = None) -> None:
        """Send a raw opcode (e.g. RECONNECT 7, INVALID_SESSION 9) to the latest session's
        connection, or to every session of ``shard_id``. ``9`` with ``d=False`` invalidates
        the session, as Discord does."""
        for session in self._chosen(shard_id):
            assert session.conn is not None
            await session.conn.send({"op": op, "d": d})
            if op == INVALID_SESSION and not d:
                session.invalidated = True
        self._notify()

    async def wait_identified(self, count: int = 1, timeout: float = 5.0) -> None:
        await self.wait_until(lambda: len(self.identifies) >= count, timeout)

    async def wait_resumed(self, count: int = 1, timeout: float = 5.0) -> None:
        await self.wait_until(lambda: len(self.resumes) >= count and self.connected, timeout)

    def session_start_limit(self) -> dict[str, int]:
        """What GET /gateway/bot reports."""
        s = self.standin
        reset_after = 0
        if self._first_start is not None:
            reset_after = max(0, int((self._first_start + 86400 - time.monotonic()) * 1000))
        return {
            "total": s.session_start_total,
            "remaining": max(0, s.session_start_total - self.session_starts),
            "reset_after": reset_after,
            "max_concurrency": s.max_concurrency,
        }

    # --- websocket handler -------------------------------------------------------
    async def handle(self, request: web.Request) -> web.StreamResponse:
        ws = web.WebSocketResponse(autoping=True, max_msg_size=0)
        await ws.prepare(request)
        conn = Connection(ws, request)
        self.connections.append(conn)
        self.standin._ws.add(ws)
        session: Session | None = None
        try:
            if request.query.get("encoding", "json") != "json":
                await self._close(conn, 4002, "Only json encoding is supported")
                return ws
            await conn.send({"op": HELLO, "d": {"heartbeat_interval": self.standin.heartbeat_interval_ms}})
            async for msg in ws:
                if msg.type not in (WSMsgType.TEXT, WSMsgType.BINARY):
                    break
                try:
                    data = json.loads(msg.data)
                except ValueError:
                    await self._close(conn, 4002, "Error while decoding payload.")
                    break
                op, d = data.get("op"), data.get("d")
                self.received.append({"op": op, "d": _without_token(d)})
                if op == HEARTBEAT:
                    conn.heartbeats += 1
                    await conn.send({"op": HEARTBEAT_ACK})
                elif op == IDENTIFY:
                    if session is not None and session.conn is conn:
                        await self._close(conn, 4005, "Already authenticated.")
                        break
                    session = await self._identify(conn, d or {})
                elif op == RESUME:
                    session = await self._resume(conn, d or {})
                elif op == REQUEST_MEMBERS and session is not None:
                    await self._members_chunk(session, d or {})
                elif op in (PRESENCE, 4):
                    pass
                else:
                    await self._close(conn, 4001, "Unknown opcode.")
                    break
                self._notify()
        except Exception:
            log.exception("stand-in gateway error")
            self.standin.internal_errors.append(traceback.format_exc())
            await ws.close(code=4000, message=b"stand-in internal error")
        finally:
            self.standin._ws.discard(ws)
            if session is not None and session.conn is conn:
                session.conn = None
                if ws.close_code in (1000, 1001):  # Discord: a clean close by the client ends the session
                    session.invalidated = True
            self._notify()
        return ws

    async def _close(self, conn: Connection, code: int, reason: str) -> None:
        self.closes.append((code, reason))
        await conn.ws.close(code=code, message=reason.encode())

    async def _identify(self, conn: Connection, d: dict[str, Any]) -> Session | None:
        s = self.standin
        self.identifies.append(_without_token(d))
        if not s.token_ok(d.get("token")):
            await self._close(conn, 4004, "Authentication failed.")
            return None
        if self.session_starts >= s.session_start_total:
            # Discord: past the daily limit every session of the bot ends and its token is reset
            s.token_reset = True
            for other in self.sessions.values():
                other.invalidated = True
                if other.conn is not None:
                    await self._close(other.conn, 4004, "Authentication failed.")
                    other.conn = None
            await self._close(conn, 4004, "Authentication failed.")
            return None
        self.session_starts += 1
        if self._first_start is None:
            self._first_start = time.monotonic()
        if "intents" not in d:
            await self._close(conn, 4013, "Invalid intent(s).")
            return None
        if int(d["intents"]) & PRIVILEGED_INTENTS & ~s.privileged_intents_enabled:
            await self._close(conn, 4014, "Disallowed intent(s).")
            return None
        shard = d.get("shard")
        if shard is None:
            shard = [0, 1]
        if (
            not isinstance(shard, list)
            or len(shard) != 2
            or not all(isinstance(x, int) and not isinstance(x, bool) for x in shard)
            or shard[1] < 1
            or not 0 <= shard[0] < shard[1]
        ):
            await self._close(conn, 4010, "Invalid shard.")
            return None
        shard_id, num_shards = shard
        guild_ids = [g for g in s.guilds if shard_of(g, num_shards) == shard_id]
        if len(guild_ids) >= s.guilds_per_shard:
            await self._close(conn, 4011, "Sharding required.")
            return None
        key = shard_id % max(1, s.max_concurrency)
        now = time.monotonic()
        last = self._bucket_last.get(key)
        if last is not None and now - last < s.identify_window:
            self.rate_limited.append(_without_token(d))
            await conn.send({"op": INVALID_SESSION, "d": False})
            return None
        self._bucket_last[key] = now
        session = Session(id=secrets.token_hex(16), identify=_without_token(d), shard=(shard_id, num_shards), conn=conn)
        self.sessions[session.id] = session
        self.current = session
        ready = {
            "v": 10,
            "user": s.bot_user(),
            "guilds": [{"id": str(g), "unavailable": True} for g in guild_ids],
            "session_id": session.id,
            "session_type": "normal",
            "resume_gateway_url": f"{s.ws_url}/resume-gateway",
            "application": {"id": str(s.app_id), "flags": s.app_flags},
            "private_channels": [],
            "relationships": [],
            "presences": [],
            "user_settings": {},
            "_trace": ['["standin"]'],
        }
        if d.get("shard") is not None:
            ready["shard"] = [shard_id, num_shards]
        await self._dispatch(session, "READY", ready)
        for gid in guild_ids:
            await self._dispatch(session, "GUILD_CREATE", s.guilds[gid].payload(s.bot_member(gid)))
        return session

    async def _resume(self, conn: Connection, d: dict[str, Any]) -> Session | None:
        self.resumes.append(_without_token(d))
        session = self.sessions.get(str(d.get("session_id")))
        if session is None or session.invalidated or not self.standin.token_ok(d.get("token")):
            await conn.send({"op": INVALID_SESSION, "d": False})
            return None
        old, session.conn = session.conn, conn
        if old is not None and old is not conn and not old.ws.closed:
            await self._close(old, 4000, "Session resumed elsewhere.")
        session.resumes += 1
        last = int(d.get("seq") or 0)
        for payload in session.buffer:
            if payload["s"] > last:
                await conn.send(payload)
        await self._dispatch(session, "RESUMED", {"_trace": ["standin"]})
        return session

    async def _members_chunk(self, session: Session, d: dict[str, Any]) -> None:
        guild = self.standin.guilds.get(int(d.get("guild_id") or 0))
        if guild is None or not session.owns(guild.id):
            return
        members = [self.standin.bot_member(guild.id)] + [guild.member_payload(u) for u in guild.members]
        chunk = {"guild_id": str(guild.id), "members": members, "chunk_index": 0, "chunk_count": 1}
        if d.get("nonce"):
            chunk["nonce"] = d["nonce"]
        await self._dispatch(session, "GUILD_MEMBERS_CHUNK", chunk)

    async def close_all(self) -> None:
        for session in self.sessions.values():
            if session.conn is not None:
                await session.conn.ws.close(code=1001, message=b"stand-in shutting down")
                session.conn = None


def _without_token(d: Any) -> Any:
    if isinstance(d, dict) and "token" in d:
        return {**d, "token": "<redacted>"}
    return d
