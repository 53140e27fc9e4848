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
from bot.reminders.plan import continue_rehearsal, reminder_due_at, reminder_id
from bot.state.store import LIVE, State, Store
from tests.conftest import moved, pst, wait_for
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


def make_bot(settings: Settings, schedule: Schedule, clock: Clock, run: str = LIVE) -> SessionBot:
    ext = ReminderExtension(settings, schedule, clock, run=run)
    return SessionBot(settings, schedule, SearchIndex(schedule), clock, [ext], guild_ready_timeout=0.05)


def reminder_posts(standin: StandIn, channel_id: int | None = None) -> list:
    return [m for m in standin.messages(channel_id or standin.channel_id) if m.nonce]


def rid(standin: StandIn, schedule: Schedule, talk_id: str, lead: int = 5, run: str = LIVE, channel: int | None = None) -> str:
    guild = standin.guild_of_channel(channel or standin.channel_id).id
    return reminder_id(run, guild, channel or standin.channel_id, talk_id, lead, reminder_due_at(schedule.talk(talk_id), lead))


def titles_of(posts: list) -> list[str]:
    return [m.body["embeds"][0]["title"] for m in posts]


def talk_titles(schedule: Schedule) -> list[str]:
    return [t.display_title for t in schedule.talks if t.kind.value in KINDS]


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
    assert Store(state).get(rid(standin, schedule, "shooting-formulation")).state is State.CLAIMED

    standin.inject("POST", posts, 429, count=1, retry_after=0.05)
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
    assert any(r.status == 429 for r in standin.requests)
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
        assert "off" in str(off["data"]) and len(client.extensions[0].service.plan) == 0
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


# ------------------------------------------------------------------ several guilds


def second_guild(standin: StandIn):
    """Guild B: a working channel and one where the bot may not post (403)."""
    guild = standin.add_guild(standin.guild_id + 1000, name="Other conference")
    return guild, guild.channels[0].id, guild.channels[1].id


async def test_a_refusing_channel_in_one_guild_never_costs_another_its_reminders(standin, schedule, tmp_path):
    """B's admin points reminders at a channel that answers 403 and changes B's lead; after a
    restart without DISCORD_GUILD_ID, A still gets all its reminders in its own channel, on time;
    B's are refused once each, never retried; and each admin's status shows only their guild."""
    b, _, b_refusing = second_guild(standin)
    state = tmp_path / "bot.sqlite3"
    async with running_client(make_bot(settings_for(standin, state), schedule, FixedClock(pst(5, 0))), token=TOKEN):
        pass  # the first start syncs the commands to A
    standin.publish_globally(standin.guild_id)  # as `python -m bot sync` would
    standin.inject("POST", rf"/channels/{b_refusing}/messages", 403, count=None)
    no_home = settings_for(standin, state, guild_id=None)
    async with running_client(make_bot(no_home, schedule, FixedClock(pst(5, 0))), token=TOKEN):
        await (await standin.invoke("reminders channel", {"channel": str(b_refusing)}, guild_id=b.id, permissions=MANAGE_GUILD))
        await (await standin.invoke("reminders lead", {"minutes": "10"}, guild_id=b.id, permissions=MANAGE_GUILD))
    clock = ReplayClock(pst(5, 50), SPEED)
    async with running_client(make_bot(no_home, schedule, clock), token=TOKEN):
        await wait_for(lambda: len(reminder_posts(standin)) >= len(talk_titles(schedule)), 15)
        await wait_for(lambda: clock.now() > pst(8, 30), 15)
        a_status = await (await standin.invoke("reminders status", permissions=MANAGE_GUILD))
        b_status = await (await standin.invoke("reminders status", guild_id=b.id, permissions=MANAGE_GUILD))
    posts = reminder_posts(standin)
    assert titles_of(posts) == talk_titles(schedule)
    assert all("starts in 5 minutes" in m.body["embeds"][0]["description"] for m in posts)
    refused = [r for r in standin.requests if r.method == "POST" and r.path == f"/channels/{b_refusing}/messages"]
    assert len(refused) == len(talk_titles(schedule))  # once each: a 403 is not retried
    ledger = Store(state)
    assert {row.state for row in ledger.rows(guild_id=b.id)} == {State.REFUSED}
    assert {row.lead for row in ledger.rows(guild_id=b.id)} == {10}
    assert {row.state for row in ledger.rows(guild_id=standin.guild_id)} == {State.SENT}
    a_text, b_text = str(a_status["data"]), str(b_status["data"])
    assert str(b_refusing) not in a_text and "403" not in a_text and "Failures" in a_text
    assert str(b_refusing) in b_text and "403" in b_text
    assert str(standin.channel_id) not in b_text
    assert "nothing left to remind" in b_text or "10 min before" in b_text


async def test_another_guild_turning_reminders_off_never_silences_this_one(standin, schedule, tmp_path):
    """The old planner gave the environment's channel to the first guild with settings: B's /reminders off silenced A."""
    b, b_channel, _ = second_guild(standin)
    state = tmp_path / "bot.sqlite3"
    async with running_client(make_bot(settings_for(standin, state), schedule, FixedClock(pst(5, 0))), token=TOKEN):
        pass
    standin.publish_globally(standin.guild_id)
    no_home = settings_for(standin, state, guild_id=None, reminder_grace_minutes=10)
    async with running_client(make_bot(no_home, schedule, FixedClock(pst(5, 0))), token=TOKEN):
        await (await standin.invoke("reminders off", guild_id=b.id, permissions=MANAGE_GUILD))
    async with running_client(make_bot(no_home, schedule, ReplayClock(pst(5, 54), 120.0)), token=TOKEN):
        await wait_for(lambda: reminder_posts(standin), 10)
    assert titles_of(reminder_posts(standin)) == ["A shooting formulation of deep learning"]
    assert reminder_posts(standin, b_channel) == []


async def test_the_environment_role_is_pinged_only_in_its_own_guild(standin, schedule, tmp_path):
    b, b_channel, _ = second_guild(standin)
    a_role, b_role = standin.guild.roles[2].id, b.roles[2].id
    state = tmp_path / "bot.sqlite3"
    settings = settings_for(standin, state, reminder_role_id=a_role, reminder_grace_minutes=10)
    async with running_client(make_bot(settings, schedule, FixedClock(pst(5, 0))), token=TOKEN):
        pass
    standin.publish_globally(standin.guild_id)
    async with running_client(make_bot(settings, schedule, FixedClock(pst(5, 0))), token=TOKEN):
        await (await standin.invoke("reminders channel", {"channel": str(b_channel)}, guild_id=b.id, permissions=MANAGE_GUILD))
    async with running_client(make_bot(settings, schedule, ReplayClock(pst(5, 54), 120.0)), token=TOKEN):
        await wait_for(lambda: reminder_posts(standin) and reminder_posts(standin, b_channel), 10)
        shown = await (await standin.invoke("reminders role", {"role": str(b_role)}, guild_id=b.id, permissions=MANAGE_GUILD))
        await wait_for(lambda: len(reminder_posts(standin, b_channel)) >= 2, 10)
    (a_post, *_) = reminder_posts(standin)
    b_first, b_second, *_ = reminder_posts(standin, b_channel)
    assert [int(r) for r in a_post.body["allowed_mentions"]["roles"]] == [a_role]
    assert str(a_role) not in b_first.content and not b_first.would_ping
    assert f"<@&{b_role}>" in str(shown["data"])
    assert b_second.content.startswith(f"<@&{b_role}> ") and [int(r) for r in b_second.body["allowed_mentions"]["roles"]] == [b_role]


async def test_a_guild_joined_while_running_is_planned_and_one_left_is_dropped(standin, schedule, tmp_path):
    state = tmp_path / "bot.sqlite3"
    Store(state).set_override(standin.guild_id + 2000, channel_id=777)  # settings kept from an earlier invitation
    async with running_client(make_bot(settings_for(standin, state), schedule, FixedClock(pst(5, 0))), token=TOKEN) as client:
        service = client.extensions[0].service
        await wait_for(lambda: {r.guild_id for r in service.plan} == {standin.guild_id}, 5)
        joined = await standin.join(standin.guild_id + 2000, channels={777: "reminders", 778: "general"})
        await wait_for(lambda: {r.guild_id for r in service.plan} == {standin.guild_id, joined.id}, 5)
        await standin.leave(joined.id)
        await wait_for(lambda: {r.guild_id for r in service.plan} == {standin.guild_id}, 5)


# ------------------------------------------------------------------ rehearsal, moves and crashes


async def test_a_rehearsal_then_the_live_day_on_the_same_state_file(standin, schedule, tmp_path):
    """The README's rehearsal used to mark every talk as sent, so the real day posted nothing."""
    state = tmp_path / "bot.sqlite3"
    settings = settings_for(standin, state, reminder_grace_minutes=10)
    ledger = Store(state)
    rehearsal_clock, run = continue_rehearsal(ReplayClock(pst(5, 54), 120.0), ledger, schedule, wall_now=0.0)
    async with running_client(make_bot(settings, schedule, rehearsal_clock, run), token=TOKEN):
        await wait_for(lambda: reminder_posts(standin), 10)
    rehearsal_nonce = reminder_posts(standin)[0].nonce
    # a new rehearsal from the top, hours later: a fresh run, fresh nonces, so Discord cannot return the old post
    again_clock, again = continue_rehearsal(ReplayClock(pst(5, 54), 120.0), ledger, schedule, wall_now=100_000.0)
    assert again != run
    async with running_client(make_bot(settings, schedule, again_clock, again), token=TOKEN):
        await wait_for(lambda: len(reminder_posts(standin)) >= 2, 10)
    # the real day: the live run, on the same state file
    async with running_client(make_bot(settings, schedule, ReplayClock(pst(5, 54), 120.0), LIVE), token=TOKEN):
        await wait_for(lambda: len(reminder_posts(standin)) >= 3, 10)
    posts = reminder_posts(standin)
    assert titles_of(posts) == ["A shooting formulation of deep learning"] * 3
    assert len({m.nonce for m in posts}) == 3 and posts[0].nonce == rehearsal_nonce
    assert ledger.get(rid(standin, schedule, "shooting-formulation")).state is State.SENT


async def test_a_talk_moved_between_restarts_is_reminded_at_its_new_time(standin, schedule, tmp_path):
    state = tmp_path / "bot.sqlite3"
    settings = settings_for(standin, state, reminder_grace_minutes=10)
    async with running_client(make_bot(settings, schedule, ReplayClock(pst(5, 54), 120.0)), token=TOKEN):
        await wait_for(lambda: reminder_posts(standin), 10)
    postponed = moved(schedule, "shooting-formulation", pst(9, 0))
    async with running_client(make_bot(settings, postponed, ReplayClock(pst(8, 54), 120.0)), token=TOKEN):
        await wait_for(lambda: len(reminder_posts(standin)) >= 2, 10)
    first, second = reminder_posts(standin)
    assert titles_of([first, second]) == ["A shooting formulation of deep learning"] * 2
    assert "starts in 5 minutes" in second.body["embeds"][0]["description"]
    assert f"<t:{int(pst(9, 0).timestamp())}:f>" in second.body["embeds"][0]["description"]


async def test_a_crash_between_post_and_confirm_past_the_nonce_window_posts_once(standin, schedule, tmp_path):
    """Discord keeps a nonce for minutes only: the restart looks for the post before posting again."""
    standin.nonce_window = 0.3
    state = tmp_path / "bot.sqlite3"
    settings = settings_for(standin, state)
    standin.inject("POST", r"/channels/\d+/messages", 502, count=1, applied=True)  # posted; the answer is lost
    clock = ReplayClock(pst(5, 54), 120.0)
    client = make_bot(settings, schedule, clock)
    task = asyncio.create_task(client.start(TOKEN))
    await wait_for(lambda: any(r.faulted for r in standin.requests), 10)
    await kill_client(client, task)
    assert len(reminder_posts(standin)) == 1
    assert Store(state).get(rid(standin, schedule, "shooting-formulation")).state is State.CLAIMED
    await asyncio.sleep(0.5)  # past the nonce window
    async with running_client(make_bot(settings, schedule, ReplayClock(clock.now(), 120.0)), token=TOKEN):
        await wait_for(lambda: Store(state).get(rid(standin, schedule, "shooting-formulation")).state is State.SENT, 10)
        await asyncio.sleep(0.2)
    posts = reminder_posts(standin)
    assert titles_of(posts) == ["A shooting formulation of deep learning"]
    assert Store(state).get(rid(standin, schedule, "shooting-formulation")).message_id == str(posts[0].id)
    history = [r for r in standin.requests if r.method == "GET" and r.path.endswith("/messages")]
    assert history and "after" in history[0].query
