"""Channel messages, interaction callbacks and interaction webhooks (follow-ups, @original)."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from aiohttp import web

from .gateway import GUILD_MESSAGES
from .interactions import (
    ALLOWED_CALLBACKS,
    AUTOCOMPLETE_RESULT,
    CHANNEL_MESSAGE,
    DEFERRED_CHANNEL_MESSAGE,
    DEFERRED_UPDATE,
    UPDATE_MESSAGE,
    CallbackAttempt,
    InteractionHandle,
)
from .models import StoredMessage, snowflake
from .responses import error, json_response, no_content
from .routes_dms import CANNOT_MESSAGE, refuses_dm
from .routes_threads import refuse_thread_post
from .validation import check_autocomplete, check_message, file_too_large, form_error, is_empty_message, too_many_files

if TYPE_CHECKING:
    from .rest import Req
    from .server import StandIn

LOADING = 1 << 7


def _invalid(problems: list) -> web.Response:
    return json_response(form_error(problems), 400)


def _message_body(r: Req) -> dict | web.Response:
    """The request's message body, or Discord's 400 when it breaks a limit."""
    body = r.body if isinstance(r.body, dict) else {}
    problems = check_message(body)
    return _invalid(problems) if problems else body


def _empty() -> web.Response:
    return error(400, 50006, "Cannot send an empty message")


def _files_refused(r: Req, base: tuple[str, ...] = ()) -> web.Response | None:
    """Discord's limits on attachments: at most 10 files, each within the upload limit."""
    problems = too_many_files(r.files, base)
    if problems:
        return _invalid(problems)
    if file_too_large(r.files):
        return error(413, 40005, "Request entity too large")
    return None


def _attachments(files: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [{"id": str(snowflake()), "filename": f["filename"] or "file", "size": f["size"], "url": "", "proxy_url": ""} for f in files]


def store_message(s: StandIn, channel_id: int, body: dict[str, Any], source: str, files: list[dict[str, Any]] | None = None) -> StoredMessage:
    guild = s.guild_of_channel(channel_id)
    msg = StoredMessage(
        id=snowflake(),
        channel_id=channel_id,
        guild_id=guild.id if guild else None,
        author=s.bot_user(),
        body=dict(body),
        source=source,
        attachments=_attachments(files or []),
        files=[f["data"] for f in files or []],
    )
    s.stored[msg.id] = msg
    return msg


# --- channel messages -------------------------------------------------------------------


async def create_message(s: StandIn, r: Req) -> web.Response:
    cid = r.int("channel_id")
    dm_user = s.dm_channels.get(cid)
    if s.guild_of_channel(cid) is None and dm_user is None:
        return error(404, 10003, "Unknown Channel")
    if dm_user is not None and refuses_dm(s, dm_user):
        return error(*CANNOT_MESSAGE)
    refused_in_thread = refuse_thread_post(s, cid)
    if refused_in_thread is not None:
        return refused_in_thread
    body = _message_body(r)
    if isinstance(body, web.Response):
        return body
    refused = _files_refused(r)
    if refused is not None:
        return refused
    if is_empty_message(body, bool(r.files)):
        return _empty()
    nonce = body.get("nonce")
    key = (cid, str(nonce))
    if nonce is not None and body.get("enforce_nonce"):
        previous = s.nonces.get(key)
        if previous is not None and time.time() - previous.created_at <= s.nonce_window:
            return json_response(previous.payload(with_nonce=True))
    msg = store_message(s, cid, body, "channel", r.files)
    if nonce is not None:
        s.nonces[key] = msg
    if dm_user is None:
        await s.gateway.dispatch("MESSAGE_CREATE", {**msg.payload(with_nonce=True), "member": {"roles": [], "joined_at": None}}, intents=GUILD_MESSAGES)
    return json_response(msg.payload(with_nonce=True))


def _channel_message(s: StandIn, r: Req) -> StoredMessage | web.Response:
    cid = r.int("channel_id")
    if s.guild_of_channel(cid) is None:
        return error(404, 10003, "Unknown Channel")
    msg = s.stored.get(r.int("message_id"))
    if msg is None or msg.channel_id != cid or msg.deleted:
        return error(404, 10008, "Unknown Message")
    return msg


async def get_message(s: StandIn, r: Req) -> web.Response:
    msg = _channel_message(s, r)
    return msg if isinstance(msg, web.Response) else json_response(msg.payload())


async def edit_message(s: StandIn, r: Req) -> web.Response:
    msg = _channel_message(s, r)
    if isinstance(msg, web.Response):
        return msg
    body = _message_body(r)
    if isinstance(body, web.Response):
        return body
    msg.apply_edit(body)
    return json_response(msg.payload())


async def delete_message(s: StandIn, r: Req) -> web.Response:
    msg = _channel_message(s, r)
    if isinstance(msg, web.Response):
        return msg
    msg.deleted = True
    return no_content()


async def list_messages(s: StandIn, r: Req) -> web.Response:
    cid = r.int("channel_id")
    if s.guild_of_channel(cid) is None:
        return error(404, 10003, "Unknown Channel")
    msgs = [m for m in s.messages(cid, include_interactions=True) if m.flags & 64 == 0]
    if "before" in r.query:
        msgs = [m for m in msgs if m.id < int(r.query["before"])]
    if "after" in r.query:
        msgs = [m for m in msgs if m.id > int(r.query["after"])]
    limit = max(1, min(100, int(r.query.get("limit", 50))))
    newest_first = sorted(msgs, key=lambda m: m.id, reverse=True)
    if "after" in r.query:
        newest_first = newest_first[-limit:]
    return json_response([m.payload() for m in newest_first[:limit]])


# --- interaction callback ---------------------------------------------------------------


async def interaction_callback(s: StandIn, r: Req) -> web.Response:
    handle = s.interactions.get(r.int("interaction_id"))
    if handle is None:
        return error(404, 10062, "Unknown interaction")
    body = r.body if isinstance(r.body, dict) else {}

    def refuse(response: web.Response) -> web.Response:
        handle.attempts.append(CallbackAttempt(response.status, body, _json(response)))
        handle._notify()
        return response

    if handle.token != r.params["token"]:
        return refuse(error(401, 50027, "Invalid Webhook Token"))
    if handle.callback is not None:
        return refuse(error(400, 40060, "Interaction has already been acknowledged."))
    if handle.late():
        return refuse(error(404, 10062, "Unknown interaction"))
    ctype = body.get("type")
    if ctype not in ALLOWED_CALLBACKS.get(handle.type, set()):
        problem = (("type",), "INTERACTION_RESPONSE_TYPE_INVALID", f"Invalid interaction response type {ctype}")
        return refuse(_invalid([problem]))
    data = body.get("data") or {}
    if ctype == CHANNEL_MESSAGE:
        problems = check_message(data, base=("data",))
        if problems:
            return refuse(_invalid(problems))
        refused = _files_refused(r, ("data",))
        if refused is not None:
            return refuse(refused)
        if is_empty_message(data, bool(r.files)):
            return refuse(_empty())
    elif ctype == AUTOCOMPLETE_RESULT:
        problems = check_autocomplete(data)
        if problems:
            return refuse(_invalid(problems))
    elif ctype in (DEFERRED_UPDATE, UPDATE_MESSAGE):
        refused = _update_refused(handle, data if ctype == UPDATE_MESSAGE else None)
        if refused is not None:
            return refuse(refused)
    channel_id = int(handle.payload.get("channel_id") or 0)
    if ctype == CHANNEL_MESSAGE:
        handle.original = store_message(s, channel_id, data, "interaction", r.files)
    elif ctype == DEFERRED_CHANNEL_MESSAGE:
        flags = int(data.get("flags") or 0) | LOADING
        handle.original = store_message(s, channel_id, {"content": "", "flags": flags}, "interaction")
    elif ctype in (DEFERRED_UPDATE, UPDATE_MESSAGE):
        handle.original = handle.message  # @original of a click is the message it was made on
        if ctype == UPDATE_MESSAGE:
            handle.message.apply_edit(data)  # type: ignore[union-attr]
            handle.original_edits.append(data)
    handle.callback = body
    handle.acked_at = time.monotonic()
    result = _callback_result(handle, ctype)
    attempt_response = result if r.query.get("with_response", "").lower() in ("1", "true") else None
    handle.attempts.append(CallbackAttempt(200 if attempt_response else 204, body, attempt_response))
    handle._notify()
    return json_response(result) if attempt_response is not None else no_content()


def _update_refused(handle: InteractionHandle, data: dict[str, Any] | None) -> web.Response | None:
    """Types 6 and 7 answer a click on a message that still exists; 7's data is a message edit."""
    if handle.message is None or handle.message.deleted:
        return error(404, 10008, "Unknown Message")
    if data is None:
        return None
    problems = check_message(data, base=("data",), flags=handle.message.flags)
    return _invalid(problems) if problems else None


def _callback_result(handle: InteractionHandle, ctype: int) -> dict[str, Any]:
    interaction: dict[str, Any] = {"id": str(handle.id), "type": handle.type}
    resource: dict[str, Any] = {"type": ctype}
    if handle.original is not None:
        interaction["response_message_id"] = str(handle.original.id)
        interaction["response_message_loading"] = ctype == DEFERRED_CHANNEL_MESSAGE
        interaction["response_message_ephemeral"] = bool(handle.original.flags & 64)
        if ctype == CHANNEL_MESSAGE:
            resource["message"] = handle.original.payload()
    return {"interaction": interaction, "resource": resource}


def _json(response: web.Response) -> Any:
    import json

    try:
        return json.loads(response.text or "null")
    except ValueError:
        return None


# --- interaction webhooks ---------------------------------------------------------------


def _webhook(s: StandIn, r: Req) -> InteractionHandle | web.Response:
    handle = s.by_token.get(r.params["token"])
    if handle is None or int(r.params["app_id"]) != s.app_id:
        return error(404, 10015, "Unknown Webhook")
    if handle.expired():
        return error(401, 50027, "Invalid Webhook Token")
    if handle.callback is None:
        return error(404, 10015, "Unknown Webhook")
    return handle


async def execute_webhook(s: StandIn, r: Req) -> web.Response:
    handle = _webhook(s, r)
    if isinstance(handle, web.Response):
        return handle
    body = _message_body(r)
    if isinstance(body, web.Response):
        return body
    refused = _files_refused(r)
    if refused is not None:
        return refused
    if is_empty_message(body, bool(r.files)):
        return _empty()
    msg = store_message(s, int(handle.payload.get("channel_id") or 0), body, "followup", r.files)
    handle.followups.append(msg)
    handle._notify()
    if r.query.get("wait", "").lower() in ("1", "true"):
        return json_response(msg.payload())
    return no_content()


def _webhook_message(s: StandIn, r: Req) -> tuple[InteractionHandle, StoredMessage] | web.Response:
    handle = _webhook(s, r)
    if isinstance(handle, web.Response):
        return handle
    mid = r.params["message_id"]
    msg = handle.original if mid == "@original" else next((m for m in handle.followups if str(m.id) == mid), None)
    if msg is None or msg.deleted:
        return error(404, 10008, "Unknown Message")
    return handle, msg


async def get_webhook_message(s: StandIn, r: Req) -> web.Response:
    found = _webhook_message(s, r)
    return found if isinstance(found, web.Response) else json_response(found[1].payload())


async def edit_webhook_message(s: StandIn, r: Req) -> web.Response:
    found = _webhook_message(s, r)
    if isinstance(found, web.Response):
        return found
    handle, msg = found
    body = _message_body(r)
    if isinstance(body, web.Response):
        return body
    msg.apply_edit(body)
    if msg.flags & LOADING:
        msg.body["flags"] = msg.flags & ~LOADING
    if msg is handle.original:
        handle.original_edits.append(body)
    handle._notify()
    return json_response(msg.payload())


async def delete_webhook_message(s: StandIn, r: Req) -> web.Response:
    found = _webhook_message(s, r)
    if isinstance(found, web.Response):
        return found
    handle, msg = found
    msg.deleted = True
    if msg is handle.original:
        handle.original_deleted = True
    handle._notify()
    return no_content()


_CH = r"/channels/(?P<channel_id>\d+)/messages"
_WH = r"/webhooks/(?P<app_id>\d+)/(?P<token>[^/]+)"
_WM = _WH + r"/messages/(?P<message_id>@original|\d+)"
ROUTES: list[tuple[str, str, Any, bool]] = [
    ("POST", _CH, create_message, True),
    ("GET", _CH, list_messages, True),
    ("GET", _CH + r"/(?P<message_id>\d+)", get_message, True),
    ("PATCH", _CH + r"/(?P<message_id>\d+)", edit_message, True),
    ("DELETE", _CH + r"/(?P<message_id>\d+)", delete_message, True),
    ("POST", r"/interactions/(?P<interaction_id>\d+)/(?P<token>[^/]+)/callback", interaction_callback, False),
    ("POST", _WH, execute_webhook, False),
    ("GET", _WM, get_webhook_message, False),
    ("PATCH", _WM, edit_webhook_message, False),
    ("DELETE", _WM, delete_webhook_message, False),
]
