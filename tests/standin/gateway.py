"""The gateway websocket: HELLO, IDENTIFY -> READY + GUILD_CREATE, heartbeats, RESUME."""

from __future__ import annotations

import asyncio
import json
import logging
import secrets
import traceback
import zlib
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from aiohttp import WSMsgType, web

from .models import Watchable

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
    seq: int = 0
    buffer: list[dict[str, Any]] = field(default_factory=list)
    conn: Connection | None = None
    resumes: int = 0

    @property
    def intents(self) -> int:
        return int(self.identify.get("intents") or 0)


class Gateway(Watchable):
    def __init__(self, standin: StandIn) -> None:
        super().__init__()
        self.standin = standin
        self.sessions: dict[str, Session] = {}
        self.current: Session | None = None
        self.identifies: list[dict[str, Any]] = []  # IDENTIFY payloads ("d"), token removed
        self.resumes: list[dict[str, Any]] = []
        self.connections: list[Connection] = []
        self.received: list[dict[str, Any]] = []  # every op the clients sent (token removed)

    # --- test API ----------------------------------------------------------------
    @property
    def connected(self) -> bool:
        return self.current is not None and self.current.conn is not None and not self.current.conn.ws.closed

    @property
    def intents(self) -> int | None:
        """Intents of the latest IDENTIFY."""
        return int(self.identifies[-1].get("intents") or 0) if self.identifies else None

    async def dispatch(self, event: str, data: dict[str, Any]) -> None:
        """Send an event to the current session (buffered for RESUME if disconnected)."""
        session = self.current
        if session is None:
            log.warning("no gateway session; dropping %s", event)
            return
        await self._dispatch(session, event, data)

    async def _dispatch(self, session: Session, event: str, data: dict[str, Any]) -> None:
        session.seq += 1
        payload = {"op": DISPATCH, "t": event, "s": session.seq, "d": data}
        session.buffer.append(payload)
        if session.conn is not None:
            try:
                await session.conn.send(payload)
            except (ConnectionError, RuntimeError):
                session.conn = None

    async def drop(self, code: int = 4000, *, abrupt: bool = False) -> None:
        """Close the current connection (4000 is resumable); the client reconnects and resumes.
        ``abrupt`` cuts the TCP connection without a close frame."""
        session = self.current
        if session is None or session.conn is None:
            raise RuntimeError("no connected gateway session")
        conn, session.conn = session.conn, None
        if abrupt:
            if conn.transport is not None:
                conn.transport.abort()
        else:
            await conn.ws.close(code=code, message=b"stand-in drop")
        self._notify()

    async def send_op(self, op: int, d: Any = None) -> None:
        """Send a raw opcode (e.g. RECONNECT 7, INVALID_SESSION 9) to the current connection."""
        if self.current is None or self.current.conn is None:
            raise RuntimeError("no connected gateway session")
        await self.current.conn.send({"op": op, "d": d})

    async def wait_identified(self, count: int = 1, timeout: float = 5.0) -> None:
        await self.wait_until(lambda: len(self.identifies) >= count, timeout)

    async def wait_resumed(self, count: int = 1, timeout: float = 5.0) -> None:
        await self.wait_until(lambda: len(self.resumes) >= count and self.connected, timeout)

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
                await ws.close(code=4002, message=b"Only json encoding is supported")
                return ws
            await conn.send({"op": HELLO, "d": {"heartbeat_interval": self.standin.heartbeat_interval_ms}})
            async for msg in ws:
                if msg.type not in (WSMsgType.TEXT, WSMsgType.BINARY):
                    break
                try:
                    data = json.loads(msg.data)
                except ValueError:
                    await ws.close(code=4002, message=b"Error while decoding payload.")
                    break
                op, d = data.get("op"), data.get("d")
                self.received.append({"op": op, "d": _without_token(d)})
                if op == HEARTBEAT:
                    conn.heartbeats += 1
                    await conn.send({"op": HEARTBEAT_ACK})
                elif op == IDENTIFY:
                    session = await self._identify(conn, d or {})
                elif op == RESUME:
                    session = await self._resume(conn, d or {})
                elif op == REQUEST_MEMBERS and session is not None:
                    await self._members_chunk(session, d or {})
                elif op in (PRESENCE, 4):
                    pass
                else:
                    await ws.close(code=4001, message=b"Unknown opcode.")
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
            self._notify()
        return ws

    async def _identify(self, conn: Connection, d: dict[str, Any]) -> Session | None:
        self.identifies.append(_without_token(d))
        if not self.standin.token_ok(d.get("token")):
            await conn.ws.close(code=4004, message=b"Authentication failed.")
            return None
        if "intents" not in d:
            await conn.ws.close(code=4013, message=b"Invalid intent(s).")
            return None
        if int(d["intents"]) & PRIVILEGED_INTENTS & ~self.standin.privileged_intents_enabled:
            await conn.ws.close(code=4014, message=b"Disallowed intent(s).")
            return None
        session = Session(id=secrets.token_hex(16), identify=_without_token(d), conn=conn)
        self.sessions[session.id] = session
        old, self.current = self.current, session
        if old is not None and old.conn is not None and old.conn is not conn:
            old.conn = None
        s = self.standin
        ready = {
            "v": 10,
            "user": s.bot_user(),
            "guilds": [{"id": str(g), "unavailable": True} for g in s.guilds],
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
            ready["shard"] = d["shard"]
        await self._dispatch(session, "READY", ready)
        for guild in s.guilds.values():
            await self._dispatch(session, "GUILD_CREATE", guild.payload(s.bot_member(guild.id)))
        return session

    async def _resume(self, conn: Connection, d: dict[str, Any]) -> Session | None:
        self.resumes.append(_without_token(d))
        session = self.sessions.get(str(d.get("session_id")))
        if session is None or not self.standin.token_ok(d.get("token")) or session is not self.current:
            await conn.send({"op": INVALID_SESSION, "d": False})
            return None
        session.conn = conn
        session.resumes += 1
        last = int(d.get("seq") or 0)
        for payload in session.buffer:
            if payload["s"] > last:
                await conn.send(payload)
        await self._dispatch(session, "RESUMED", {"_trace": ["standin"]})
        return session

    async def _members_chunk(self, session: Session, d: dict[str, Any]) -> None:
        guild = self.standin.guilds.get(int(d.get("guild_id") or 0))
        if guild is None:
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
