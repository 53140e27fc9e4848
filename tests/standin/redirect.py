"""Point the installed discord.py at the stand-in.

discord.py builds every REST URL from ``discord.http.Route.BASE`` (webhooks and interaction
callbacks use the same Route class). A plain ``discord.Client`` does NOT ask
``GET /gateway/bot`` for the gateway URL: it connects to
``discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY`` (and later to READY's
``resume_gateway_url``), so that class attribute is patched too.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator


def _targets(url: str) -> tuple[str, object]:
    import yarl

    base = url.rstrip("/")
    ws = "ws" + base[len("http") :] if base.startswith("http") else base
    return f"{base}/api/v10", yarl.URL(f"{ws}/gateway")


def apply_redirect(url: str) -> tuple[str, object]:
    """Patch discord.py in this process to use the stand-in at ``url``; returns the old
    (Route.BASE, DEFAULT_GATEWAY) for :func:`undo_redirect`."""
    import discord.gateway
    import discord.http

    old = (discord.http.Route.BASE, discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY)
    api, gateway = _targets(url)
    discord.http.Route.BASE = api
    discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY = gateway  # type: ignore[assignment]
    return old


def undo_redirect(old: tuple[str, object]) -> None:
    import discord.gateway
    import discord.http

    discord.http.Route.BASE = old[0]
    discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY = old[1]  # type: ignore[assignment]


@contextlib.contextmanager
def redirect_discord(url: str) -> Iterator[None]:
    """``with redirect_discord(standin.url): ...`` — restores the originals on exit."""
    old = apply_redirect(url)
    try:
        yield
    finally:
        undo_redirect(old)
