"""Scheduled events end to end: the real discord.py client against the stand-in, Track 28 moved into the future."""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
import logging
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import discord
import pytest
import pytest_asyncio

from bot.config import DEFAULT_KINDS, Secret, Settings
from bot.core.clock import Clock, FixedClock, SystemClock
from bot.core.schedule import Schedule
from bot.core.search import SearchIndex
from bot.discord_ui.app import SessionBot
from bot.discord_ui.events import EventsExtension, SyncResult
from bot.reminders.events import EVENTS_MAX, MARKER, listed
from bot.sources.yaml_writer import to_yaml
from tests.conftest import ROOT, wait_for
from tests.standin import StandIn, running_client, subprocess_env
from tests.standin.routes_events import CREATE_EVENTS, MANAGE_EVENTS, add_event, grant, revoke
from tests.test_events import future, many

TOKEN = "RVZFTlRT.events-fake-token.for-tests-only-3"
LISTED = 11  # Track 28's items that are not breaks or Q&As


@pytest_asyncio.fixture
async def standin() -> AsyncIterator[StandIn]:
    async with StandIn(token=TOKEN) as server:
        with server.redirect():
            yield server
        assert server.internal_errors == [], server.internal_errors


def tomorrow(schedule: Schedule) -> Schedule:
    """Track 28 with every talk moved by the same amount, to start tomorrow on the minute (real time)."""
    start = (dt.datetime.now(dt.UTC) + dt.timedelta(days=1)).replace(second=0, microsecond=0)
    return future(schedule, start)


def settings_for(standin: StandIn, tmp_path: Path) -> Settings:
    return Settings(discord_token=Secret(TOKEN), guild_id=standin.guild_id, state_path=tmp_path / "bot.sqlite3", scheduled_events=True)


async def sync(settings: Settings, schedule: Schedule, clock: Clock | None = None) -> tuple[SyncResult, EventsExtension]:
    """One sync as `python -m bot events` runs it: log in over REST, sync, close (a fresh process each time)."""
    client = discord.Client(intents=discord.Intents.default())
    extension = EventsExtension(settings, clock or SystemClock())
    async with client:
        await client.login(TOKEN)
        extension.attach(client, lambda: schedule)
        try:
            return await extension.sync(settings.guild_id or 0), extension
        finally:
            await extension.close()


def events(standin: StandIn) -> list[dict]:
    return sorted(standin.events.values(), key=lambda e: (e["scheduled_start_time"], e["name"]))


def when(value: str) -> dt.datetime:
    return dt.datetime.fromisoformat(value)


def calls(standin: StandIn, method: str) -> int:
    return sum(1 for r in standin.requests if r.method == method and "/scheduled-events" in r.path and r.status < 400)


async def test_first_sync_creates_one_event_per_talk_with_exact_times(standin: StandIn, schedule: Schedule, tmp_path: Path) -> None:
    moved = tomorrow(schedule)
    result, extension = await sync(settings_for(standin, tmp_path), moved)
    assert result.ok and result.created == LISTED and extension.problem(standin.guild_id) is None
    talks = [t for t in moved.talks if listed(t, DEFAULT_KINDS)]
    held = events(standin)
    assert [(e["name"], when(e["scheduled_start_time"]), when(e["scheduled_end_time"])) for e in held] == [(t.display_title, t.start, t.end) for t in talks]
    for event, talk in zip(held, talks, strict=True):
        assert event["entity_type"] == 3 and event["privacy_level"] == 2 and event["channel_id"] is None
        assert event["entity_metadata"] == {"location": "Orals & Spotlights Track 28: Deep Learning"}
        assert event["creator_id"] == str(standin.bot_id)
        assert event["description"].startswith(talk.kind.label) and event["description"].endswith(MARKER + talk.id)
        assert len(event["description"]) <= 1000 and len(event["name"]) <= 100
    assert "L₂ regularization" in held[1]["name"]  # LaTeX made readable


async def test_a_second_sync_and_a_restart_create_nothing(standin: StandIn, schedule: Schedule, tmp_path: Path) -> None:
    moved = tomorrow(schedule)
    settings = settings_for(standin, tmp_path)
    await sync(settings, moved)
    again, _ = await sync(settings, moved)  # a new process on the same state file
    assert (again.created, again.updated, again.deleted, again.kept) == (0, 0, 0, LISTED)
    (tmp_path / "bot.sqlite3").unlink()  # the state is lost: the events are found by their marker
    for suffix in ("-wal", "-shm"):
        (tmp_path / f"bot.sqlite3{suffix}").unlink(missing_ok=True)
    lost, _ = await sync(settings, moved)
    assert (lost.created, lost.adopted, lost.kept) == (0, LISTED, LISTED)
    assert len(standin.events) == LISTED and calls(standin, "POST") == LISTED and calls(standin, "PATCH") == calls(standin, "DELETE") == 0


async def test_moved_retitled_and_removed_talks(standin: StandIn, schedule: Schedule, tmp_path: Path) -> None:
    moved = tomorrow(schedule)
    settings = settings_for(standin, tmp_path)
    await sync(settings, moved)
    by_talk = {e["description"].rsplit(MARKER, 1)[1]: e for e in standin.events.values()}
    first, second, third = [t for t in moved.talks if listed(t, DEFAULT_KINDS)][:3]
    later = first.start + dt.timedelta(hours=4)
    changed = {
        first.id: dataclasses.replace(first, start=later, end=later + (first.end - first.start)),
        second.id: dataclasses.replace(second, title="A new title"),
    }
    sessions = tuple(
        dataclasses.replace(s, items=tuple(sorted((changed.get(t.id, t) for t in s.items if t.id != third.id), key=lambda t: t.start))) for s in moved.sessions
    )
    result, _ = await sync(settings, Schedule(sessions, moved.conference, moved.source))
    assert (result.created, result.updated, result.deleted) == (0, 2, 1)
    assert calls(standin, "PATCH") == 2 and calls(standin, "DELETE") == 1 and calls(standin, "POST") == LISTED
    assert when(by_talk[first.id]["scheduled_start_time"]) == later and when(by_talk[first.id]["scheduled_end_time"]) == later + (first.end - first.start)
    assert by_talk[second.id]["name"] == "A new title"
    assert by_talk[third.id]["id"] not in standin.events and len(standin.events) == LISTED - 1


async def test_without_the_permissions_one_line_is_logged_and_nothing_created(standin: StandIn, schedule: Schedule, tmp_path: Path, caplog) -> None:
    await revoke(standin, CREATE_EVENTS | MANAGE_EVENTS)
    moved = tomorrow(schedule)
    settings = settings_for(standin, tmp_path)
    extension = EventsExtension(settings, SystemClock())
    client = discord.Client(intents=discord.Intents.default())
    with caplog.at_level(logging.INFO, logger="bot.discord_ui.events"):
        async with client:
            await client.login(TOKEN)
            extension.attach(client, lambda: moved)
            first = await extension.sync(standin.guild_id)
            second = await extension.sync(standin.guild_id)
            problem = extension.problem(standin.guild_id)
            tried = [r for r in standin.requests if r.method != "GET"]
            await grant(standin, CREATE_EVENTS)
            granted = await extension.sync(standin.guild_id)
            await extension.close()
    warnings = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert warnings == [f"events: guild {standin.guild_id}: {problem}"]
    assert problem is not None and "Create Events permission" in problem and "Manage Events" not in problem
    assert first.created == second.created == 0 and not first.ok and tried == []  # nothing was even tried
    assert granted.ok and granted.created == LISTED and extension.problem(standin.guild_id) is None
    assert any("kept up to date again" in r.getMessage() for r in caplog.records)


async def test_others_events_need_manage_events(standin: StandIn, schedule: Schedule, tmp_path: Path) -> None:
    moved = tomorrow(schedule)
    talk = next(t for t in moved.talks if listed(t, DEFAULT_KINDS))
    theirs = add_event(standin, talk.display_title, talk.start, talk.end, description="Made by an organiser")  # a member made it by hand
    await revoke(standin, MANAGE_EVENTS)
    result, _ = await sync(settings_for(standin, tmp_path), moved)
    assert result.created == LISTED - 1 and result.adopted == 1 and result.updated == 0  # adopted, never duplicated
    assert result.problem is not None and "Manage Events permission" in result.problem
    assert standin.events[theirs["id"]]["description"] == "Made by an organiser"
    await grant(standin, MANAGE_EVENTS)
    fixed, _ = await sync(settings_for(standin, tmp_path), moved)
    assert fixed.ok and fixed.updated == 1 and standin.events[theirs["id"]]["description"].endswith(MARKER + talk.id)


async def test_the_stand_in_keeps_discords_permission_rules(standin: StandIn) -> None:
    start = discord.utils.utcnow() + dt.timedelta(days=1)
    args = {"start_time": start, "end_time": start + dt.timedelta(hours=1), "privacy_level": discord.PrivacyLevel.guild_only, "location": "Hall A"}
    theirs = add_event(standin, "By hand", start, start + dt.timedelta(hours=1))
    client = discord.Client(intents=discord.Intents.default())
    async with client:
        await client.login(TOKEN)
        guild = await client.fetch_guild(standin.guild_id)
        ours = await guild.create_scheduled_event(name="Ours", entity_type=discord.EntityType.external, **args)
        await revoke(standin, MANAGE_EVENTS)
        await ours.edit(name="Still ours")  # Create Events suffices for the bot's own event
        other = await guild.fetch_scheduled_event(int(theirs["id"]))
        with pytest.raises(discord.Forbidden) as refused:
            await other.edit(name="Not ours")
        assert refused.value.code == 50013
        with pytest.raises(discord.Forbidden):
            await other.delete()
        await revoke(standin, CREATE_EVENTS)
        with pytest.raises(discord.Forbidden) as no_create:
            await guild.create_scheduled_event(name="More", entity_type=discord.EntityType.external, **args)
        assert no_create.value.code == 50013
        with pytest.raises(discord.Forbidden):
            await ours.delete()
        await grant(standin, MANAGE_EVENTS)
        await other.delete()
        await ours.delete()  # Manage Events alone: any event may be changed, none created
    assert not standin.events


async def test_more_than_100_talks_keep_the_soonest_100_and_roll_forward(standin: StandIn, tmp_path: Path, caplog) -> None:
    first = (dt.datetime.now(dt.UTC) + dt.timedelta(days=1)).replace(second=0, microsecond=0)
    schedule = many(130, first=first)
    settings = settings_for(standin, tmp_path)
    with caplog.at_level(logging.INFO, logger="bot.discord_ui.events"):
        result, _ = await sync(settings, schedule)
        assert result.created == EVENTS_MAX and result.beyond_limit == 30 and result.ok
        assert sorted(e["name"] for e in standin.events.values()) == sorted(f"Talk {i}" for i in range(100))
        later = FixedClock(schedule.talks[1].end)  # the bot's clock after two talks (ahead of real time)
        rolled, _ = await sync(settings, schedule, later)
    assert (rolled.deleted, rolled.created, rolled.beyond_limit) == (2, 2, 28)
    assert sorted(e["name"] for e in standin.events.values()) == sorted(f"Talk {i}" for i in range(2, 102))
    limit_lines = [r for r in caplog.records if "at most 100 events" in r.getMessage()]
    assert len(limit_lines) == 2  # once per process: here two syncs in two processes


async def test_the_running_bot_follows_reloads(standin: StandIn, schedule: Schedule, tmp_path: Path) -> None:
    moved = tomorrow(schedule)
    settings = settings_for(standin, tmp_path)
    extension = EventsExtension(settings, SystemClock())
    bot = SessionBot(settings, moved, SearchIndex(moved), SystemClock(), [extension], guild_ready_timeout=0.05)
    async with running_client(bot, token=TOKEN):
        await wait_for(lambda: len(standin.events) == LISTED, 10)
        removed = next(t for t in moved.talks if listed(t, DEFAULT_KINDS))
        sessions = tuple(dataclasses.replace(s, items=tuple(t for t in s.items if t.id != removed.id)) for s in moved.sessions)
        new = Schedule(sessions, moved.conference, moved.source)
        changes = bot.programme.accept(new, SearchIndex(new))
        await extension.schedule_changed(new, changes, "v2")
        await wait_for(lambda: len(standin.events) == LISTED - 1, 10)
        assert extension.problem(standin.guild_id) is None
    assert calls(standin, "POST") == LISTED


async def test_python_m_bot_events_syncs_once_and_exits(standin: StandIn, schedule: Schedule, tmp_path: Path) -> None:
    path = tmp_path / "tomorrow.yaml"
    path.write_text(to_yaml(tomorrow(schedule)), encoding="utf-8")
    env = subprocess_env(standin.url)
    env = {k: v for k, v in env.items() if not k.startswith(("DISCORD_", "REMINDER_", "BOT_", "SCHEDULE_", "LOG_")) or k == "DISCORD_STANDIN_URL"}
    env.update(DISCORD_TOKEN=TOKEN, DISCORD_GUILD_ID=str(standin.guild_id), STATE_PATH=str(tmp_path / "bot.sqlite3"), SCHEDULE_PATH=str(path))

    async def run(**extra: str) -> tuple[int, str, str]:
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "bot", "events", cwd=ROOT, env={**env, **extra}, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
        )
        out, err = await asyncio.wait_for(proc.communicate(), 60)
        return proc.returncode or 0, out.decode(), err.decode()

    code, out, err = await run(SCHEDULED_EVENTS="off")
    assert code == 2 and "SCHEDULED_EVENTS is off" in err and not standin.events
    code, out, err = await run(SCHEDULED_EVENTS="on")
    assert code == 0, err[-3000:]
    assert out.splitlines() == [f"Guild {standin.guild_id}: {LISTED} event(s) created, 0 updated, 0 deleted, 0 unchanged."]
    code, out, _ = await run(SCHEDULED_EVENTS="on")
    assert code == 0 and out.startswith(f"Guild {standin.guild_id}: 0 event(s) created, 0 updated, 0 deleted, {LISTED} unchanged")
    await revoke(standin, CREATE_EVENTS | MANAGE_EVENTS)
    code, out, err = await run(SCHEDULED_EVENTS="on")
    assert code == 2 and "lacks the Create Events permission" in out
    assert len(standin.events) == LISTED and TOKEN not in out + err


def test_the_invite_asks_for_the_event_permissions_only_when_the_feature_is_on(schedule: Schedule, tmp_path: Path) -> None:
    from bot.discord_ui.app import bot_permissions, default_extensions

    off = Settings(guild_id=123456789012345678, state_path=tmp_path / "bot.sqlite3")
    on = dataclasses.replace(off, scheduled_events=True)
    assert not bot_permissions(off).create_events and not bot_permissions(off).manage_events
    assert bot_permissions(on).create_events and bot_permissions(on).manage_events
    assert bot_permissions(on).value == bot_permissions(off).value | discord.Permissions(create_events=True, manage_events=True).value
    clock = SystemClock()
    assert not [e for e in default_extensions(off, schedule, SearchIndex(schedule), clock) if isinstance(e, EventsExtension)]
    assert [e for e in default_extensions(on, schedule, SearchIndex(schedule), clock) if isinstance(e, EventsExtension)]


async def test_a_create_whose_answer_was_lost_leaves_no_duplicate(standin: StandIn, schedule: Schedule, tmp_path: Path) -> None:
    moved = tomorrow(schedule)
    settings = settings_for(standin, tmp_path)
    standin.inject("POST", r"/scheduled-events$", 500, count=1, applied=True)  # Discord made it; discord.py retries the POST
    first, _ = await sync(settings, moved)
    assert first.created == LISTED and len(standin.events) == LISTED + 1
    again, _ = await sync(settings, moved)
    assert (again.created, again.deleted, again.kept) == (0, 1, LISTED) and again.ok
    names = [e["name"] for e in events(standin)]
    assert len(names) == len(set(names)) == LISTED


async def test_a_missing_permission_shows_in_reminders_status(standin: StandIn, schedule: Schedule, tmp_path: Path) -> None:
    from bot.discord_ui.reminders import ReminderExtension

    await revoke(standin, CREATE_EVENTS | MANAGE_EVENTS)
    moved = tomorrow(schedule)
    settings = dataclasses.replace(settings_for(standin, tmp_path), reminder_channel_id=standin.channel_id)
    clock = SystemClock()
    events = EventsExtension(settings, clock)
    bot = SessionBot(settings, moved, SearchIndex(moved), clock, [ReminderExtension(settings, moved, clock), events], guild_ready_timeout=0.05)
    async with running_client(bot, token=TOKEN):
        await wait_for(lambda: events.problem(standin.guild_id) is not None, 10)
        status = await (await standin.invoke("reminders status", permissions=1 << 5))
    fields = {f["name"]: f["value"] for f in status["data"]["embeds"][0]["fields"]}
    assert "Create Events permission" in fields["Scheduled events"]
