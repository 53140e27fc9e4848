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
    p.add_argument("--guild", type=int, default=None, help="guild id")
    p.add_argument("--channel", type=int, action="append", default=[], help="text channel id (repeatable)")
    p.add_argument("--app-id", type=int, default=None)
    p.add_argument("--token", default=None, help="only accept this bot token (default: any)")
    p.add_argument("--deadline", type=float, default=3.0, help="interaction first-response deadline, s")
    p.add_argument("--allow-privileged", type=int, default=0, help="privileged intent bits the app may use")
    return p.parse_args(argv)


async def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    channels = {cid: f"channel-{i}" for i, cid in enumerate(args.channel)} or None
    standin = StandIn(
        guild_id=args.guild,
        channels=channels,
        app_id=args.app_id,
        token=args.token,
        interaction_deadline=args.deadline,
        privileged_intents_enabled=args.allow_privileged,
        port=args.port,
    )
    await standin.start()
    print(f"STANDIN_URL={standin.url}", flush=True)
    info = {
        "url": standin.url,
        "app_id": str(standin.app_id),
        "guild_id": str(standin.guild_id),
        "channel_ids": [str(c) for c in standin.channel_ids],
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
