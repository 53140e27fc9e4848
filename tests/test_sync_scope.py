"""`python -m bot sync`: one scope published, the other's copies removed, so no command shows twice."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import pytest_asyncio

from bot.__main__ import UsageError, _parser, cmd_sync
from bot.config import Secret, Settings
from bot.core.clock import FixedClock
from bot.core.schedule import Schedule
from bot.core.search import SearchIndex
from bot.discord_ui.app import SessionBot, SyncScope
from tests.conftest import ROOT, pst
from tests.standin import StandIn, subprocess_env

TOKEN = "U1lOQ1NDT1BF.sync-scope-fake-token.never-printed-31"
NAMES = {"next", "now", "schedule", "talk", "abstract", "author", "help"}
OTHER_GUILD = 123456789012345678  # a guild the bot is not in


@pytest_asyncio.fixture
async def standin() -> AsyncIterator[StandIn]:
    async with StandIn(token=TOKEN) as server:
        with server.redirect():
            yield server


async def sync(standin: StandIn, schedule: Schedule, index: SearchIndex, scope: SyncScope, guild_id: int | None = None) -> SessionBot:
    """Log in (no gateway) and sync as `python -m bot sync` does: setup_hook publishes."""
    settings = Settings(discord_token=Secret(TOKEN), guild_id=guild_id)
    bot = SessionBot(settings, schedule, index, FixedClock(pst(6)), [], sync_scope=scope)
    async with bot:
        await bot.login(TOKEN)
    return bot


def names(standin: StandIn, guild_id: int | None = None) -> set[str]:
    return {c["name"] for c in standin.commands.get(guild_id, [])}


async def test_global_sync_removes_the_copies_a_start_put_in_the_guild(standin: StandIn, schedule: Schedule, index: SearchIndex) -> None:
    gid = standin.guild_id
    await sync(standin, schedule, index, SyncScope.GUILD_IF_SET, gid)  # what a start with DISCORD_GUILD_ID does
    assert names(standin, gid) >= NAMES
    bot = await sync(standin, schedule, index, SyncScope.GLOBAL, gid)
    assert names(standin) >= NAMES
    assert names(standin, gid) == set()
    n = len(bot.synced)
    assert bot.sync_ok
    assert bot.sync_summary == (
        f"Published {n} commands globally (Discord may take a while to show them); removed {n} commands in guild {gid}; "
        "unset DISCORD_GUILD_ID, or the next start copies them to that guild again."
    )


async def test_guild_sync_publishes_there_and_removes_the_global_ones(standin: StandIn, schedule: Schedule, index: SearchIndex) -> None:
    gid = standin.guild_id
    await sync(standin, schedule, index, SyncScope.GLOBAL)
    assert names(standin) >= NAMES
    bot = await sync(standin, schedule, index, SyncScope.GUILD, gid)
    assert names(standin, gid) >= NAMES
    assert names(standin) == set()
    n = len(bot.synced)
    assert bot.sync_summary == f"Published {n} commands to guild {gid} (they show at once); removed {n} global commands."


async def test_clear_removes_both_and_asks_nothing_more_of_an_empty_scope(standin: StandIn, schedule: Schedule, index: SearchIndex) -> None:
    gid = standin.guild_id
    await sync(standin, schedule, index, SyncScope.GLOBAL)
    await sync(standin, schedule, index, SyncScope.GUILD_IF_SET, gid)
    n = len(standin.commands[None])
    bot = await sync(standin, schedule, index, SyncScope.CLEAR, gid)
    assert names(standin) == names(standin, gid) == set()
    assert bot.sync_ok and not bot.synced
    assert bot.sync_summary.startswith(f"Removed {n} global commands; removed {n} commands in guild {gid}; the next start")
    standin.requests.clear()
    again = await sync(standin, schedule, index, SyncScope.CLEAR, gid)
    assert again.sync_summary.startswith(f"Found no global commands to remove; found no commands in guild {gid} to remove")
    assert not [r for r in standin.requests if r.method == "PUT"]  # nothing to overwrite, nothing sent


async def test_without_a_guild_id_global_sync_says_no_guild_was_checked(standin: StandIn, schedule: Schedule, index: SearchIndex) -> None:
    standin.seed_commands([{"name": "next", "description": "an old copy"}], guild_id=standin.guild_id)
    bot = await sync(standin, schedule, index, SyncScope.GLOBAL)
    assert names(standin) >= NAMES
    assert names(standin, standin.guild_id) == {"next"}  # no DISCORD_GUILD_ID: which guild would it be?
    assert bot.sync_summary.endswith("; no DISCORD_GUILD_ID, so no guild was checked for copies.")


async def test_a_guild_the_bot_is_not_in_is_reported_after_what_was_done(standin: StandIn, schedule: Schedule, index: SearchIndex) -> None:
    bot = await sync(standin, schedule, index, SyncScope.GLOBAL, OTHER_GUILD)
    assert names(standin) >= NAMES
    assert not bot.sync_ok
    assert f"commands globally (Discord may take a while to show them); then Discord refused (403 Missing Access); is the bot in guild {OTHER_GUILD}" in (
        bot.sync_summary
    )
    refused = await sync(standin, schedule, index, SyncScope.GUILD, OTHER_GUILD)
    assert refused.sync_summary.startswith("Nothing changed: Discord refused (403 Missing Access)")
    assert names(standin) >= NAMES  # the global commands were not removed for a guild that failed


def test_sync_guild_without_a_guild_id_is_a_usage_error() -> None:
    args = _parser().parse_args(["sync", "--guild"])
    with pytest.raises(UsageError, match="DISCORD_GUILD_ID"):
        cmd_sync(args, Settings(discord_token=Secret(TOKEN)))
    with pytest.raises(SystemExit):
        _parser().parse_args(["sync", "--guild", "--clear"])


async def test_python_m_bot_sync_prints_one_line(tmp_path: Path) -> None:
    async with StandIn(token=TOKEN) as standin:
        gid = standin.guild_id
        standin.seed_commands([{"name": n, "description": "from an earlier start"} for n in sorted(NAMES)], guild_id=gid)
        env = subprocess_env(standin.url)
        env = {k: v for k, v in env.items() if not k.startswith(("DISCORD_", "REMINDER_", "BOT_", "SCHEDULE_", "LOG_")) or k == "DISCORD_STANDIN_URL"}
        env.update(DISCORD_TOKEN=TOKEN, DISCORD_GUILD_ID=str(gid), STATE_PATH=str(tmp_path / "bot.sqlite3"))
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "bot", "sync", cwd=ROOT, env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
        )
        out, err = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode == 0, (out + err).decode()[-3000:]
    lines = out.decode().splitlines()
    assert len(lines) == 1
    assert lines[0].startswith("Published ") and f"commands globally (Discord may take a while to show them); removed 7 commands in guild {gid}" in lines[0]
    assert names(standin) >= NAMES and names(standin, gid) == set()
    assert TOKEN not in (out + err).decode()


async def test_a_start_in_a_guild_warns_when_the_commands_are_also_global(standin: StandIn, schedule: Schedule, index: SearchIndex, caplog) -> None:
    gid = standin.guild_id
    await sync(standin, schedule, index, SyncScope.GUILD_IF_SET, gid)
    assert "also published globally" not in caplog.text
    await sync(standin, schedule, index, SyncScope.GLOBAL)  # no DISCORD_GUILD_ID: the guild's copies stay
    await sync(standin, schedule, index, SyncScope.GUILD_IF_SET, gid)  # the next start
    assert "also published globally, so guild" in caplog.text and "sync --guild" in caplog.text
