"""Message components (buttons) and the clicks on them: Discord's limits, and what its client sends.

A click is an interaction of type 3 (MESSAGE_COMPONENT) carrying the message it was made on. The
client only offers what the message shows: a button that exists, is not disabled, on a message that
was not deleted; an ephemeral message is seen (and clicked) only by the user it was sent to.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .models import DEFAULT_EVERYONE, StoredMessage, new_token, snowflake
from .validation import FILE_SIZE_MAX, Problem

if TYPE_CHECKING:
    from .interactions import InteractionHandle
    from .server import StandIn

MESSAGE_COMPONENT = 3
ACTION_ROW, BUTTON = 1, 2
SELECTS = {3, 5, 6, 7, 8}
LINK, PREMIUM = 5, 6
ROWS_MAX = 5
BUTTONS_PER_ROW = 5
CUSTOM_ID_MAX = 100
LABEL_MAX = 80
COMPONENTS_V2 = 1 << 15


def _problem(path: tuple[str, ...], code: str, message: str) -> Problem:
    return (path, code, message)


def check_components(components: Any, base: tuple[str, ...] = (), flags: int = 0) -> list[Problem]:
    """Classic (non-V2) components: at most 5 action rows, each 5 buttons or one select;
    custom_id 1–100 and unique in the message, label at most 80, link buttons with a url only."""
    if components is None or flags & COMPONENTS_V2:
        return []
    p = (*base, "components")
    if not isinstance(components, list):
        return [_problem(p, "BASE_TYPE_ARRAY", "Must be an array")]
    problems: list[Problem] = []
    if len(components) > ROWS_MAX:
        problems.append(_problem(p, "BASE_TYPE_MAX_LENGTH", f"Must be {ROWS_MAX} or fewer in length."))
    seen: set[str] = set()
    for i, row in enumerate(components):
        rp = (*p, str(i))
        if not isinstance(row, dict) or row.get("type") != ACTION_ROW:
            problems.append(_problem((*rp, "type"), "UNION_TYPE_CHOICES", 'Value of field "type" must be one of (1,).'))
            continue
        items = row.get("components") or []
        if not items:
            problems.append(_problem((*rp, "components"), "BASE_TYPE_BAD_LENGTH", "Must be between 1 and 5 in length."))
        has_select = any(c.get("type") in SELECTS for c in items)
        if len(items) > BUTTONS_PER_ROW or (has_select and len(items) > 1):
            problems.append(_problem((*rp, "components"), "BASE_TYPE_MAX_LENGTH", "Must be 5 or fewer in length (one select per row)."))
        for j, item in enumerate(items):
            problems += _check_item(item, (*rp, "components", str(j)), seen)
    return problems


def _check_item(item: dict[str, Any], p: tuple[str, ...], seen: set[str]) -> list[Problem]:
    problems: list[Problem] = []
    custom_id, style = item.get("custom_id"), item.get("style")
    if item.get("type") == BUTTON:
        if style == LINK:
            if not item.get("url") or custom_id is not None:
                problems.append(_problem(p, "BUTTON_COMPONENT_INVALID_URL", "A link button needs a url and no custom_id."))
        elif style == PREMIUM:
            if not item.get("sku_id"):
                problems.append(_problem((*p, "sku_id"), "BASE_TYPE_REQUIRED", "This field is required"))
        elif style not in (1, 2, 3, 4):
            problems.append(_problem((*p, "style"), "BASE_TYPE_CHOICES", "Value must be one of {1, 2, 3, 4, 5, 6}."))
        elif custom_id is None:
            problems.append(_problem((*p, "custom_id"), "BASE_TYPE_REQUIRED", "This field is required"))
        label = item.get("label")
        if label is not None and len(str(label)) > LABEL_MAX:
            problems.append(_problem((*p, "label"), "BASE_TYPE_MAX_LENGTH", f"Must be {LABEL_MAX} or fewer in length."))
        if not label and not item.get("emoji") and style != PREMIUM:
            problems.append(_problem(p, "BUTTON_COMPONENT_LABEL_OR_EMOJI_REQUIRED", "A button needs a label or an emoji."))
    elif item.get("type") not in SELECTS:
        problems.append(_problem((*p, "type"), "UNION_TYPE_CHOICES", 'Value of field "type" must be a button or a select.'))
    if custom_id is not None:
        if not 1 <= len(str(custom_id)) <= CUSTOM_ID_MAX:
            problems.append(_problem((*p, "custom_id"), "BASE_TYPE_BAD_LENGTH", f"Must be between 1 and {CUSTOM_ID_MAX} in length."))
        if str(custom_id) in seen:
            problems.append(_problem((*p, "custom_id"), "COMPONENT_CUSTOM_ID_DUPLICATED", "Component custom id cannot be duplicated"))
        seen.add(str(custom_id))
    return problems


def find_component(message: StoredMessage, custom_id: str) -> dict[str, Any] | None:
    for row in message.body.get("components") or []:
        for item in row.get("components") or []:
            if item.get("custom_id") == custom_id:
                return item
    return None


def custom_ids(message: StoredMessage) -> list[str]:
    """Every clickable custom_id on a message, in order (for tests)."""
    return [c["custom_id"] for row in message.body.get("components") or [] for c in row.get("components") or [] if c.get("custom_id")]


def clickable(standin: StandIn, message: StoredMessage, custom_id: str, user_id: int) -> str | None:
    """Why Discord's client would not send this click, or None when it would."""
    if message.deleted:
        return f"message {message.id} was deleted"
    item = find_component(message, custom_id)
    if item is None:
        return f"message {message.id} has no component {custom_id!r}; it has {custom_ids(message)}"
    if item.get("disabled"):
        return f"button {custom_id!r} is disabled"
    if message.flags & 64:
        owner = next((h for h in standin.interactions.values() if h.original is message or message in h.followups), None)
        invoker = None if owner is None else int(((owner.payload.get("member") or {}).get("user") or owner.payload.get("user") or {}).get("id", 0))
        if invoker != user_id:
            return f"ephemeral message {message.id} is only shown to user {invoker}"
    return None


def build_click(
    standin: StandIn,
    message: StoredMessage,
    custom_id: str,
    *,
    user_id: int,
    permissions: int = DEFAULT_EVERYONE,
    roles: list[int] | None = None,
    locale: str = "en-US",
) -> dict[str, Any]:
    """The INTERACTION_CREATE payload of a button click on `message`."""
    item = find_component(message, custom_id) or {}
    guild = standin.guilds.get(message.guild_id) if message.guild_id else None
    payload: dict[str, Any] = {
        "id": str(snowflake()),
        "application_id": str(standin.app_id),
        "type": MESSAGE_COMPONENT,
        "token": new_token(),
        "version": 1,
        "data": {"custom_id": custom_id, "component_type": item.get("type", BUTTON)},
        "channel_id": str(message.channel_id),
        "message": message.payload(),
        "locale": locale,
        "app_permissions": str(standin.bot_permissions),
        "entitlements": [],
        "authorizing_integration_owners": {"0": str(message.guild_id or 0)},
        "context": 0,
        "attachment_size_limit": FILE_SIZE_MAX,
    }
    if guild is not None:
        payload["guild_id"] = str(guild.id)
        payload["guild_locale"] = "en-US"
        payload["guild"] = {"id": str(guild.id), "locale": "en-US", "features": []}
        member = guild.member_payload(user_id, permissions=permissions)
        if roles is not None:
            member["roles"] = [str(r) for r in roles]
        payload["member"] = member
        channel = guild.channel(message.channel_id)
        if channel is not None:
            payload["channel"] = channel.payload(guild.id)
    return payload


async def click(
    standin: StandIn,
    message_id: int,
    custom_id: str,
    *,
    user_id: int | None = None,
    permissions: int = DEFAULT_EVERYONE,
    roles: list[int] | None = None,
    locale: str = "en-US",
) -> InteractionHandle:
    """Click a button as a member would: only a button the message shows, then one INTERACTION_CREATE."""
    from .interactions import InteractionHandle

    message = standin.stored.get(int(message_id))
    if message is None:
        raise LookupError(f"no message {message_id}")
    guild = standin.guilds.get(message.guild_id) if message.guild_id else None
    uid = user_id or (next(iter(guild.members)) if guild and guild.members else snowflake())
    why = clickable(standin, message, custom_id, uid)
    if why is not None:
        raise ValueError(f"{why}: Discord's client would not send this click")
    payload = build_click(standin, message, custom_id, user_id=uid, permissions=permissions, roles=roles, locale=locale)
    handle = InteractionHandle(payload, deadline=standin.interaction_deadline, token_lifetime=standin.token_lifetime)
    handle.message = message
    standin.interactions[handle.id] = handle
    standin.by_token[handle.token] = handle
    await standin.gateway.dispatch("INTERACTION_CREATE", payload, guild_id=guild.id if guild is not None else None)
    return handle
