"""/calendar: the programme, one talk or the talks a user follows, as an ephemeral .ics attachment.

The file is built from the programme served at that moment (a reload takes effect at once), off
the event loop. A big programme is deferred first, since building it may take longer than the
3 seconds an interaction waits; a file over the interaction's attachment limit drops its abstracts.
"""

from __future__ import annotations

import asyncio
import io
import logging
from collections.abc import Callable

import discord
from discord import app_commands

from bot.core import answers
from bot.core.calendar import CalendarFile, make_calendar
from bot.core.clock import Clock
from bot.core.programme import Programme
from bot.discord_ui.commands import CHOICES_MAX, Query, safe_autocomplete
from bot.discord_ui.render import NO_PINGS, clean, fit

log = logging.getLogger(__name__)

FollowedTalks = Callable[[int], list[str]]
"""A user id -> the ids of the talks they follow (the /remind store)."""

DEFER_ABOVE = 400  # events: about 0.15 s of building; a bigger calendar is deferred first
TITLE_CHARS = 200  # of a talk title in the reply


class CalendarCommand:
    """What /calendar needs; `followed` may be set after registration (when /remind is set up)."""

    def __init__(self, programme: Programme, clock: Clock, followed: FollowedTalks | None = None) -> None:
        self.programme = programme
        self.clock = clock
        self.followed = followed

    async def answer(self, interaction: discord.Interaction, query: str | None, mine: bool) -> None:
        schedule, index = self.programme.schedule, self.programme.index
        followed = await asyncio.to_thread(self._followed_ids, interaction.user.id) if mine else None  # the state store answers off the loop
        if query is None and len(followed if followed is not None else schedule.talks) > DEFER_ABOVE:
            await interaction.response.defer(ephemeral=True, thinking=True)
        now, limit = self.clock.now(), interaction.filesize_limit
        calendar = await asyncio.to_thread(make_calendar, schedule, index, now, query=query, followed=followed, max_bytes=limit)
        reply = {"content": calendar_note(calendar, limit), "file": discord.File(io.BytesIO(calendar.data), filename=calendar.filename)}
        if interaction.response.is_done():
            await interaction.followup.send(**reply, ephemeral=True, allowed_mentions=NO_PINGS)
        else:
            await interaction.response.send_message(**reply, ephemeral=True, allowed_mentions=NO_PINGS)

    def _followed_ids(self, user_id: int) -> list[str]:
        return list(self.followed(user_id)) if self.followed is not None else []


def calendar_note(calendar: CalendarFile, limit: int) -> str:
    """The message above the file: what it holds and how to use it (well under 2000 characters)."""
    what = f"{calendar.events} event{'s' * (calendar.events != 1)}"
    text = f"📅 {fit(clean(calendar.label), TITLE_CHARS)}: {what}, in UTC, so your calendar shows them in your own time zone."
    text += " Open the file, or import it into Google Calendar, Apple Calendar or Thunderbird."
    if not calendar.abstracts:
        text += f" Abstracts are left out, to stay under Discord's {limit / 2**20:.0f} MB limit for a file."
    return text


def add_calendar_command(tree: app_commands.CommandTree, programme: Programme, clock: Clock, followed: FollowedTalks | None = None) -> CalendarCommand:
    """Register /calendar on `tree`; the returned object's `followed` can be set later."""
    command = CalendarCommand(programme, clock, followed)
    talks = safe_autocomplete(lambda text: answers.suggest_talks(programme.index, text, clock.now(), limit=CHOICES_MAX), "talks")

    @tree.command(name="calendar", description="A calendar file (.ics) of the programme, one talk, or the talks you follow")
    @app_commands.describe(
        talk="One talk only: words from the title, an author or the abstract; pick from the list for an exact match",
        mine="Only the talks you follow with /remind",
    )
    @app_commands.autocomplete(talk=talks)
    async def calendar_(interaction: discord.Interaction, talk: Query | None = None, mine: bool = False) -> None:
        await command.answer(interaction, talk, mine)

    return command
