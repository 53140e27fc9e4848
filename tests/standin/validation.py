"""Discord's documented limits, checked the way the API checks them.

Every check returns a list of ``(path, code, message)`` problems; :func:`form_error`
turns that list into the ``{"code": 50035, "message": "Invalid Form Body", "errors": ...}``
body that Discord answers with (HTTP 400).
"""

from __future__ import annotations

import re
import unicodedata
from typing import Any

Problem = tuple[tuple[str, ...], str, str]

CONTENT_MAX = 2000
EMBEDS_MAX = 10
EMBED_TITLE_MAX = 256
EMBED_DESCRIPTION_MAX = 4096
EMBED_FIELDS_MAX = 25
EMBED_FIELD_NAME_MAX = 256
EMBED_FIELD_VALUE_MAX = 1024
EMBED_FOOTER_MAX = 2048
EMBED_AUTHOR_MAX = 256
EMBED_TOTAL_MAX = 6000
AUTOCOMPLETE_CHOICES_MAX = 25
CHOICE_NAME_MAX = 100
CHOICE_VALUE_MAX = 100
COMMAND_NAME_MAX = 32
COMMAND_DESCRIPTION_MAX = 100
COMMAND_OPTIONS_MAX = 25
CHAT_COMMANDS_MAX = 100
CONTEXT_COMMANDS_MAX = 5
NONCE_MAX = 25
FILES_MAX = 10  # attachments per message
FILE_SIZE_MAX = 10 * 1024 * 1024  # bytes per file for a bot in an unboosted guild: the interaction's attachment_size_limit

EPHEMERAL = 1 << 6


def form_error(problems: list[Problem]) -> dict[str, Any]:
    """Discord's ``Invalid Form Body`` error body for a list of problems."""
    errors: dict[str, Any] = {}
    for path, code, message in problems:
        node = errors
        for part in path:
            node = node.setdefault(part, {})
        node.setdefault("_errors", []).append({"code": code, "message": message})
    return {"code": 50035, "message": "Invalid Form Body", "errors": errors}


def _too_long(path: tuple[str, ...], limit: int) -> Problem:
    return (path, "BASE_TYPE_MAX_LENGTH", f"Must be {limit} or fewer in length.")


def _length(value: Any, path: tuple[str, ...], lo: int, hi: int) -> list[Problem]:
    if value is None:
        return [] if lo == 0 else [(path, "BASE_TYPE_REQUIRED", "This field is required")]
    text = str(value)
    if len(text) > hi:
        return [_too_long(path, hi)]
    if len(text) < lo:
        return [(path, "BASE_TYPE_BAD_LENGTH", f"Must be between {lo} and {hi} in length.")]
    return []


def embed_length(embed: dict[str, Any]) -> int:
    """Characters counted toward the 6000 limit, as Discord counts them."""
    total = len(embed.get("title") or "") + len(embed.get("description") or "")
    for field in embed.get("fields") or []:
        total += len(field.get("name") or "") + len(field.get("value") or "")
    total += len((embed.get("footer") or {}).get("text") or "")
    total += len((embed.get("author") or {}).get("name") or "")
    return total


def check_embeds(embeds: list[dict[str, Any]], base: tuple[str, ...] = ()) -> list[Problem]:
    problems: list[Problem] = []
    if len(embeds) > EMBEDS_MAX:
        problems.append(((*base, "embeds"), "BASE_TYPE_MAX_LENGTH", f"Must be {EMBEDS_MAX} or fewer in length."))
    for i, embed in enumerate(embeds):
        p = (*base, "embeds", str(i))
        problems += _length(embed.get("title"), (*p, "title"), 0, EMBED_TITLE_MAX)
        problems += _length(embed.get("description"), (*p, "description"), 0, EMBED_DESCRIPTION_MAX)
        fields = embed.get("fields") or []
        if len(fields) > EMBED_FIELDS_MAX:
            problems.append(_too_long((*p, "fields"), EMBED_FIELDS_MAX))
        for j, field in enumerate(fields):
            fp = (*p, "fields", str(j))
            problems += _length(field.get("name"), (*fp, "name"), 1, EMBED_FIELD_NAME_MAX)
            problems += _length(field.get("value"), (*fp, "value"), 1, EMBED_FIELD_VALUE_MAX)
        if embed.get("footer") is not None:
            problems += _length(embed["footer"].get("text"), (*p, "footer", "text"), 1, EMBED_FOOTER_MAX)
        if embed.get("author") is not None:
            problems += _length(embed["author"].get("name"), (*p, "author", "name"), 1, EMBED_AUTHOR_MAX)
    if sum(embed_length(e) for e in embeds) > EMBED_TOTAL_MAX:
        problems.append(((*base, "embeds"), "MAX_EMBED_SIZE_EXCEEDED", f"Embed size exceeds maximum size of {EMBED_TOTAL_MAX}"))
    return problems


def check_allowed_mentions(am: Any, base: tuple[str, ...] = ()) -> list[Problem]:
    if am is None:
        return []
    p = (*base, "allowed_mentions")
    parse = am.get("parse") or []
    problems: list[Problem] = []
    for kind in ("users", "roles"):
        if kind in parse and am.get(kind):
            problems.append(
                (
                    p,
                    "MESSAGE_ALLOWED_MENTIONS_PARSE_EXCLUSIVE",
                    f'parse:["{kind}"] and {kind}: [ids] are mutually exclusive.',
                )
            )
        if len(am.get(kind) or []) > 100:
            problems.append(_too_long((*p, kind), 100))
    for item in parse:
        if item not in ("users", "roles", "everyone"):
            problems.append(((*p, "parse"), "BASE_TYPE_CHOICES", f"Value must be one of users, roles, everyone ({item})."))
    return problems


def check_message(body: dict[str, Any], *, base: tuple[str, ...] = (), has_files: bool = False, flags: int = 0) -> list[Problem]:
    """Checks a message create/edit body (also the ``data`` of a type 4 or 7 callback);
    `flags`: the edited message's, when the body does not say."""
    from .components import check_components  # components imports models, which imports this module

    problems: list[Problem] = []
    content = body.get("content")
    if content is not None and len(str(content)) > CONTENT_MAX:
        problems.append(_too_long((*base, "content"), CONTENT_MAX))
    problems += check_embeds(body.get("embeds") or [], base)
    problems += check_allowed_mentions(body.get("allowed_mentions"), base)
    nonce = body.get("nonce")
    if nonce is not None and len(str(nonce)) > NONCE_MAX:
        problems.append(_too_long((*base, "nonce"), NONCE_MAX))
    problems += check_components(body.get("components"), base, int(body.get("flags") or flags or 0))
    return problems


def too_many_files(files: list[dict[str, Any]], base: tuple[str, ...] = ()) -> list[Problem]:
    """At most 10 files (multipart parts ``files[n]``) per message."""
    return [_too_long((*base, "attachments"), FILES_MAX)] if len(files) > FILES_MAX else []


def file_too_large(files: list[dict[str, Any]], limit: int = FILE_SIZE_MAX) -> bool:
    """Discord answers 413 (code 40005, "Request entity too large") to a file over the upload limit."""
    return any(f["size"] > limit for f in files)


def is_empty_message(body: dict[str, Any], has_files: bool = False) -> bool:
    keys = ("embeds", "components", "sticker_ids", "poll", "attachments")
    return not (body.get("content") or has_files or any(body.get(k) for k in keys))


def check_autocomplete(data: dict[str, Any] | None) -> list[Problem]:
    choices = (data or {}).get("choices")
    if choices is None:
        return [(("data", "choices"), "BASE_TYPE_REQUIRED", "This field is required")]
    problems: list[Problem] = []
    if len(choices) > AUTOCOMPLETE_CHOICES_MAX:
        problems.append(_too_long(("data", "choices"), AUTOCOMPLETE_CHOICES_MAX))
    for i, choice in enumerate(choices):
        p = ("data", "choices", str(i))
        problems += _length(choice.get("name"), (*p, "name"), 1, CHOICE_NAME_MAX)
        value = choice.get("value")
        if value is None:
            problems.append(((*p, "value"), "BASE_TYPE_REQUIRED", "This field is required"))
        elif isinstance(value, str) and len(value) > CHOICE_VALUE_MAX:
            problems.append(_too_long((*p, "value"), CHOICE_VALUE_MAX))
    return problems


# --- application commands -------------------------------------------------------------


def valid_chat_name(name: Any) -> bool:
    """``^[-_'\\p{L}\\p{N}]{1,32}$`` and lowercase (Python's ``re`` has no ``\\p``)."""
    if not isinstance(name, str) or not 1 <= len(name) <= COMMAND_NAME_MAX:
        return False
    for ch in name:
        if ch not in "-_'" and unicodedata.category(ch)[0] not in "LN":
            return False
        if ch.lower() != ch:
            return False
    return True


def _check_option(opt: dict[str, Any], p: tuple[str, ...], depth: int) -> tuple[list[Problem], int]:
    problems: list[Problem] = []
    if not valid_chat_name(opt.get("name")):
        problems.append(((*p, "name"), "APPLICATION_COMMAND_INVALID_NAME", "Command name is invalid"))
    problems += _length(opt.get("description"), (*p, "description"), 1, COMMAND_DESCRIPTION_MAX)
    size = len(opt.get("name") or "") + len(opt.get("description") or "")
    choices = opt.get("choices") or []
    if len(choices) > AUTOCOMPLETE_CHOICES_MAX:
        problems.append(_too_long((*p, "choices"), AUTOCOMPLETE_CHOICES_MAX))
    if choices and opt.get("autocomplete"):
        problems.append(((*p, "autocomplete"), "AUTOCOMPLETE_AND_CHOICES", "Autocomplete cannot be used with choices"))
    for i, choice in enumerate(choices):
        cp = (*p, "choices", str(i))
        problems += _length(choice.get("name"), (*cp, "name"), 1, CHOICE_NAME_MAX)
        if isinstance(choice.get("value"), str):
            problems += _length(choice["value"], (*cp, "value"), 1, CHOICE_VALUE_MAX)
        size += len(choice.get("name") or "") + len(str(choice.get("value", "")))
    sub, subsize = _check_options(opt.get("options") or [], p, depth + 1)
    if opt.get("type") in (1, 2) and depth >= 2:
        problems.append(((*p, "type"), "APPLICATION_COMMAND_TOO_DEEP", "Subcommands nested too deeply"))
    return problems + sub, size + subsize


def _check_options(options: list[dict[str, Any]], base: tuple[str, ...], depth: int) -> tuple[list[Problem], int]:
    problems: list[Problem] = []
    size = 0
    if len(options) > COMMAND_OPTIONS_MAX:
        problems.append(_too_long((*base, "options"), COMMAND_OPTIONS_MAX))
    seen: set[str] = set()
    optional_seen = False
    for i, opt in enumerate(options):
        p = (*base, "options", str(i))
        if opt.get("name") in seen:
            problems.append(((*p, "name"), "APPLICATION_COMMAND_OPTIONS_NAME_ALREADY_EXISTS", "Duplicate name"))
        seen.add(opt.get("name"))
        if opt.get("required"):
            if optional_seen:
                problems.append(((*p, "required"), "APPLICATION_COMMAND_OPTIONS_REQUIRED_INVALID", "Required options must be first"))
        elif opt.get("type") not in (1, 2):
            optional_seen = True
        sub, subsize = _check_option(opt, p, depth)
        problems += sub
        size += subsize
    return problems, size


def check_commands(commands: Any) -> list[Problem]:
    """Checks a bulk-overwrite body: a list of application commands."""
    if not isinstance(commands, list):
        return [((), "BASE_TYPE_ARRAY", "Must be an array")]
    problems: list[Problem] = []
    counts = {1: 0, 2: 0, 3: 0}
    names: set[tuple[int, str]] = set()
    for i, cmd in enumerate(commands):
        p = (str(i),)
        ctype = cmd.get("type", 1)
        counts[ctype] = counts.get(ctype, 0) + 1
        key = (ctype, cmd.get("name"))
        if key in names:
            problems.append(((*p, "name"), "APPLICATION_COMMANDS_DUPLICATE_NAME", f"Duplicate command name {key[1]!r}"))
        names.add(key)
        if ctype == 1:
            if not valid_chat_name(cmd.get("name")):
                problems.append(((*p, "name"), "APPLICATION_COMMAND_INVALID_NAME", "Command name is invalid"))
            problems += _length(cmd.get("description"), (*p, "description"), 1, COMMAND_DESCRIPTION_MAX)
            sub, size = _check_options(cmd.get("options") or [], p, 0)
            problems += sub
            size += len(cmd.get("name") or "") + len(cmd.get("description") or "")
            if size > 4000:
                problems.append((p, "APPLICATION_COMMAND_TOO_LARGE", "Command exceeds maximum size (4000)"))
        else:
            problems += _length(cmd.get("name"), (*p, "name"), 1, COMMAND_NAME_MAX)
            if cmd.get("description"):
                problems.append(((*p, "description"), "BASE_TYPE_BAD_LENGTH", "Context menu commands take no description"))
    if counts.get(1, 0) > CHAT_COMMANDS_MAX:
        problems.append(((), "BASE_TYPE_MAX_LENGTH", f"Must be {CHAT_COMMANDS_MAX} or fewer chat input commands."))
    for ctype in (2, 3):
        if counts.get(ctype, 0) > CONTEXT_COMMANDS_MAX:
            problems.append(((), "BASE_TYPE_MAX_LENGTH", f"Must be {CONTEXT_COMMANDS_MAX} or fewer of type {ctype}."))
    return problems


# --- mentions -------------------------------------------------------------------------

_USER_RE = re.compile(r"<@!?(\d+)>")
_ROLE_RE = re.compile(r"<@&(\d+)>")
_EVERYONE_RE = re.compile(r"@(everyone|here)")


def mentions_in(content: str | None) -> dict[str, Any]:
    """The users, roles and @everyone/@here written in a message's content."""
    text = content or ""
    return {
        "users": [int(x) for x in _USER_RE.findall(text)],
        "roles": [int(x) for x in _ROLE_RE.findall(text)],
        "everyone": bool(_EVERYONE_RE.search(text)),
    }


def pinged(payload: dict[str, Any]) -> dict[str, Any]:
    """Who a message body would notify, with Discord's allowed_mentions semantics.

    No ``allowed_mentions`` means every mention in ``content`` is parsed (including
    @everyone/@here); ``parse: []`` disables them; explicit ``users``/``roles`` lists allow
    exactly those ids. A reply pings its author unless ``replied_user`` is false (default
    true only when ``allowed_mentions`` is absent). Embeds never ping.
    """
    found = mentions_in(payload.get("content"))
    am = payload.get("allowed_mentions")
    is_reply = payload.get("message_reference") is not None
    if am is None:
        return {**found, "replied_user": is_reply}
    parse = am.get("parse") or []
    users = [u for u in found["users"] if "users" in parse or str(u) in {str(x) for x in am.get("users") or []}]
    roles = [r for r in found["roles"] if "roles" in parse or str(r) in {str(x) for x in am.get("roles") or []}]
    return {
        "users": users,
        "roles": roles,
        "everyone": found["everyone"] and "everyone" in parse,
        "replied_user": is_reply and bool(am.get("replied_user")),
    }


def would_ping(payload: dict[str, Any]) -> bool:
    """True if sending ``payload`` (a message body, or an interaction callback / its
    ``data``) would notify anyone."""
    if "data" in payload and "type" in payload and "content" not in payload:
        payload = payload.get("data") or {}
    who = pinged(payload)
    return bool(who["users"] or who["roles"] or who["everyone"] or who["replied_user"])
