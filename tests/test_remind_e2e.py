"""/remind end to end: follows by talk and by author, one DM per talk, closed DMs, cancel, restarts."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest_asyncio

from bot.config import Secret, Settings
from bot.core.clock import Clock, FixedClock, ReplayClock
from bot.core.schedule import Schedule
from bot.core.search import SearchIndex
from bot.discord_ui.app import SessionBot
from bot.discord_ui.remind import ALLOW_DMS, WELCOME, PersonalReminders
from bot.state.store import State, Store
from tests.conftest import pst, wait_for
from tests.standin import StandIn, kill_client, running_client, would_ping

TOKEN = "UkVNSU5E.remind-fake-token.for-tests-only-9"
ALICE, BOB, CAROL, DAVE = 911000000000000001, 911000000000000002, 911000000000000003, 911000000000000004


@pytest_asyncio.fixture
async def standin() -> AsyncIterator[StandIn]:
    async with StandIn(token=TOKEN) as server:
        for uid, name in [(ALICE, "alice"), (BOB, "bob"), (CAROL, "carol"), (DAVE, "dave")]:
            server.guild.members[uid] = (name, [])
        server.dms_closed.add(CAROL)
        with server.redirect():
            yield server


def make_bot(tmp_path, standin: StandIn, schedule: Schedule, clock: Clock) -> SessionBot:
    settings = Settings(discord_token=Secret(TOKEN), guild_id=standin.guild_id, state_path=tmp_path / "bot.sqlite3", reminder_grace_minutes=10)
    return SessionBot(settings, schedule, SearchIndex(schedule), clock, [PersonalReminders(settings, clock)], guild_ready_timeout=0.05)


def reminders_for(standin: StandIn, user: int) -> list:
    return [m for m in standin.dms(user) if m.embeds]


async def ask(standin: StandIn, command: str, options: dict, user: int) -> str:
    body = await (await standin.invoke(command, options, user_id=user))
    assert body["data"].get("flags", 0) & 64, "every /remind reply is ephemeral"
    return str(body["data"])


async def test_follow_by_talk_and_author_one_dm_each_closed_dms_kept_and_cancel(standin, schedule, tmp_path):
    async with running_client(make_bot(tmp_path, standin, schedule, FixedClock(pst(5, 30))), token=TOKEN):
        text = await ask(standin, "remind talk", {"query": "shooting-formulation"}, ALICE)
        assert "A shooting formulation of deep learning" in text and "5 min before" in text and f"<t:{int(pst(5, 55).timestamp())}:t>" in text
        await ask(standin, "remind talk", {"query": "shooting-formulation", "minutes": 10}, BOB)
        by_author = await ask(standin, "remind author", {"name": "Vialard"}, BOB)  # the same talk, through its author
        assert "A shooting formulation of deep learning" in by_author
        closed = await ask(standin, "remind talk", {"query": "shooting-formulation"}, CAROL)
        assert ALLOW_DMS[:40] in closed
        await ask(standin, "remind talk", {"query": "shooting-formulation"}, DAVE)
        listed = await ask(standin, "remind list", {}, DAVE)
        assert "A shooting formulation of deep learning" in listed
        assert "cancelled" in await ask(standin, "remind cancel", {"talk": "all"}, DAVE)
        over = await ask(standin, "remind talk", {"query": "l2-regularization-dynamics", "minutes": 60}, ALICE)
        assert "sooner than 60 minutes" in over
        assert [m.content for m in standin.dms(ALICE)] == [WELCOME]
    assert Store(tmp_path / "bot.sqlite3").dm_channel(CAROL).closed
    clock = ReplayClock(pst(5, 43), 120.0)
    async with running_client(make_bot(tmp_path, standin, schedule, clock), token=TOKEN):
        await wait_for(lambda: reminders_for(standin, ALICE) and reminders_for(standin, BOB), 10)
        await wait_for(lambda: clock.now() > pst(6, 5), 10)
    (alice,) = reminders_for(standin, ALICE)
    (bob,) = reminders_for(standin, BOB)  # followed twice, one DM, at the longer lead
    assert alice.embeds[0]["title"] == bob.embeds[0]["title"] == "A shooting formulation of deep learning"
    assert "starts in 5 minutes" in alice.embeds[0]["description"] and "starts in 10 minutes" in bob.embeds[0]["description"]
    assert not would_ping(alice.body) and not would_ping(bob.body)
    assert reminders_for(standin, DAVE) == [] and standin.dms(CAROL) == []
    rows = Store(tmp_path / "bot.sqlite3").rows(guild_id=0)
    assert {row.state for row in rows if row.channel_id in (ALICE, BOB)} == {State.SENT}


async def test_a_kill_mid_fanout_then_a_restart_sends_each_dm_once(standin, schedule, tmp_path):
    users = [912000000000000000 + i for i in range(40)]
    for uid in users:
        standin.guild.members[uid] = (f"u{uid % 1000}", [])
    store = Store(tmp_path / "bot.sqlite3")
    for uid in users:
        store.follow(uid, "talk", "shooting-formulation", "A shooting formulation of deep learning", 5)
    store.close()
    standin.inject("POST", r"/channels/\d+/messages", 500, count=3)
    standin.inject("POST", r"/channels/\d+/messages", 429, count=2, retry_after=0.05)
    clock = ReplayClock(
        pst(
            5,
            54,
        ),
        60.0,
    )
    bot = make_bot(tmp_path, standin, schedule, clock)
    bot.extensions[0].pace.limit = 20  # slow enough to be killed in the middle
    task = asyncio.create_task(bot.start(TOKEN))
    await wait_for(lambda: sum(len(reminders_for(standin, u)) for u in users) >= 10, 15)
    await kill_client(bot, task)
    async with running_client(make_bot(tmp_path, standin, schedule, ReplayClock(clock.now(), 60.0)), token=TOKEN):
        await wait_for(lambda: all(reminders_for(standin, u) for u in users), 20)
        await asyncio.sleep(0.3)
    assert all(len(reminders_for(standin, u)) == 1 for u in users)


async def test_followers_of_a_moved_or_cancelled_talk_are_told_by_dm_once(standin, tmp_path):
    from bot.discord_ui.app import parse_ready
    from bot.discord_ui.updates import ScheduleUpdates
    from tests.conftest import TRACK28
    from tests.test_schedule_updates_e2e import edited

    path = tmp_path / "schedule.yaml"
    original = TRACK28.read_text(encoding="utf-8")
    path.write_text(original, encoding="utf-8")
    store = Store(tmp_path / "bot.sqlite3")
    store.follow(ALICE, "talk", "compositional-explanations", "Compositional Explanations of Neurons", 5)
    store.follow(BOB, "author", "jesse-mu", "Jesse Mu", 5)  # the same talk, through its author
    store.follow(DAVE, "talk", "l2-regularization-dynamics", "On the training dynamics", 5)
    store.close()
    schedule, index = parse_ready(path.read_bytes(), str(path))
    settings = Settings(discord_token=Secret(TOKEN), guild_id=standin.guild_id, state_path=tmp_path / "bot.sqlite3")
    clock = FixedClock(pst(5, 0))
    updates = ScheduleUpdates(str(path), parse_ready, poll_seconds=300, served=path.read_bytes(), file_poll_seconds=0.05)
    bot = SessionBot(settings, schedule, index, clock, [PersonalReminders(settings, clock), updates], guild_ready_timeout=0.05)
    async with running_client(bot, token=TOKEN):
        path.write_text(edited(original), encoding="utf-8")
        await wait_for(lambda: standin.dms(ALICE) and standin.dms(BOB) and standin.dms(DAVE), 10)
        await updates.watcher.check(force=True)  # the same version again: nothing new is said
        await asyncio.sleep(0.3)
    (alice,), (bob,), (dave,) = standin.dms(ALICE), standin.dms(BOB), standin.dms(DAVE)
    assert "Compositional Explanations of Neurons" in alice.content and "has moved" in alice.content
    assert f"<t:{int(pst(6, 15).timestamp())}:f>" in alice.content and bob.content == alice.content
    assert "cancelled" in dave.content and not would_ping(dave.body)
