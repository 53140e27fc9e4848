"""Injected interactions: payload building and the handle a test awaits."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from .models import GuildSpec, StoredMessage, Watchable, new_token, snowflake
from .validation import FILE_SIZE_MAX

if TYPE_CHECKING:
    from .server import StandIn

APPLICATION_COMMAND = 2
MESSAGE_COMPONENT = 3
APPLICATION_COMMAND_AUTOCOMPLETE = 4
# callback (response) types
PONG, CHANNEL_MESSAGE, DEFERRED_CHANNEL_MESSAGE, DEFERRED_UPDATE, UPDATE_MESSAGE = 1, 4, 5, 6, 7
AUTOCOMPLETE_RESULT, MODAL = 8, 9
ALLOWED_CALLBACKS = {
    APPLICATION_COMMAND: {CHANNEL_MESSAGE, DEFERRED_CHANNEL_MESSAGE, MODAL, 12},
    APPLICATION_COMMAND_AUTOCOMPLETE: {AUTOCOMPLETE_RESULT},
    MESSAGE_COMPONENT: {CHANNEL_MESSAGE, DEFERRED_CHANNEL_MESSAGE, DEFERRED_UPDATE, UPDATE_MESSAGE, MODAL},
}


@dataclass
class CallbackAttempt:
    """One POST to ``/interactions/{id}/{token}/callback``, accepted or not."""

    status: int
    body: dict[str, Any] | None
    response: Any
    at: float = field(default_factory=time.monotonic)

    @property
    def error_code(self) -> int | None:
        return self.response.get("code") if isinstance(self.response, dict) else None


class InteractionHandle(Watchable):
    """An interaction the stand-in dispatched. ``await handle`` waits for the accepted
    callback and returns its parsed body (``{"type": ..., "data": ...}``)."""

    def __init__(self, payload: dict[str, Any], *, deadline: float, token_lifetime: float) -> None:
        super().__init__()
        self.payload = payload
        self.id = int(payload["id"])
        self.token: str = payload["token"]
        self.type: int = payload["type"]
        self.created = time.monotonic()
        self.deadline = deadline
        self.token_lifetime = token_lifetime
        self.callback: dict[str, Any] | None = None
        self.acked_at: float | None = None
        self.attempts: list[CallbackAttempt] = []
        self.original: StoredMessage | None = None  # a click's 6/7 make it the clicked message (@original)
        self.message: StoredMessage | None = None  # the message a click (type 3) was made on
        self.followups: list[StoredMessage] = []
        self.original_edits: list[dict[str, Any]] = []
        self.original_deleted = False

    def __repr__(self) -> str:
        data = self.payload.get("data") or {}
        name = data.get("name") or data.get("custom_id")
        return f"<InteractionHandle id={self.id} type={self.type} name={name!r} callback={self.response_type}>"

    def __await__(self):
        return self.wait_response().__await__()

    # --- state -------------------------------------------------------------------
    @property
    def response_type(self) -> int | None:
        return None if self.callback is None else self.callback.get("type")

    @property
    def data(self) -> dict[str, Any]:
        return (self.callback or {}).get("data") or {}

    @property
    def choices(self) -> list[dict[str, Any]]:
        return self.data.get("choices") or []

    @property
    def content(self) -> str | None:
        """Content of the visible response: the original message (after edits) if any."""
        if self.original is not None:
            return self.original.content
        return self.data.get("content")

    @property
    def ephemeral(self) -> bool:
        return bool(int(self.data.get("flags") or 0) & 64)

    def expired(self) -> bool:
        return time.monotonic() - self.created > self.token_lifetime

    def late(self) -> bool:
        return time.monotonic() - self.created > self.deadline

    @property
    def ack_seconds(self) -> float | None:
        """Seconds from dispatch to the accepted callback (None while unacknowledged)."""
        return None if self.acked_at is None else self.acked_at - self.created

    # --- waiting -----------------------------------------------------------------
    async def wait_response(self, timeout: float = 5.0) -> dict[str, Any]:
        """The accepted callback body (raises TimeoutError if none is accepted)."""
        await self.wait_until(lambda: self.callback is not None, timeout)
        assert self.callback is not None
        return self.callback

    async def wait_attempt(self, n: int = 1, timeout: float = 5.0) -> CallbackAttempt:
        """The n-th callback POST, whether it was accepted or refused."""
        await self.wait_until(lambda: len(self.attempts) >= n, timeout)
        return self.attempts[n - 1]

    async def wait_followups(self, n: int = 1, timeout: float = 5.0) -> list[StoredMessage]:
        await self.wait_until(lambda: len(self.followups) >= n, timeout)
        return self.followups

    async def wait_original_edit(self, n: int = 1, timeout: float = 5.0) -> StoredMessage:
        await self.wait_until(lambda: len(self.original_edits) >= n, timeout)
        assert self.original is not None
        return self.original

    def summary(self) -> dict[str, Any]:
        return {
            "id": str(self.id),
            "token": self.token,
            "type": self.type,
            "payload": self.payload,
            "callback": self.callback,
            "attempts": [{"status": a.status, "body": a.body, "response": a.response} for a in self.attempts],
            "original": None if self.original is None else self.original.summary(),
            "original_edits": self.original_edits,
            "original_deleted": self.original_deleted,
            "followups": [m.summary() for m in self.followups],
        }


def _find_option(defs: list[dict[str, Any]], name: str) -> dict[str, Any]:
    for opt in defs:
        if opt.get("name") == name:
            return opt
    raise KeyError(f"command has no option {name!r}; it has {[o.get('name') for o in defs]}")


def build_options(
    command: dict[str, Any],
    path: list[str],
    values: dict[str, Any],
    guild: GuildSpec | None,
    *,
    focused: str | None = None,
) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Options (and ``resolved``) for ``/name sub... opt=value`` from the synced definition."""
    defs = command.get("options") or []
    resolved: dict[str, dict[str, Any]] = {}
    leaf: list[dict[str, Any]] = []
    for name, value in values.items():
        odef = _find_option(defs_for(defs, path), name)
        otype = odef.get("type", 3)
        option: dict[str, Any] = {"name": name, "type": otype, "value": value}
        if name == focused:
            option["focused"] = True
            option["value"] = str(value)
        elif otype == 3:
            _check_length(odef, str(value))
        elif otype in (6, 7, 8, 9):
            option["value"] = str(value)
            _resolve(resolved, otype, int(value), guild)
        leaf.append(option)
    if focused is not None and focused not in values:
        odef = _find_option(defs_for(defs, path), focused)
        leaf.append({"name": focused, "type": odef.get("type", 3), "value": "", "focused": True})
    if focused is None:
        missing = [o["name"] for o in defs_for(defs, path) if o.get("required") and o["name"] not in values]
        if missing:
            raise ValueError(f"required option(s) {missing} missing: Discord's client would not send this")
    options = leaf
    level = defs
    nested: list[tuple[str, int]] = []
    for part in path:
        sub = _find_option(level, part)
        nested.append((part, sub.get("type", 1)))
        level = sub.get("options") or []
    for part, ptype in reversed(nested):
        options = [{"name": part, "type": ptype, "options": options}]
    return options, resolved


def _check_length(odef: dict[str, Any], value: str) -> None:
    """Discord's client will not send a string outside the option's min_length/max_length."""
    lo, hi = odef.get("min_length", 0), odef.get("max_length", 6000)
    if not lo <= len(value) <= hi:
        raise ValueError(f"option {odef.get('name')!r} takes {lo}–{hi} characters, not {len(value)}: Discord's client would not send this")


def defs_for(defs: list[dict[str, Any]], path: list[str]) -> list[dict[str, Any]]:
    for part in path:
        defs = _find_option(defs, part).get("options") or []
    return defs


def _resolve(resolved: dict[str, dict[str, Any]], otype: int, oid: int, guild: GuildSpec | None) -> None:
    if guild is None:
        return
    if otype in (6, 9) and (oid in guild.members or otype == 6):
        member = guild.member_payload(oid)
        user = member.pop("user")
        resolved.setdefault("users", {})[str(oid)] = user
        resolved.setdefault("members", {})[str(oid)] = member
    channel = guild.channel(oid)
    if otype in (7, 9) and channel is not None:
        resolved.setdefault("channels", {})[str(oid)] = {
            "id": str(oid),
            "name": channel.name,
            "type": channel.type,
            "permissions": str((1 << 41) - 1),
        }
    role = next((r for r in guild.roles if r.id == oid), None)
    if otype in (8, 9) and role is not None:
        resolved.setdefault("roles", {})[str(oid)] = role.payload()


def build_interaction(
    standin: StandIn,
    command: dict[str, Any],
    *,
    kind: int,
    path: list[str],
    options: dict[str, Any],
    focused: str | None,
    guild_id: int,
    channel_id: int,
    user_id: int,
    permissions: int,
    roles: list[int] | None,
    locale: str,
) -> dict[str, Any]:
    guild = standin.guilds.get(guild_id)
    opts, resolved = build_options(command, path, options, guild, focused=focused)
    data: dict[str, Any] = {"id": command["id"], "name": command["name"], "type": command.get("type", 1)}
    if command.get("guild_id"):
        data["guild_id"] = command["guild_id"]
    if opts:
        data["options"] = opts
    if resolved:
        data["resolved"] = resolved
    payload: dict[str, Any] = {
        "id": str(snowflake()),
        "application_id": str(standin.app_id),
        "type": kind,
        "token": new_token(),
        "version": 1,
        "data": data,
        "guild_id": str(guild_id),
        "channel_id": str(channel_id),
        "locale": locale,
        "guild_locale": "en-US",
        "app_permissions": str(standin.bot_permissions),
        "entitlements": [],
        "entitlement_sku_ids": [],
        "authorizing_integration_owners": {"0": str(guild_id)},
        "context": 0,
        "attachment_size_limit": FILE_SIZE_MAX,
    }
    if guild is not None:
        payload["guild"] = {"id": str(guild_id), "locale": "en-US", "features": []}
        member = guild.member_payload(user_id, permissions=permissions)
        if roles is not None:
            member["roles"] = [str(r) for r in roles]
        payload["member"] = member
        channel = guild.channel(channel_id)
        if channel is not None:
            payload["channel"] = channel.payload(guild_id)
    return payload
