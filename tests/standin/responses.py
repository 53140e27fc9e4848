"""Response helpers shared by the route modules."""

from __future__ import annotations

import json
from typing import Any

from aiohttp import web


def json_response(data: Any, status: int = 200, headers: dict[str, str] | None = None) -> web.Response:
    # exactly "application/json" (no charset): discord.py's json_or_text compares verbatim
    hdrs = {"Content-Type": "application/json", **(headers or {})}
    return web.Response(status=status, body=json.dumps(data).encode(), headers=hdrs)


def error(status: int, code: int, message: str, errors: dict[str, Any] | None = None) -> web.Response:
    """Discord-style error: ``{"code": ..., "message": ..., "errors": ...}``."""
    data: dict[str, Any] = {"code": code, "message": message}
    if errors:
        data["errors"] = errors
    return json_response(data, status)


def no_content() -> web.Response:
    return web.Response(status=204)
