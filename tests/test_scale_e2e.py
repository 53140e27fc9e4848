"""Several `python -m bot` processes on one PostgreSQL and one stand-in over 4 shards.

A replayed session at speed 60 with channel reminders in 8 guilds (2 per shard) and DM reminders
for followers. Processes are killed with SIGKILL at random moments and started again; every
reminder must arrive exactly once, where it belongs. The second test starts two processes with
the same shards, as an operator might by mistake: the ledger's unique key keeps it to one post.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import os
import random
import signal
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import quote, urlencode

import pytest
from psycopg.conninfo import conninfo_to_dict

from bot.core.schedule import Kind, Schedule
from bot.reminders.personal import DM_GUILD
from bot.reminders.plan import Verdict
from bot.state.base import State
from bot.state.postgres import PostgresStore
from tests.standin import StandIn, subprocess_env

ROOT = Path(__file__).resolve().parent.parent
TOKEN = "U0NBTEU.scale-fake-token.never-logged-42"
SPEED = 60
REPLAY_FROM = dt.datetime.fromisoformat("2020-12-10T06:52:00-08:00")
LEADS = (5, 2)
SHARDS = 4
REMINDED = {Kind.ORAL, Kind.SPOTLIGHT}  # the default REMINDER_KINDS among Track 28's talks


@dataclass
class Bot:
    """One `python -m bot` process, started again after each kill, its output in one file."""

    name: str
    env: dict[str, str]
    log: Path
    proc: asyncio.subprocess.Process | None = None
    starts: int = 0
    kills: list[float] = field(default_factory=list)

    async def start(self) -> None:
        self.starts += 1
        with self.log.open("ab") as out:
            out.write(f"\n===== start {self.starts} =====\n".encode())
            self.proc = await asyncio.create_subprocess_exec(sys.executable, "-m", "bot", cwd=ROOT, env=self.env, stdout=out, stderr=out)

    async def kill(self) -> None:
        assert self.proc is not None
        self.kills.append(time.time())
        self.proc.send_signal(signal.SIGKILL)
        await self.proc.wait()

    async def stop(self) -> int | None:
        if self.proc is None or self.proc.returncode is not None:
            return None if self.proc is None else self.proc.returncode
        self.proc.send_signal(signal.SIGTERM)
        try:
            return await asyncio.wait_for(self.proc.wait(), 20)
        except TimeoutError:
            self.proc.kill()
            return await self.proc.wait()

    def output(self) -> str:
        return self.log.read_text(errors="replace")


def _as_url(conninfo: str) -> str:
    """STATE_URL is a postgresql:// URL; the test database comes as a conninfo string."""
    params = {k: str(v) for k, v in conninfo_to_dict(conninfo).items()}
    user, password, dbname = params.pop("user", ""), params.pop("password", ""), params.pop("dbname", "")
    auth = quote(user, safe="") + (":" + quote(password, safe="") if password else "")
    return f"postgresql://{auth}@/{quote(dbname, safe='')}?{urlencode(params)}"


def _env(standin: StandIn, state_url: str, state_dir: Path, shard_ids: str) -> dict[str, str]:
    env = subprocess_env(standin.url)
    for name in list(env):
        if name.startswith(("DISCORD_", "REMINDER_", "BOT_", "SCHEDULE_", "SHARD_", "STATE_")) and name != "DISCORD_STANDIN_URL":
            del env[name]
    env.update(
        DISCORD_TOKEN=TOKEN,
        STATE_URL=_as_url(state_url),
        STATE_PATH=str(state_dir / "bot.sqlite3"),  # only the prepared copy of the schedule lives here
        SHARD_COUNT=str(SHARDS),
        SHARD_IDS=shard_ids,
        BOT_REPLAY_FROM=REPLAY_FROM.isoformat(),
        BOT_CLOCK_SPEED=str(SPEED),
        REMINDER_LEAD_MINUTES=",".join(map(str, LEADS)),
        LOG_LEVEL="INFO",
        PYTHONUNBUFFERED="1",
    )
    return env


@dataclass
class Session:
    """The stand-in's guilds, the followers, and what must arrive."""

    standin: StandIn
    store: PostgresStore
    channels: dict[int, int]  # guild -> its reminder channel
    expected_posts: Counter  # (guild, talk id, lead) -> 1
    expected_dms: Counter  # (user, talk id, lead) -> 1
    end: dt.datetime  # the schedule instant by which all of it is due
    schedule: Schedule


def _prepare(standin: StandIn, store: PostgresStore, schedule: Schedule, end: dt.datetime, rng: random.Random) -> Session:
    followers = [900_000_000_000_000_000 + i for i in range(12)]
    guilds = standin.add_guilds_over_shards(SHARDS, per_shard=2, member_ids=followers)
    assert sorted({g.id >> 22 for g in guilds}) and {(g.id >> 22) % SHARDS for g in guilds} == set(range(SHARDS))
    channels = {g.id: g.channels[0].id for g in guilds}
    for guild_id, channel_id in channels.items():
        store.set_override(guild_id, channel_id=channel_id, leads=LEADS)
    talks = [t for t in schedule.talks if t.kind in REMINDED]
    start = REPLAY_FROM + dt.timedelta(minutes=1)  # the first process is up within a schedule minute
    posts = Counter((g, t.id, lead) for g in channels for t in talks for lead in LEADS if start <= t.start - dt.timedelta(minutes=lead) <= end)
    dms: Counter = Counter()
    coming = [t for t in talks if start <= t.start - dt.timedelta(minutes=5) <= end]
    for user in followers:
        for talk in rng.sample(coming, k=2):
            lead = rng.choice((5, 3))
            store.follow(user, "talk", talk.id, talk.display_title, lead)
            dms[(user, talk.id, lead)] += 1
    assert len(posts) >= 48 and len(dms) == 24
    return Session(standin, store, channels, posts, dms, end, schedule)


def _schedule_now(store: PostgresStore) -> dt.datetime | None:
    """The shared rehearsal clock, from the anchor the first process wrote."""
    saved = store.get_meta("rehearsal")
    if not saved:
        return None
    return REPLAY_FROM + dt.timedelta(seconds=(time.time() - float(json.loads(saved)["wall"])) * SPEED)


def _delivered(s: Session) -> tuple[Counter, Counter, list[str]]:
    """What arrived, counted by the ledger row each message belongs to (its nonce), and any message that belongs to none."""
    rows = {row.nonce: row for row in s.store.rows()}
    posts: Counter = Counter()
    dms: Counter = Counter()
    strays: list[str] = []
    for guild_id, channel_id in s.channels.items():
        for msg in s.standin.messages(channel_id):
            row = rows.get(str(msg.nonce))
            if row is None or row.guild_id != guild_id:
                strays.append(f"guild {guild_id}: {msg.body.get('content')!r} nonce {msg.nonce}")
                continue
            posts[(guild_id, row.talk_id, row.lead)] += 1
    for user in {u for u, _, _ in s.expected_dms}:
        for msg in s.standin.dms(user):
            row = rows.get(str(msg.nonce))
            if row is None or row.guild_id != DM_GUILD or row.channel_id != user:
                strays.append(f"DM to {user}: {msg.body.get('content')!r} nonce {msg.nonce}")
                continue
            dms[(user, row.talk_id, row.lead)] += 1
    return posts, dms, strays


async def _run(s: Session, bots: list[Bot], chaos: random.Random | None, log: list[str]) -> None:
    """Start the processes (the first one anchors the clock), kill and restart them at random until the end, then stop them."""
    await bots[0].start()
    deadline = time.monotonic() + 30
    while _schedule_now(s.store) is None:
        assert time.monotonic() < deadline, f"the first process never started its rehearsal:\n{bots[0].output()[-3000:]}"
        await asyncio.sleep(0.05)
    for bot in bots[1:]:
        await bot.start()
    settle = s.end + dt.timedelta(minutes=4)
    while (now := _schedule_now(s.store)) is not None and now < settle:
        if chaos is None:
            await asyncio.sleep(0.5)
            continue
        await asyncio.sleep(chaos.uniform(2.0, 6.0))
        if _schedule_now(s.store) >= s.end:  # type: ignore[operator]
            break
        victim = chaos.choice(bots)
        log.append(f"{_schedule_now(s.store):%H:%M:%S} kill -9 {victim.name}")
        await victim.kill()
        await asyncio.sleep(chaos.uniform(0.1, 1.5))
        await victim.start()
    # Everything due has a grace window of 10 schedule minutes: wait for the last sends to land.
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        posts, dms, _ = _delivered(s)
        if set(posts) >= set(s.expected_posts) and set(dms) >= set(s.expected_dms):
            break
        await asyncio.sleep(0.25)
    await asyncio.sleep(1.0)  # a late duplicate would show now
    for bot in bots:
        await bot.stop()


def _check(s: Session, bots: list[Bot], log: list[str]) -> None:
    posts, dms, strays = _delivered(s)
    # A reminder is replaced by its talk's shorter lead when both are due at once (a restart after
    # the first one's time): the ledger says so, and the shorter one must have arrived.
    superseded = {
        (row.guild_id, row.talk_id, row.lead)
        for row in s.store.rows(State.SKIPPED)
        if row.error == Verdict.SUPERSEDED.value and any(k[:2] == (row.guild_id, row.talk_id) and k[2] < row.lead for k in posts)
    }
    summary = f"{len(posts)} posts and {len(dms)} DMs delivered; {len(superseded)} reminder(s) superseded by a shorter lead after a restart"
    log.append(summary)
    missing_posts = set(s.expected_posts) - set(posts) - superseded
    missing_dms = set(s.expected_dms) - set(dms)
    rows = s.store.rows()
    for key in sorted(missing_posts | missing_dms)[:10]:
        found = [r for r in rows if (r.guild_id if r.guild_id != DM_GUILD else r.channel_id, r.talk_id, r.lead) == key]
        log.append(f"missing {key}: {[(r.state.value, r.attempts, r.error, r.updated_at.isoformat()) for r in found] or 'no ledger row'}")
    story = "\n".join(log) + "\n" + "\n".join(f"--- {b.name} (started {b.starts}x) ---\n{b.output()[-2500:]}" for b in bots)
    twice = {k: n for k, n in (posts + dms).items() if n > 1}
    assert not twice, f"posted more than once: {sorted(twice.items())[:10]}\n{story}"
    assert not missing_posts, f"{len(missing_posts)} channel reminder(s) never posted: {sorted(missing_posts)[:10]}\n{story}"
    assert not missing_dms, f"{len(missing_dms)} DM reminder(s) never sent: {sorted(missing_dms)[:10]}\n{story}"
    assert not strays, f"messages that are no reminder of the ledger: {strays[:5]}\n{story}"
    # The processes run on a little after the end: whatever else they posted fell due after it.
    talks = {t.id: t for t in s.schedule.talks}
    early = [k for k in (set(posts) - set(s.expected_posts)) | (set(dms) - set(s.expected_dms)) if talks[k[1]].start - dt.timedelta(minutes=k[2]) <= s.end]
    assert not early, f"posted though not expected: {early[:5]}\n{story}"
    print(f"\n{log[0]}: {sum(len(b.kills) for b in bots)} kill -9; {summary}")
    for bot in bots:
        assert "Traceback" not in bot.output(), f"{bot.name} logged a traceback\n{story}"
        assert TOKEN not in bot.output() and "scale-fake-token" not in bot.output()


@pytest.fixture
def chaos_seed() -> int:
    return int(os.environ.get("SCALE_SEED") or random.SystemRandom().randrange(1_000_000))


async def _scenario(state_url: str, schedule: Schedule, tmp_path: Path, seed: int, minutes: int, split: tuple[tuple[str, str], ...]) -> list[Bot]:
    """Run the bots named in `split` (name, SHARD_IDS) over `minutes` of the session with kills seeded by `seed`; check what arrived."""
    rng = random.Random(seed)
    log = [f"SCALE_SEED={seed}"]
    store = PostgresStore(state_url)
    try:
        async with StandIn(token=TOKEN, shard_count_recommended=SHARDS, max_concurrency=16) as standin:
            s = _prepare(standin, store, schedule, end=REPLAY_FROM + dt.timedelta(minutes=minutes), rng=rng)
            bots = [Bot(name, _env(standin, state_url, tmp_path, ids), tmp_path / f"{name}.log") for name, ids in split]
            try:
                await _run(s, bots, rng, log)
            finally:
                for bot in bots:
                    await bot.stop()
            assert sum(len(b.kills) for b in bots) >= 3, log
            _check(s, bots, log)
            assert standin.internal_errors == []
    finally:
        store.close()
    return bots


async def test_three_processes_over_four_shards_survive_kill_9(postgres_database: str, schedule: Schedule, tmp_path: Path, chaos_seed: int) -> None:
    await _scenario(postgres_database, schedule, tmp_path, chaos_seed, 40, (("A", "0,1"), ("B", "2"), ("C", "3")))


async def test_two_processes_given_the_same_shards_post_once_and_survive_kill_9(
    postgres_database: str, schedule: Schedule, tmp_path: Path, chaos_seed: int
) -> None:
    bots = await _scenario(postgres_database, schedule, tmp_path, chaos_seed, 26, (("A", "0,1,2,3"), ("B", "0,1,2,3")))
    for bot in bots:  # both held every shard: both saw every guild, and both planned its reminders
        assert "planned for 8 guild(s)" in bot.output(), bot.output()[-2000:]
