"""A local stand-in for Discord (REST + gateway) that the real discord.py client talks to.

In-process::

    async with StandIn() as standin, ...:
        with standin.redirect():           # or redirect_discord(standin.url)
            async with running_client(client):
                handle = await standin.invoke("talks", {"day": "1"})
                body = await handle       # the callback body

Subprocess: ``python -m tests.standin --port 0`` prints ``STANDIN_URL=http://127.0.0.1:PORT``;
run the bot with ``PYTHONPATH=<tests/standin/sitecustomize_dir>`` and
``DISCORD_STANDIN_URL=<url>``; drive it with :class:`ControlClient`.

Sharded (several processes, each an ``AutoShardedClient`` on some shards)::

    async with StandIn(shard_count_recommended=4, max_concurrency=4) as standin:
        standin.add_guilds_over_shards(4, per_shard=2)       # ids with (id >> 22) % 4 == shard
        ...start the processes...
        await standin.gateway.wait_shards({0, 1, 2, 3})     # ControlClient.wait_shards from outside
        await standin.invoke("talks", guild_id=gid)         # reaches the session(s) of gid's shard
"""

from pathlib import Path

from .control import ControlClient
from .gateway import guild_id_in_shard, shard_of
from .harness import TOKEN, kill_client, running_client, stop_client, stop_process
from .interactions import CallbackAttempt, InteractionHandle
from .models import StoredMessage
from .redirect import apply_redirect, redirect_discord, undo_redirect
from .server import Fault, RequestRecord, StandIn
from .validation import embed_length, form_error, pinged, would_ping

SITECUSTOMIZE_DIR = Path(__file__).parent / "sitecustomize_dir"


def subprocess_env(url: str, base: dict[str, str] | None = None) -> dict[str, str]:
    """Environment for a bot subprocess redirected to the stand-in at ``url``."""
    import os

    env = dict(os.environ if base is None else base)
    env["DISCORD_STANDIN_URL"] = url
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(SITECUSTOMIZE_DIR), env.get("PYTHONPATH", "")) if p)
    return env


__all__ = [
    "SITECUSTOMIZE_DIR",
    "TOKEN",
    "CallbackAttempt",
    "ControlClient",
    "Fault",
    "InteractionHandle",
    "RequestRecord",
    "StandIn",
    "StoredMessage",
    "apply_redirect",
    "embed_length",
    "form_error",
    "guild_id_in_shard",
    "kill_client",
    "pinged",
    "redirect_discord",
    "running_client",
    "shard_of",
    "stop_client",
    "stop_process",
    "subprocess_env",
    "undo_redirect",
    "would_ping",
]
