"""The slash commands: parse the options, ask bot.answers, send the rendered embeds.

User mistakes (not found, ambiguous, empty) are raised as bot.errors.UserError and answered
by the tree's single on_error (bot.discord_app). The core answers in milliseconds, so every
handler responds directly, well inside Discord's 3-second window, without deferring.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence

import discord
from discord import app_commands

from bot.core import answers
from bot.core.clock import Clock
from bot.core.programme import Programme
from bot.discord_ui import render

log = logging.getLogger(__name__)

CHOICES_MAX = 25
CHOICE_NAME_MAX = 100
CHOICE_VALUE_MAX = 100
# Discord's client refuses a longer query (the option's max_length); autocomplete gets the partial
# text unchecked, so it looks at only this much of it, to stay cheap.
QUERY_CHARS = answers.QUERY_MAX
Query = app_commands.Range[str, 1, QUERY_CHARS]


async def send(interaction: discord.Interaction, replies: Sequence[render.Reply]) -> None:
    """The first reply answers the interaction; any others follow it up."""
    first, *rest = replies
    await interaction.response.send_message(**message_args(first))
    for reply in rest:
        await interaction.followup.send(**message_args(reply))


def message_args(reply: render.Reply) -> dict:
    args: dict = {"ephemeral": reply.ephemeral, "allowed_mentions": reply.allowed_mentions}
    if reply.content:
        args["content"] = reply.content
    if reply.embeds:
        args["embeds"] = list(reply.embeds)
    return args


def to_choices(suggestions: Sequence[answers.Suggestion]) -> list[app_commands.Choice[str]]:
    """Suggestions as choices that Discord accepts: ≤25, names 1–100, values ≤100."""
    choices = []
    for s in suggestions:
        name = render.fit(s.name.strip() or s.value, CHOICE_NAME_MAX)
        if name and 0 < len(s.value) <= CHOICE_VALUE_MAX:
            choices.append(app_commands.Choice(name=name, value=s.value))
    return choices[:CHOICES_MAX]


def safe_autocomplete(suggest: Callable[[str], Sequence[answers.Suggestion]], what: str):
    """An autocomplete callback that never raises: on any error it logs and offers nothing."""

    async def complete(interaction: discord.Interaction, current: str) -> list[app_commands.Choice[str]]:
        try:
            return to_choices(suggest((current or "")[:QUERY_CHARS]))
        except Exception:
            log.exception("autocomplete for %s failed on %r", what, current[:QUERY_CHARS])
            return []

    return complete


def add_commands(tree: app_commands.CommandTree, programme: Programme, clock: Clock) -> None:
    """Register /next, /now, /schedule, /talk, /abstract, /author and /help on `tree`.

    Each answer reads the programme being served at that moment, so a reloaded schedule answers at once.
    """
    talks = safe_autocomplete(lambda text: answers.suggest_talks(programme.index, text, clock.now(), limit=CHOICES_MAX), "talks")
    authors = safe_autocomplete(lambda text: answers.suggest_authors(programme.index, text, clock.now(), limit=CHOICES_MAX), "authors")

    @tree.command(name="next", description="The next talks, with their start in your own time zone")
    async def next_(interaction: discord.Interaction) -> None:
        now = clock.now()
        await send(interaction, render.render_next(answers.next_talks(programme.schedule, now), programme.schedule, now))

    @tree.command(name="now", description="What is on right now, and what follows")
    async def now_(interaction: discord.Interaction) -> None:
        now = clock.now()
        await send(interaction, render.render_now(answers.on_now(programme.schedule, now), programme.schedule, now))

    @tree.command(name="schedule", description="The whole programme of the session")
    async def schedule_(interaction: discord.Interaction) -> None:
        await send(interaction, render.render_agenda(answers.agenda(programme.schedule)))

    @tree.command(name="talk", description="One talk: time, authors and abstract")
    @app_commands.describe(query="Words from the title, an author or the abstract; pick from the list for an exact match")
    @app_commands.autocomplete(query=talks)
    async def talk_(interaction: discord.Interaction, query: Query) -> None:
        await send(interaction, render.render_talk(answers.find_talk(programme.index, query), programme.schedule))

    @tree.command(name="abstract", description="The full abstract of a talk")
    @app_commands.describe(query="Words from the title, an author or the abstract; pick from the list for an exact match")
    @app_commands.autocomplete(query=talks)
    async def abstract_(interaction: discord.Interaction, query: Query) -> None:
        await send(interaction, render.render_talk(answers.find_talk(programme.index, query), programme.schedule, full_abstract=True))

    @tree.command(name="author", description="The talks of one author, or the sessions of one chair")
    @app_commands.describe(name="An author's or a session chair's name or surname, with or without accents")
    @app_commands.autocomplete(name=authors)
    async def author_(interaction: discord.Interaction, name: Query) -> None:
        await send(interaction, render.render_author(answers.find_author(programme.index, name), programme.schedule))

    @tree.command(name="help", description="What this bot can answer")
    async def help_(interaction: discord.Interaction) -> None:
        await send(interaction, render.render_help(programme.schedule))
