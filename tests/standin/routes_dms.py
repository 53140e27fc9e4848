"""Direct messages: opening a DM channel, and Discord's refusal (50007) for users who do not accept them.

Opening a DM channel succeeds even for a user who refuses DMs; only the message fails (403, 50007),
as on Discord. A user who shares no guild with the bot cannot be messaged either.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from aiohttp import web

from .models import snowflake, user_payload
from .responses import error, json_response

if TYPE_CHECKING:
    from .rest import Req
    from .server import StandIn

CANNOT_MESSAGE = (403, 50007, "Cannot send messages to this user")


def dm_payload(channel_id: int, user_id: int) -> dict:
    return {"id": str(channel_id), "type": 1, "last_message_id": None, "flags": 0, "recipients": [user_payload(user_id, f"user{user_id % 10000}")]}


async def open_dm(s: StandIn, r: Req) -> web.Response:
    body = r.body if isinstance(r.body, dict) else {}
    try:
        user_id = int(body.get("recipient_id"))
    except (TypeError, ValueError):
        return error(400, 50035, "Invalid Form Body")
    channel_id = s.dm_of_user.get(user_id)
    if channel_id is None:
        channel_id = snowflake()
        s.dm_of_user[user_id] = channel_id
        s.dm_channels[channel_id] = user_id
    return json_response(dm_payload(channel_id, user_id))


def refuses_dm(s: StandIn, user_id: int) -> bool:
    shares_guild = any(user_id in g.members for g in s.guilds.values())
    return user_id in s.dms_closed or not shares_guild


ROUTES = [
    ("POST", r"/users/@me/channels", open_dm, True),
]

__all__ = ["CANNOT_MESSAGE", "ROUTES", "dm_payload", "refuses_dm"]
