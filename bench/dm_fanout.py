"""DM fan-out: 2,000 users follow the same talk with a 5-minute lead; how soon do all their DMs arrive?

Runs the real bot (discord.py) against the local Discord stand-in, which enforces Discord's global
limit of 50 requests a second. Each follower's DM channel is already known, as `/remind` leaves it
(its first DM opened it), so each DM is one request. Reports when the last DM arrived after its due
time, duplicates, and how many requests were answered 429. Target: all within 60 s, no duplicate,
fewer than 1% 429s.

    .venv/bin/python -m bench.dm_fanout --users 2000
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import logging
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bot.config import Secret, Settings  # noqa: E402
from bot.core.clock import ReplayClock  # noqa: E402
from bot.core.search import SearchIndex  # noqa: E402
from bot.discord_ui.app import SessionBot  # noqa: E402
from bot.discord_ui.remind import PersonalReminders  # noqa: E402
from bot.reminders.plan import reminder_due_at  # noqa: E402
from bot.sources import load_schedule  # noqa: E402
from bot.state.store import Store  # noqa: E402
from tests.standin import StandIn, running_client  # noqa: E402

TOKEN = "QkVOQ0g.dm-fanout-bench-token.local-only-1"
TALK = "shooting-formulation"
LEAD = 5


async def measure(users: int, state_dir: Path) -> dict[str, float]:
    schedule = load_schedule(ROOT / "data" / "track28.yaml")
    talk = schedule.talk(TALK)
    assert talk is not None
    due = reminder_due_at(talk, LEAD)
    async with StandIn(token=TOKEN) as standin:
        ids = [930000000000000000 + i for i in range(users)]
        store = Store(state_dir / "bot.sqlite3")
        for uid in ids:
            standin.guild.members[uid] = (f"u{uid % 100000}", [])
            channel = 940000000000000000 + uid % 1000000
            standin.dm_channels[channel], standin.dm_of_user[uid] = uid, channel
            store.follow(uid, "talk", TALK, talk.title, LEAD)
            store.set_dm_channel(uid, channel_id=channel, welcomed=True)
        store.close()
        settings = Settings(discord_token=Secret(TOKEN), guild_id=standin.guild_id, state_path=state_dir / "bot.sqlite3", reminder_grace_minutes=10)
        clock = ReplayClock(due - dt.timedelta(seconds=3), 1.0)
        bot = SessionBot(settings, schedule, SearchIndex(schedule), clock, [PersonalReminders(settings, clock)], guild_ready_timeout=0.05)
        with standin.redirect():
            async with running_client(bot, token=TOKEN):
                due_real = time.time() + clock.seconds_until(due)
                deadline = due_real + 120
                while time.time() < deadline and sum(1 for uid in ids if standin.dms(uid)) < users:
                    await asyncio.sleep(0.25)
                await asyncio.sleep(1.0)
        arrivals = {uid: [m.created_at for m in standin.dms(uid)] for uid in ids}
        requests = [r for r in standin.requests if r.path.startswith("/channels/") and r.method == "POST"]
        late = [max(times) - due_real for times in arrivals.values() if times]
        return {
            "users": users,
            "received": sum(1 for t in arrivals.values() if t),
            "duplicates": sum(max(0, len(t) - 1) for t in arrivals.values()),
            "last_s": max(late, default=float("nan")),
            "median_s": statistics.median(late) if late else float("nan"),
            "requests": len(requests),
            "429s": sum(1 for r in standin.requests if r.status == 429),
            "all_requests": len(standin.requests),
        }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.dm_fanout", description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=2000)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    with tempfile.TemporaryDirectory() as tmp:
        r = asyncio.run(measure(args.users, Path(tmp)))
    share = 100 * r["429s"] / max(1, r["all_requests"])
    print(
        f"{r['received']:,}/{r['users']:,} users got their DM; last {r['last_s']:.1f} s after the due time (median {r['median_s']:.1f} s); "
        f"duplicates {r['duplicates']}; {r['429s']} of {r['all_requests']:,} requests answered 429 ({share:.2f}%)"
    )
    ok = r["received"] == r["users"] and r["duplicates"] == 0 and r["last_s"] <= 60 and share < 1
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
