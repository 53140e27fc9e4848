"""Following the programme in Discord: a watched file or URL, SIGHUP and `/reload` bring a new version in.

A new version is built off the event loop, then served at once; each extension that follows the
schedule (reminders) is told what changed. A version that cannot be used is the organisers'
business: it is logged once with its problems and shown in `/reminders status`, never posted in
the audience's channels, and the previous version keeps being served.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import hashlib
import logging
import signal
from typing import TYPE_CHECKING

import discord
from discord import app_commands

from bot.core.programme import hand_over
from bot.core.schedule import Schedule
from bot.core.search import SearchIndex
from bot.sources.watch import Outcome, Parse, ScheduleWatcher

if TYPE_CHECKING:
    from bot.discord_ui.app import SessionBot

log = logging.getLogger(__name__)


class ScheduleUpdates:
    """An extension: watches the schedule source and hands each accepted version to the bot."""

    def __init__(self, source: str, parse: Parse, *, poll_seconds: float, served: bytes | None, state_dir=None, file_poll_seconds: float = 2.0) -> None:
        self.bot: SessionBot | None = None
        self.watcher = ScheduleWatcher(
            source,
            parse=parse,
            accept=self.accept,
            refuse=self.refuse,
            poll_seconds=poll_seconds,
            file_poll_seconds=file_poll_seconds,
            state_dir=state_dir,
            served=served,
        )
        self._signal = False
        self._pending: asyncio.Future | None = None

    def __repr__(self) -> str:
        return f"ScheduleUpdates({self.watcher.source!r})"

    async def setup(self, bot: SessionBot) -> None:
        self.bot = bot
        bot.tree.add_command(reload_command(self))
        if not getattr(bot, "serving", True):
            return
        self.watcher.start()
        with contextlib.suppress(NotImplementedError, RuntimeError, AttributeError):  # not the main thread, or no SIGHUP
            asyncio.get_running_loop().add_signal_handler(signal.SIGHUP, self._on_sighup)
            self._signal = True

    def _on_sighup(self) -> None:
        log.info("schedule: SIGHUP, reading %s again", self.watcher.source)
        self._pending = asyncio.ensure_future(self.watcher.check(force=True))

    async def guilds_changed(self) -> None:
        return None

    async def close(self) -> None:
        await self.watcher.close()
        if self._signal:
            with contextlib.suppress(Exception):
                asyncio.get_running_loop().remove_signal_handler(signal.SIGHUP)

    async def accept(self, ready: tuple[Schedule, SearchIndex], source: str) -> None:
        assert self.bot is not None
        schedule, index = ready
        changes = await hand_over(self.bot.programme, schedule, index)
        version = await asyncio.to_thread(version_of, schedule, source)
        log.info("schedule: new version of %s served (%d items): %s", source, len(schedule.talks), changes.summary())
        for extension in self.bot.extensions:
            follow = getattr(extension, "schedule_changed", None)
            if follow is not None:
                try:
                    await follow(schedule, changes, version)
                except Exception:
                    log.exception("extension %r failed to follow the new schedule", extension)

    async def refuse(self, source: str, reason: str) -> None:
        assert self.bot is not None
        if self.bot.programme.refuse(source, reason, dt.datetime.now(dt.UTC)):
            log.error("schedule: the new version of %s was refused; still serving the previous one.\n%s", source, reason)


def version_of(schedule: Schedule, source: str) -> str:
    """A short digest naming a version (the announcements' nonces use it)."""
    return hashlib.blake2b(
        repr((source, len(schedule.talks), [(t.id, t.start, t.end, t.title, t.authors) for t in schedule.talks])).encode(), digest_size=8
    ).hexdigest()


def reload_command(updates: ScheduleUpdates) -> app_commands.Command:
    @app_commands.command(name="reload", description="Read the schedule again now (organisers)")
    @app_commands.default_permissions(manage_guild=True)
    @app_commands.guild_only()
    async def reload(interaction: discord.Interaction) -> None:
        if not interaction.permissions.manage_guild:
            await interaction.response.send_message("You need the Manage Server permission to reload the schedule.", ephemeral=True)
            return
        await interaction.response.defer(ephemeral=True, thinking=True)  # a large programme takes longer than 3 s to build
        outcome = await updates.watcher.check(force=True)
        programme = updates.bot.programme if updates.bot is not None else None
        text = {
            Outcome.UNCHANGED: "The schedule has not changed.",
            Outcome.ACCEPTED: "Reloaded: the new version is served now.",
            Outcome.REFUSED: "The new version was refused; the previous one is still served. `/reminders status` shows why.",
            Outcome.UNREACHABLE: "The schedule's server could not be reached; the current version is still served.",
        }[outcome]
        if outcome is Outcome.ACCEPTED and programme is not None:
            text += f" {len(programme.schedule.talks)} items."
        await interaction.followup.send(text, ephemeral=True)

    return reload
