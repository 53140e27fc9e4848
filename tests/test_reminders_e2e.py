"""Reminders end to end: the real discord.py client against the local stand-in, a fast replayed
clock, injected 429/500/403, a killed and restarted client, and the /reminders commands."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import pytest_asyncio

from bot.config import Secret, Settings
from bot.core.clock import Clock, FixedClock, ReplayClock
from bot.core.schedule import Schedule
from bot.core.search import SearchIndex
from bot.discord_ui.app import SessionBot
from bot.discord_ui.reminders import ReminderExtension
from bot.state.store import State, Store
from tests.conftest import pst
from tests.standin import StandIn, kill_client, running_client, would_ping

TOKEN = "Tk9UQVJFQUxUT0tFTg.fake-bot-token.for-tests-only-42"
MANAGE_GUILD = 1 << 5
SPEED = 1200.0  # 20 schedule minutes per second
KINDS = ("oral", "spotlight")


@pytest_asyncio.fixture
async def standin() -> AsyncIterator[StandIn]:
    async with StandIn(token=TOKEN) as server:
        with server.redirect():
            yield server


def settings_for(standin: StandIn, state: Path, **extra: object) -> Settings:
    base = {"discord_token": Secret(TOKEN), "guild_id": standin.guild_id, "reminder_channel_id": standin.channel_id, "state_path": state}
    return Settings(**{**base, "reminder_grace_minutes": 60, **extra})


def make_bot(settings: Settings, schedule: Schedule, clock: Clock) -> SessionBot:
    ext = ReminderExtension(settings, schedule, clock)
    return SessionBot(settings, schedule, SearchIndex(schedule), clock, [ext], guild_ready_timeout=0.05)


def reminder_posts(standin: StandIn) -> list:
    return [m for m in standin.messages(standin.channel_id) if m.nonce]


def talk_titles(schedule: Schedule) -> list[str]:
    return [t.display_title for t in schedule.talks if t.kind.value in KINDS]


async def wait_for(predicate, timeout: float) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not predicate():
        if asyncio.get_running_loop().time() > deadline:
            raise TimeoutError
        await asyncio.sleep(0.01)


async def test_session_with_faults_and_a_kill_exactly_once_in_order(standin, schedule, tmp_path, caplog):
    caplog.set_level(logging.INFO)
    state = tmp_path / "bot.sqlite3"
    settings = settings_for(standin, state)
    posts = r"/channels/\d+/messages"
    standin.inject("POST", posts, 500, count=1)  # the first reminder's first try: discord.py sleeps, then we are killed
    clock = ReplayClock(pst(5, 53), SPEED)
    client = make_bot(settings, schedule, clock)
    task = asyncio.create_task(client.start(TOKEN))
    await wait_for(lambda: any(r.faulted for r in standin.requests), 10)
    await kill_client(client, task)  # dies with the reminder claimed but unconfirmed
    assert Store(state).get(f"shooting-formulation:5:{standin.channel_id}").state is State.CLAIMED

    standin.inject("POST", posts, 429, count=1, retry_after=0.05)
    standin.inject("POST", posts, 403, count=1)
    clock = ReplayClock(clock.now(), SPEED)  # the schedule clock carries on
    client = make_bot(settings, schedule, clock)
    async with running_client(client, token=TOKEN):
        await wait_for(lambda: len(reminder_posts(standin)) >= len(talk_titles(schedule)), 15)
        await asyncio.sleep(0.2)
    posts_seen = reminder_posts(standin)
    assert [m.body["embeds"][0]["title"] for m in posts_seen] == talk_titles(schedule)
    assert len({m.nonce for m in posts_seen}) == len(posts_seen)
    assert all(m.body.get("enforce_nonce") for m in posts_seen)
    assert not any(would_ping(m.body) for m in posts_seen)
    assert "Break" not in str([m.body for m in posts_seen])
    assert f"403 missing permission in channel {standin.channel_id}" in caplog.text
    assert all(row.state is State.SENT for row in Store(state).rows())


async def test_reminder_embed_and_exact_role_ping(standin, schedule, tmp_path):
    role = standin.guild.roles[2].id
    settings = settings_for(standin, tmp_path / "s.sqlite3", reminder_role_id=role, reminder_grace_minutes=10)
    clock = ReplayClock(pst(5, 54), 60.0)
    async with running_client(make_bot(settings, schedule, clock), token=TOKEN):
        await wait_for(lambda: reminder_posts(standin), 5)
    body = reminder_posts(standin)[0].body
    embed = body["embeds"][0]
    assert embed["title"] == "A shooting formulation of deep learning"
    assert "**Oral**, starts in 5 minutes" in embed["description"]
    assert "<t:" in embed["description"] and ":f>" in embed["description"] and ":R>" in embed["description"]
    assert [f["name"] for f in embed["fields"]] == ["Authors", "About"]
    assert "\n" not in embed["fields"][1]["value"] and len(embed["fields"][1]["value"]) <= 200
    assert body["content"].startswith(f"<@&{role}> ")
    assert [int(r) for r in body["allowed_mentions"]["roles"]] == [role]
    assert body["allowed_mentions"].get("parse", []) == [] and not body["allowed_mentions"].get("users")


async def test_nothing_stale_on_a_late_start(standin, schedule, tmp_path):
    settings = settings_for(standin, tmp_path / "s.sqlite3", reminder_grace_minutes=10)
    async with running_client(make_bot(settings, schedule, FixedClock(pst(7, 16))), token=TOKEN):
        await asyncio.sleep(0.3)
    titles = [m.body["embeds"][0]["title"] for m in reminder_posts(standin)]
    assert titles == ["Learning the Geometry of Wave-Based Imaging"]  # due 07:15; 06:xx and 07:05 are stale


async def test_reminders_commands_need_manage_server(standin, schedule, tmp_path):
    settings = settings_for(standin, tmp_path / "s.sqlite3")
    other = standin.channel_ids[1]
    async with running_client(make_bot(settings, schedule, FixedClock(pst(5, 0))), token=TOKEN) as client:
        command = standin.find_command("reminders")
        assert int(command["default_member_permissions"]) == MANAGE_GUILD
        denied = await standin.invoke("reminders off")
        assert "Manage Server" in (await denied)["data"]["content"]
        assert client.extensions[0].store.overrides(standin.guild_id).enabled is None
        status = await (await standin.invoke("reminders status", permissions=MANAGE_GUILD))
        text = str(status["data"])
        assert f"<#{standin.channel_id}>" in text and "Next" in text
        moved = await (await standin.invoke("reminders channel", {"channel": str(other)}, permissions=MANAGE_GUILD))
        assert f"<#{other}>" in str(moved["data"])
        await (await standin.invoke("reminders lead", {"minutes": "10,2"}, permissions=MANAGE_GUILD))
        assert {r.lead for r in client.extensions[0].service.plan} == {10, 2}
        bad = await (await standin.invoke("reminders lead", {"minutes": "soon"}, permissions=MANAGE_GUILD))
        assert "not a list of minutes" in bad["data"]["content"]
        off = await (await standin.invoke("reminders off", permissions=MANAGE_GUILD))
        assert "off" in str(off["data"]) and client.extensions[0].service.plan == []
        await (await standin.invoke("reminders on", permissions=MANAGE_GUILD))
        assert {r.channel_id for r in client.extensions[0].service.plan} == {other}


@pytest.mark.parametrize("status", [403, 404])
async def test_forbidden_or_unknown_channel_is_logged_shown_and_survived(standin, schedule, tmp_path, caplog, status):
    settings = settings_for(standin, tmp_path / "s.sqlite3", reminder_grace_minutes=10)
    standin.inject("POST", r"/channels/\d+/messages", status, count=None)
    async with running_client(make_bot(settings, schedule, FixedClock(pst(5, 56))), token=TOKEN) as client:
        await asyncio.sleep(0.3)
        shown = await (await standin.invoke("reminders status", permissions=MANAGE_GUILD))
        assert not client.is_closed()
    text = str(shown["data"])
    assert str(standin.channel_id) in caplog.text
    assert ("missing permission" if status == 403 else "unknown channel") in caplog.text
    assert "Failures" in text and ("403" in text if status == 403 else "404" in text)
    assert not reminder_posts(standin)


async def test_a_gateway_drop_when_a_reminder_falls_due_loses_nothing(standin, schedule, tmp_path):
    settings = settings_for(standin, tmp_path / "bot.sqlite3")
    clock = ReplayClock(pst(5, 54), 120.0)  # the first reminder (05:55) is due half a real second after start
    client = make_bot(settings, schedule, clock)
    async with running_client(client, token=TOKEN):
        await standin.drop_gateway(abrupt=True)  # the connection is gone as the reminder falls due
        await wait_for(lambda: len(reminder_posts(standin)) >= 1, 10)
        await asyncio.sleep(0.3)
    (post,) = reminder_posts(standin)
    assert post.body["embeds"][0]["title"] == "A shooting formulation of deep learning"
