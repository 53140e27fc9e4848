"""The schedule file is edited under a running bot: it announces, re-plans, and survives a broken version."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest_asyncio

from bot.config import Secret, Settings
from bot.core.clock import ReplayClock
from bot.discord_ui.app import SessionBot, parse_ready
from bot.discord_ui.reminders import ReminderExtension
from bot.discord_ui.updates import ScheduleUpdates
from tests.conftest import TRACK28, pst, wait_for
from tests.standin import StandIn, running_client, would_ping

TOKEN = "VVBEQVRFUw.updates-fake-token.for-tests-only-7"
MANAGE_GUILD = 1 << 5
L2 = "      - id: l2-regularization-dynamics\n"
COMPOSITIONAL = "      - id: compositional-explanations\n"
BREAK = "      - id: break-1\n"
NEW_TALK = """      - id: late-breaking-result
        kind: oral
        start: 2020-12-10T06:30:00-08:00
        end: 2020-12-10T06:45:00-08:00
        title: "A late-breaking result"
        authors: ["Ada Lovelace"]
        abstract: "Added on the day."
"""


def edited(text: str) -> str:
    """l2 cancelled, compositional moved into its slot (06:15), a new oral at 06:30."""
    before, rest = text.split(L2, 1)
    _, after = rest.split(COMPOSITIONAL, 1)
    after = COMPOSITIONAL + after.replace("start: 2020-12-10T06:30:00-08:00", "start: 2020-12-10T06:15:00-08:00", 1).replace(
        "end: 2020-12-10T06:45:00-08:00", "end: 2020-12-10T06:30:00-08:00", 1
    )
    head, tail = after.split(BREAK, 1)
    return before + head + NEW_TALK + BREAK + tail


@pytest_asyncio.fixture
async def standin() -> AsyncIterator[StandIn]:
    async with StandIn(token=TOKEN) as server:
        with server.redirect():
            yield server


async def test_a_schedule_edited_under_the_running_bot(standin, tmp_path):
    path = tmp_path / "schedule.yaml"
    original = TRACK28.read_text(encoding="utf-8")
    path.write_text(original, encoding="utf-8")
    settings = Settings(
        discord_token=Secret(TOKEN),
        guild_id=standin.guild_id,
        reminder_channel_id=standin.channel_id,
        state_path=tmp_path / "bot.sqlite3",
        reminder_grace_minutes=10,
    )
    schedule, index = parse_ready(path.read_bytes(), str(path))
    clock = ReplayClock(pst(5, 56), 300.0)
    updates = ScheduleUpdates(str(path), parse_ready, poll_seconds=300, served=path.read_bytes(), file_poll_seconds=0.05)
    bot = SessionBot(settings, schedule, index, clock, [ReminderExtension(settings, schedule, clock), updates], guild_ready_timeout=0.05)

    def posts():
        return standin.messages(standin.channel_id)

    def titles():
        return [m.body["embeds"][0]["title"] for m in posts()]

    async with running_client(bot, token=TOKEN):
        await wait_for(lambda: "A shooting formulation of deep learning" in titles(), 5)
        path.write_text(edited(original), encoding="utf-8")
        await wait_for(lambda: "Programme changes" in titles(), 5)
        await wait_for(lambda: clock.now() > pst(6, 40), 15)
        announcement = next(m for m in posts() if m.body["embeds"][0]["title"] == "Programme changes")
        text = announcement.body["embeds"][0]["description"]
        # the broken version: the old one is kept, nothing is posted, the organisers see why
        count = len(posts())
        path.write_text(edited(original).replace("end: 2020-12-10T06:15:00-08:00", "end: 2020-12-10T05:15:00-08:00", 1), encoding="utf-8")
        await wait_for(lambda: bot.programme.refused is not None, 5)
        status = await (await standin.invoke("reminders status", permissions=MANAGE_GUILD))
        found = await (await standin.invoke("talk", {"query": "late-breaking result"}))
        await asyncio.sleep(0.3)
        assert len(posts()) == count
    assert "Cancelled" in text and "On the training dynamics" in text
    assert "Moved" in text and "Compositional Explanations of Neurons" in text and f"<t:{int(pst(6, 15).timestamp())}:f>" in text
    assert "Added" in text and "A late-breaking result" in text
    assert not would_ping(announcement.body)
    reminders = [m for m in posts() if m.body["embeds"][0]["title"] != "Programme changes"]
    assert [m.body["embeds"][0]["title"] for m in reminders] == [
        "A shooting formulation of deep learning",
        "Compositional Explanations of Neurons",
        "A late-breaking result",
    ]
    assert "moved: now at" in reminders[1].body["embeds"][0]["description"]
    assert "refused" in str(status["data"]) and "end" in str(status["data"])
    assert "A late-breaking result" in str(found["data"])  # still serving the edited (good) version
    assert bot.schedule.talk("l2-regularization-dynamics") is None


async def test_two_processes_reloading_one_version_announce_it_once(tmp_path):
    """A hot standby reloads the same file: the announcement is claimed in the ledger, so the server
    hears of it once even when the second process reloads after Discord's nonce window."""
    path = tmp_path / "schedule.yaml"
    original = TRACK28.read_text(encoding="utf-8")
    path.write_text(original, encoding="utf-8")
    async with StandIn(token=TOKEN, identify_window=0.0, nonce_window=0.0) as standin:  # the second reload comes minutes later
        with standin.redirect():
            settings = Settings(
                discord_token=Secret(TOKEN), guild_id=standin.guild_id, reminder_channel_id=standin.channel_id, state_path=tmp_path / "bot.sqlite3"
            )

            def bot() -> SessionBot:
                schedule, index = parse_ready(path.read_bytes(), str(path))
                clock = ReplayClock(pst(5, 0), 1.0)
                updates = ScheduleUpdates(str(path), parse_ready, poll_seconds=300, served=path.read_bytes(), file_poll_seconds=0.05)
                return SessionBot(settings, schedule, index, clock, [ReminderExtension(settings, schedule, clock), updates], guild_ready_timeout=0.05)

            first, second = bot(), bot()
            async with running_client(first, token=TOKEN), running_client(second, token=TOKEN):
                path.write_text(edited(original), encoding="utf-8")
                await wait_for(lambda: first.schedule.talk("late-breaking-result") and second.schedule.talk("late-breaking-result"), 5)
                await asyncio.sleep(0.5)
            announcements = [m for m in standin.messages(standin.channel_id) if m.embeds and m.embeds[0]["title"] == "Programme changes"]
    assert len(announcements) == 1
