"""Session Q&A on Discord, what users see: the question, list and digest embeds, and the vote and
chair buttons (DynamicItems whose custom_id names the question, `qa:vote:42`, so a click on a message
posted by an earlier process still works; every view is sent with `timeout=None`)."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

import discord

from bot.core import qa
from bot.core.schedule import Schedule, Talk
from bot.discord_ui import render
from bot.discord_ui.claims import first_to_answer
from bot.state.base import Question

if TYPE_CHECKING:
    from bot.discord_ui.qa import QaExtension

LIST_MAX = 10  # /questions; two chair buttons each: 20 buttons in 5 rows of 4
THREAD_NAME_MAX = 100


# --------------------------------------------------------------------------- rendering


def question_url(guild_id: int, q: Question) -> str | None:
    return render.jump_link(guild_id, q.channel_id, q.message_id) if q.channel_id and q.message_id else None


def render_question(q: Question, talk: Talk | None, asker: str) -> discord.Embed:
    """The posted question: its text escaped, the talk, who asked (a name or "anonymous"). Embeds never ping."""
    embed = discord.Embed(description=render.fit(render.clean(q.text), render.DESCRIPTION_MAX), colour=render.COLOUR)
    embed.set_author(name=render.fit(f"Question from {asker}", 256))
    embed.add_field(name="Talk", value=render.headline(talk, render.FIELD_VALUE_MAX) if talk else render.fit(render.clean(q.talk_id), 200), inline=False)
    embed.set_footer(text=f"Question {q.id} · upvote it with the button; /ask to ask your own")
    return render.ensure_fits(embed)


def _line_name(i: int, q: Question, schedule: Schedule, joint: bool) -> str:
    talk = schedule.talk(q.talk_id)
    about = f" · {render.clean(talk.display_title)}" if joint and talk is not None else ""
    return render.fit(f"{i}. ▲ {q.votes}{' · anonymous' if q.anonymous else ''}{about}", 120)


def _question_fields(embed: discord.Embed, questions: list[Question], schedule: Schedule, talk: Talk, guild_id: int, chars: int) -> None:
    """One field per question, each text cut to `chars` or less, so that the embed stays within the 6000 in all."""
    joint = len(qa.covered(schedule, talk)) > 1
    names = [_line_name(i, q, schedule, joint) for i, q in enumerate(questions, 1)]
    links = [f"\n[message]({url})" if (url := question_url(guild_id, q)) else "" for q in questions]
    room = render.EMBED_TOTAL_MAX - len(embed) - sum(map(len, names)) - sum(map(len, links))
    per = max(1, min(chars, room // max(1, len(questions))))
    for name, link, q in zip(names, links, questions, strict=True):
        embed.add_field(name=name, value=render.fit(render.clean(q.text), per) + link, inline=False)


def render_list(questions: list[Question], schedule: Schedule, talk: Talk, guild_id: int) -> tuple[discord.Embed, discord.ui.View | None]:
    """The chair's view: the top questions, each with "answered" and "hide" (two questions per row)."""
    title = render.fit(f"Questions · {render.clean(talk.display_title)}", render.TITLE_MAX)
    embed = discord.Embed(title=title, colour=render.COLOUR)
    if not questions:
        embed.description = "No open questions yet. The audience asks with `/ask`."
    embed.set_footer(text=f"Top {LIST_MAX} by votes, then age · {talk.id}")  # the id: a click knows which list to redraw
    _question_fields(embed, questions, schedule, talk, guild_id, 500)
    if not questions:
        return render.ensure_fits(embed), None
    view = discord.ui.View(timeout=None)
    for i, q in enumerate(questions):
        view.add_item(ChairButton("answered", q.id, i + 1, row=i // 2))
        view.add_item(ChairButton("hide", q.id, i + 1, row=i // 2))
    return render.ensure_fits(embed), view


def render_digest(questions: list[Question], schedule: Schedule, talk: Talk, guild_id: int) -> discord.Embed:
    """Posted for the chairs before a Q&A slot and as an oral ends."""
    title = render.fit(f"Top questions · {render.clean(talk.display_title)}", render.TITLE_MAX)
    when = "Q&A starts soon" if talk.kind.value == "qa" else "the talk has ended"
    embed = discord.Embed(title=title, description=f"{talk.kind.label}: {when}. The most upvoted open questions:", colour=render.COLOUR)
    _question_fields(embed, questions, schedule, talk, guild_id, 800)
    return render.ensure_fits(embed)


def vote_view(q: Question) -> discord.ui.View:
    view = discord.ui.View(timeout=None)
    view.add_item(VoteButton(q.id, q.votes, closed=q.state != "open"))
    return view


def thread_name(talk: Talk) -> str:
    """A thread is named after its talk: plain text (no markdown there), one line, 1–100 characters."""
    name = " ".join(talk.display_title.split())
    return render.fit(name, THREAD_NAME_MAX) if name else talk.id[:THREAD_NAME_MAX]


# --------------------------------------------------------------------------- buttons


class VoteButton(discord.ui.DynamicItem[discord.ui.Button], template=r"qa:vote:(?P<id>\d{1,19})"):
    """The upvote button on a posted question; its label shows the count."""

    def __init__(self, question_id: int, votes: int = 0, *, closed: bool = False) -> None:
        style = discord.ButtonStyle.secondary if closed else discord.ButtonStyle.primary
        super().__init__(discord.ui.Button(style=style, label=f"▲ {votes}", custom_id=f"qa:vote:{question_id}", disabled=closed))
        self.question_id = question_id

    @classmethod
    async def from_custom_id(cls, interaction: discord.Interaction, item: discord.ui.Item, match: re.Match[str], /) -> VoteButton:
        return cls(int(match["id"]))

    async def interaction_check(self, interaction: discord.Interaction, /) -> bool:
        return await first_to_answer(interaction)  # one process counts the click, even with two on the shard

    async def callback(self, interaction: discord.Interaction) -> None:
        await extension_of(interaction.client).vote(interaction, self.question_id)


class ChairButton(discord.ui.DynamicItem[discord.ui.Button], template=r"qa:(?P<action>answered|hide):(?P<id>\d{1,19})"):
    """A chair's "answered" or "hide" on one question of the /questions list."""

    def __init__(self, action: str, question_id: int, number: int = 0, *, row: int | None = None) -> None:
        label, style = (f"{number} ✓ answered", discord.ButtonStyle.success) if action == "answered" else (f"{number} hide", discord.ButtonStyle.danger)
        super().__init__(discord.ui.Button(style=style, label=label, custom_id=f"qa:{action}:{question_id}"), row=row)
        self.action, self.question_id = action, question_id

    @classmethod
    async def from_custom_id(cls, interaction: discord.Interaction, item: discord.ui.Item, match: re.Match[str], /) -> ChairButton:
        return cls(match["action"], int(match["id"]))

    async def interaction_check(self, interaction: discord.Interaction, /) -> bool:
        return await first_to_answer(interaction)  # one process counts the click, even with two on the shard

    async def callback(self, interaction: discord.Interaction) -> None:
        await extension_of(interaction.client).chair_action(interaction, self.action, self.question_id)


def extension_of(client: discord.Client) -> QaExtension:
    from bot.discord_ui.qa import QaExtension

    return next(e for e in getattr(client, "extensions", ()) if isinstance(e, QaExtension))
