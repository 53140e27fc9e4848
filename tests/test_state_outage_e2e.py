"""The database goes away for a few real seconds while reminders fall due (README, "When the database goes away").

A bot on its own PostgreSQL (pgserver, in this test's folder, so stopping it disturbs no other test)
replays Track 28 at speed 120 against the stand-in. The server is stopped (pg_ctl stop) right after
the first reminder, while a channel reminder and two DMs fall due, and started again on the same
data five real seconds later. Meanwhile /talk and /next answer as usual, /remind talk apologises at
once, and afterwards every reminder that fell due is posted exactly once, late but within the grace.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import time
from collections import Counter
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import pytest_asyncio

from bot.config import Secret, Settings
from bot.core.clock import ReplayClock
from bot.core.schedule import Schedule
from bot.core.search import SearchIndex
from bot.discord_ui.app import SessionBot
from bot.discord_ui.qa import QaExtension
from bot.discord_ui.remind import PersonalReminders
from bot.discord_ui.reminders import ReminderExtension
from bot.reminders.personal import follow_talk
from tests.conftest import PST, pst, wait_for
from tests.standin import StandIn, running_client

pgserver = pytest.importorskip("pgserver")

TOKEN = "T1VUQUdF.outage-fake-token.for-tests-only-5"
PASSWORD = "pw-never-logged-7Q2x"  # the server trusts local sockets; the password only has to stay out of the log
ALICE, BOB = 961000000000000001, 961000000000000002
SPEED = 120.0  # two schedule minutes per real second
LEAD = 20  # minutes: a spotlight's reminder stays sendable for 30 schedule minutes (until its talk ends)
OUTAGE_SECONDS = 5.0  # real seconds: ten schedule minutes, 06:51 to about 07:01
DEADLINE = 3.0  # Discord's first-response deadline for an interaction


@pytest_asyncio.fixture
async def standin() -> AsyncIterator[StandIn]:
    async with StandIn(token=TOKEN) as server:
        for uid, name in [(ALICE, "alice"), (BOB, "bob")]:
            server.guild.members[uid] = (name, [])
        with server.redirect():
            yield server
        assert server.internal_errors == [], server.internal_errors


class Postgres:
    """A pgserver instance of this test's own that can be stopped and started again on the same data."""

    def __init__(self, folder: Path) -> None:
        from pgserver._commands import pg_ctl
        from psycopg.conninfo import conninfo_to_dict, make_conninfo

        self._pg_ctl = pg_ctl
        self.server = pgserver.get_server(folder, cleanup_mode="stop")
        uri = self.server.get_uri()
        self.socket_dir = conninfo_to_dict(uri)["host"]
        self.url = make_conninfo(uri, password=PASSWORD)

    def stop(self) -> None:
        self._pg_ctl(["-w", "-m", "fast", "stop"], pgdata=self.server.pgdata, user=self.server.system_user, timeout=30)

    def start(self) -> None:
        args = ["-w", "-o", '-h ""', "-o", f"-k {self.socket_dir}", "-l", str(self.server.log), "start"]
        self._pg_ctl(args, pgdata=self.server.pgdata, user=self.server.system_user, timeout=30)

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.stop()  # pgserver's own cleanup only stops the postmaster it started, not a restarted one
        self.server.cleanup()


@pytest.fixture
def postgres(tmp_path) -> AsyncIterator[Postgres]:
    server = Postgres(tmp_path / "pg")
    yield server
    server.close()


def make_bot(standin: StandIn, schedule: Schedule, url: str, tmp_path: Path, clock: ReplayClock) -> SessionBot:
    settings = Settings(
        discord_token=Secret(TOKEN),
        guild_id=standin.guild_id,
        reminder_channel_id=standin.channel_id,
        state_path=tmp_path / "state" / "bot.sqlite3",
        state_url=Secret(url),
        reminder_leads=(LEAD,),
        reminder_grace_minutes=30,
    )
    extensions = [ReminderExtension(settings, schedule, clock), PersonalReminders(settings, clock), QaExtension(settings, clock)]
    return SessionBot(settings, schedule, SearchIndex(schedule), clock, extensions, guild_ready_timeout=0.05)


def minutes_before(embed: dict) -> int:
    """How long before its talk a reminder went out, from its wording ("starts in 17 minutes")."""
    found = re.search(r"starts in (\d+) minutes?", embed["description"])
    return int(found.group(1)) if found else 0


def channel_reminders(standin: StandIn) -> list[tuple[str, int]]:
    return [(m.embeds[0]["title"], minutes_before(m.embeds[0])) for m in standin.messages(standin.channel_id) if m.nonce and m.embeds]


def dm_reminders(standin: StandIn, user: int) -> list[tuple[str, int]]:
    return [(m.embeds[0]["title"], minutes_before(m.embeds[0])) for m in standin.dms(user) if m.embeds]


async def answered(standin: StandIn, command: str, options: dict, user: int = ALICE) -> tuple[dict, float]:
    """The accepted first response and how many real seconds it took (the handle waits past the deadline, to see a late one)."""
    handle = await standin.invoke(command, options, user_id=user)
    body = await handle.wait_response(timeout=15.0)
    return body, handle.ack_seconds


async def test_a_database_outage_delays_reminders_once_and_keeps_commands_answering(standin, schedule, postgres, tmp_path, caplog):
    caplog.set_level(logging.INFO)
    from bot.state.postgres import PostgresStore

    seed = PostgresStore(postgres.url)  # two DMs that fall due during the outage (06:55 and 06:59)
    try:
        follow_talk(seed, ALICE, schedule.talk("wave-based-imaging"), 21, pst(6, 0))  # 07:20 - 21 min
        follow_talk(seed, BOB, schedule.talk("power-laws-deep-ensembles"), 15, pst(6, 0))  # 07:10 - 15 min
    finally:
        seed.close()

    clock = ReplayClock(pst(6, 46), SPEED)
    async with running_client(make_bot(standin, schedule, postgres.url, tmp_path, clock), token=TOKEN):
        await wait_for(lambda: len(channel_reminders(standin)) >= 1, 10)  # 06:50, for the 07:10 spotlight
        await wait_for(lambda: clock.now() >= pst(6, 51), 10)
        before = len(caplog.records)  # before the stop: a store call may notice it while pg_ctl is still stopping
        await asyncio.to_thread(postgres.stop)
        down_at, down_clock = time.monotonic(), clock.now()

        talk, talk_seconds = await answered(standin, "talk", {"query": "hamiltonian"})
        upcoming, next_seconds = await answered(standin, "next", {})
        remind, remind_seconds = await answered(standin, "remind talk", {"query": "early-time-learning-dynamics"})
        await asyncio.sleep(max(0.0, OUTAGE_SECONDS - (time.monotonic() - down_at)))
        await asyncio.to_thread(postgres.start)
        up_at, up_clock = time.monotonic(), clock.now()

        await wait_for(lambda: len(channel_reminders(standin)) >= 3 and dm_reminders(standin, ALICE) and dm_reminders(standin, BOB), 12)
        back_at = time.monotonic()
        await wait_for(lambda: len(channel_reminders(standin)) >= 4 and clock.now() >= pst(7, 12), 10)  # 07:10's, on time
        await asyncio.sleep(0.3)
        during = list(caplog.records[before:])  # from the stop to the end: the outage, its retries and the recovery

    # (a), (b): reads answer as usual, /remind apologises at once; nothing waits for the database.
    print(
        f"\noutage {down_clock.astimezone(PST):%H:%M}–{up_clock.astimezone(PST):%H:%M} replayed ({up_at - down_at:.1f} s real), "
        f"delayed reminders posted {back_at - down_at:.1f} s after the stop; "
        f"/talk {talk_seconds:.2f} s, /next {next_seconds:.2f} s, /remind talk {remind_seconds:.2f} s"
    )
    assert talk_seconds < DEADLINE and "Hamiltonian" in talk["data"]["embeds"][0]["title"], talk_seconds
    assert next_seconds < DEADLINE and upcoming["data"].get("embeds"), next_seconds
    assert remind_seconds < DEADLINE and remind["data"].get("flags", 0) & 64, "an ephemeral answer in time"
    assert "can't reach my storage" in remind["data"]["content"] and "Traceback" not in remind["data"]["content"]

    # (c): each reminder once. 06:40 (late at start) and 06:50 before the outage; 07:00 and the DMs of 06:55 and
    # 06:59 fell due while the database was down and went out late, within the grace; 07:10 on time after it.
    channel = channel_reminders(standin)
    assert [title for title, _ in channel] == [
        "Simplifying Hamiltonian and Lagrangian Neural Networks via Explicit Constraints",
        "On Power Laws in Deep Ensembles",
        "Learning the Geometry of Wave-Based Imaging",
        "The Surprising Simplicity of the Early-Time Learning Dynamics of Neural Networks",
    ], channel
    (alice,), (bob,) = dm_reminders(standin, ALICE), dm_reminders(standin, BOB)
    assert alice[0] == "Learning the Geometry of Wave-Based Imaging" and bob[0] == "On Power Laws in Deep Ensembles"
    delayed = [channel[2], alice, bob]
    print(f"delayed by the outage, posted once each: {[(title[:20], f'{minutes} min before') for title, minutes in delayed]}")
    assert channel[2][1] < LEAD and alice[1] < 21 and bob[1] < 15, (channel, alice, bob)  # late ...
    assert channel[3][1] >= LEAD - 3, channel  # ... and the next one on time again (give or take a second and a half on a busy machine)

    # (d): the outage is logged once when it starts and once when it ends, a refused command once; never the password.
    lines = Counter(r.name for r in during if r.levelno >= logging.WARNING)
    print(f"warnings and errors from the stop to the end: {dict(lines)}")
    assert PASSWORD not in caplog.text and all(PASSWORD not in r.getMessage() for r in caplog.records)
    assert lines["bot.state.postgres"] == 2, [r.getMessage() for r in during if r.name == "bot.state.postgres"]
    assert lines["psycopg.pool"] == 0, lines  # not a warning per reconnection attempt
    assert lines["bot.discord_ui.app"] == 1  # the /remind talk that could not be saved, without a traceback
    assert not [r for r in during if r.name == "bot.discord_ui.app" and r.exc_info]
    assert not [r.getMessage() for r in during if r.exc_info], "no traceback per retry from the reminder, DM, digest or events loops"
    assert lines["bot.discord_ui.claims"] == 0  # the outage is said once by the store, not once per interaction
