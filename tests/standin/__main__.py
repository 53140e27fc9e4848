"""Run the stand-in as a process: ``python -m tests.standin --port 0 --guild G --channel C``.

Prints ``STANDIN_URL=http://127.0.0.1:PORT`` (then a JSON line with the ids) and serves
until SIGINT/SIGTERM.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import signal
import sys

from .server import StandIn


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m tests.standin", description=__doc__)
    p.add_argument("--port", type=int, default=0, help="0 picks a free port")
    p.add_argument("--guild", type=int, action="append", default=[], help="guild id (repeatable; the first gets --channel)")
    p.add_argument("--channel", type=int, action="append", default=[], help="text channel id (repeatable)")
    p.add_argument("--app-id", type=int, default=None)
    p.add_argument("--token", default=None, help="only accept this bot token (default: any)")
    p.add_argument("--deadline", type=float, default=3.0, help="interaction first-response deadline, s")
    p.add_argument("--allow-privileged", type=int, default=0, help="privileged intent bits the app may use")
    p.add_argument("--shards", type=int, default=1, help="GET /gateway/bot's recommended shard count")
    p.add_argument("--shard-guilds", type=int, default=0, help="add this many guilds to each of --shards shards")
    p.add_argument("--max-concurrency", type=int, default=1, help="identify buckets (shard_id %% max_concurrency)")
    p.add_argument("--identify-window", type=float, default=5.0, help="one IDENTIFY per bucket per this many s")
    p.add_argument("--guilds-per-shard", type=int, default=2500, help="a shard with this many guilds gets 4011")
    return p.parse_args(argv)


async def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    channels = {cid: f"channel-{i}" for i, cid in enumerate(args.channel)} or None
    standin = StandIn(
        guild_id=args.guild[0] if args.guild else None,
        channels=channels,
        app_id=args.app_id,
        token=args.token,
        interaction_deadline=args.deadline,
        privileged_intents_enabled=args.allow_privileged,
        port=args.port,
        shard_count_recommended=args.shards,
        max_concurrency=args.max_concurrency,
        identify_window=args.identify_window,
        guilds_per_shard=args.guilds_per_shard,
    )
    for gid in args.guild[1:]:
        standin.add_guild(gid)
    if args.shard_guilds:
        standin.add_guilds_over_shards(args.shards, per_shard=args.shard_guilds)
    await standin.start()
    print(f"STANDIN_URL={standin.url}", flush=True)
    info = {
        "url": standin.url,
        "app_id": str(standin.app_id),
        "guild_id": str(standin.guild_id),
        "channel_ids": [str(c) for c in standin.channel_ids],
        "guilds": {str(gid): [str(c.id) for c in g.channels] for gid, g in standin.guilds.items()},
        "guild_shards": {str(gid): standin.shard_of(gid, args.shards) for gid in standin.guilds},
    }
    print(json.dumps(info), flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError):  # non-unix
            loop.add_signal_handler(sig, stop.set)
    try:
        await stop.wait()
    finally:
        await standin.stop()


if __name__ == "__main__":
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(main(sys.argv[1:]))
