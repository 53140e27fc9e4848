"""Session Q&A on Discord: `/ask`, `/questions`, the vote and chair buttons, the chairs' top questions, talk threads.

Buttons are DynamicItems whose custom_id names the question (`qa:vote:42`), registered in setup_hook,
so a click on a message posted by an earlier process still works. Every view is sent with
`timeout=None`: a view that times out takes its DynamicItem templates out of discord.py's store.
The store counts votes (one transaction per click); the message follows through the interaction
responses, one visible edit per burst of clicks (VoteBursts).
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import functools
import logging
from collections.abc import Coroutine
from typing import TYPE_CHECKING, Any

import discord
from discord import app_commands

from bot.config import Settings
from bot.core import answers, qa
from bot.core.clock import Clock
from bot.core.schedule import Schedule, Talk
from bot.discord_ui import render
from bot.discord_ui.commands import CHOICES_MAX, Query, safe_autocomplete
from bot.discord_ui.qa_render import LIST_MAX, ChairButton, VoteButton, render_digest, render_list, render_question, thread_name, vote_view
from bot.discord_ui.qa_votes import BURST_SECONDS, VoteBursts
from bot.reminders.plan import reminder_nonce
from bot.reminders.service import lease_seconds
from bot.state import open_store
from bot.state.base import StateError
from bot.state.store import LIVE, NewRow, Question, Store

if TYPE_CHECKING:
    from bot.discord_ui.app import SessionBot
    from bot.reminders.plan import Reminder

log = logging.getLogger(__name__)

DIGEST_MAX = 5
NAP_SECONDS = 30.0  # the digest loop looks again at least this often (reloads, new guilds)
ARCHIVE_MINUTES = 1440
QuestionText = app_commands.Range[str, 1, qa.QUESTION_MAX]

NO_CHANNEL = "Questions are not set up in this server: an organiser sets QA_CHANNEL_ID, or a reminder channel with `/reminders channel`."
NOT_CHAIR = "Only session chairs can do that: members with Manage Messages, or the chair role."
CLOSED = "This question is closed (answered or removed); votes are no longer counted."
UNKNOWN = "That question no longer exists here."


# --------------------------------------------------------------------------- the extension


class QaExtension:
    """`/ask` and `/questions`, the buttons, the chairs' top questions, and (TALK_THREADS) a thread per talk."""

    def __init__(self, settings: Settings, clock: Clock, store: Store | None = None, run: str = LIVE, window: float = BURST_SECONDS) -> None:
        self.settings, self.clock, self.run = settings, clock, run
        self._own_store = store is None
        self.store = store
        self.bot: SessionBot | None = None
        self.bursts = VoteBursts(self._current_view, window)
        self._tasks: set[asyncio.Task] = set()
        self._digests: asyncio.Task | None = None
        self._wake = asyncio.Event()
        self._opening: set[str] = set()

    def __repr__(self) -> str:
        return f"QaExtension(run={self.run!r}, threads={self.settings.talk_threads})"

    async def setup(self, bot: SessionBot) -> None:
        self.bot = bot
        if self.store is None:
            self.store = open_store(self.settings)
        for command in qa_commands(self):
            bot.tree.add_command(command)
        bot.add_dynamic_items(VoteButton, ChairButton)
        reminders = self._reminders()
        if reminders is not None and hasattr(reminders, "posted"):
            reminders.posted.append(self.reminder_posted)

    async def guilds_changed(self) -> None:
        if not getattr(self.bot, "serving", True):
            return  # `python -m bot sync` posts nothing
        if self._digests is None:
            self._digests = asyncio.create_task(self._digest_loop(), name="qa-digests")
        self._wake.set()

    async def schedule_changed(self, schedule: Schedule, changes: Any, version: str) -> None:
        self._wake.set()

    async def close(self) -> None:
        await self.bursts.close()
        for task in [*self._tasks, *([self._digests] if self._digests else [])]:
            task.cancel()
        if self.store is not None and self._own_store:
            self.store.close()

    # --- where questions go ----------------------------------------------------------
    def _reminders(self) -> Any:
        from bot.discord_ui.reminders import ReminderExtension

        return next((e for e in getattr(self.bot, "extensions", ()) if isinstance(e, ReminderExtension)), None)

    async def channel_for(self, guild_id: int) -> int | None:
        """QA_CHANNEL_ID in the guild that holds it (DISCORD_GUILD_ID if not cached); else the guild's reminder channel."""
        assert self.bot is not None
        configured = self.settings.qa_channel_id
        if configured is not None:
            channel = self.bot.get_channel(configured)
            home = getattr(getattr(channel, "guild", None), "id", None) or self.settings.guild_id
            if home == guild_id or (home is None and len(self.bot.guilds) == 1):
                return configured
        reminders = self._reminders()
        if reminders is None or reminders.store is None:
            return None
        target = next((t for t in await reminders.targets_now() if t.guild_id == guild_id), None)
        return target.channel_id if target is not None else None

    def thread_key(self, guild_id: int, talk_id: str) -> str:
        return f"qa-thread|{self.run}|{guild_id}|{talk_id}"

    async def thread_of(self, guild_id: int, talk_id: str) -> int | None:
        """The thread opened on the talk's reminder (TALK_THREADS), for /ask and for DM reminders to link to
        (by whichever process holds the guild's shard: it is looked up in the state)."""
        assert self.store is not None
        found = await asyncio.to_thread(self.store.get_meta, self.thread_key(guild_id, talk_id)) if self.settings.talk_threads else None
        return int(found) if found else None

    def is_chair(self, interaction: discord.Interaction) -> bool:
        """Checked here, on every command and click: Discord's default permissions only hide the command."""
        roles = {r.id for r in getattr(interaction.user, "roles", ())}
        return interaction.guild_id is not None and qa.is_chair(interaction.permissions.manage_messages, roles, self.settings.chair_role_id)

    def resolve(self, talk: str | None) -> Talk:
        assert self.bot is not None
        if talk:
            return answers.find_talk(self.bot.programme.index, talk)
        return qa.default_talk(self.bot.programme.schedule, self.clock.now())

    # --- /ask ------------------------------------------------------------------------
    async def ask(self, interaction: discord.Interaction, question: str, talk: str | None, anonymous: bool) -> None:
        assert self.bot is not None and self.store is not None and interaction.guild_id is not None
        channel_id = await self.channel_for(interaction.guild_id)
        if channel_id is None:
            raise qa.QaRefused(NO_CHANNEL)
        target = self.resolve(talk)
        args = (self.store, self.bot.programme.schedule, interaction.guild_id, interaction.user.id, question, target, anonymous, self.clock.now())
        q = await asyncio.to_thread(qa.ask, *args)
        await interaction.response.defer(ephemeral=True, thinking=True)
        asker = "anonymous" if anonymous else render.clean(interaction.user.display_name)
        where = await self.post_question(q, target, asker, channel_id)
        title = render.clean(target.display_title)
        if where is None:
            text = f"Sorry, your question for “{title}” could not be posted; please try again in a moment."
        else:
            text = f"Your question for “{title}” is posted{' anonymously' if anonymous else ''}: {where}"
        await interaction.edit_original_response(content=render.fit(text, render.CONTENT_MAX), allowed_mentions=render.NO_PINGS)

    async def post_question(self, q: Question, talk: Talk, asker: str, channel_id: int) -> str | None:
        """Into the talk's thread if there is one, else the Q&A channel; the message's link, or None (then it is hidden)."""
        assert self.bot is not None and self.store is not None
        thread = await self.thread_of(q.guild_id, talk.id)
        for destination in [thread, channel_id] if thread else [channel_id]:
            channel = self.bot.get_partial_messageable(destination, guild_id=q.guild_id)
            try:
                message = await channel.send(embed=render_question(q, talk, asker), view=vote_view(q), allowed_mentions=render.NO_PINGS)
            except discord.HTTPException as err:
                log.warning("qa: could not post question %s in channel %s of guild %s: %s %s", q.id, destination, q.guild_id, err.status, err.text[:200])
                continue
            await asyncio.to_thread(self.store.set_question_message, q.id, destination, message.id)
            return render.jump_link(q.guild_id, destination, message.id)
        await asyncio.to_thread(self.store.set_question_state, q.id, "hidden")
        return None

    # --- votes -----------------------------------------------------------------------
    async def _current_view(self, qid: int) -> discord.ui.View | None:
        assert self.store is not None
        q = await asyncio.to_thread(self.store.question, qid)
        return vote_view(q) if q is not None else None

    async def vote(self, interaction: discord.Interaction, qid: int) -> None:
        assert self.store is not None
        q = await asyncio.to_thread(self.store.question, qid)
        if q is None or q.guild_id != interaction.guild_id or q.state != "open":
            await interaction.response.send_message(UNKNOWN if q is None or q.guild_id != interaction.guild_id else CLOSED, ephemeral=True)
            return
        await asyncio.to_thread(self.store.toggle_vote, qid, interaction.user.id)
        try:
            await self.bursts.clicked(interaction, qid)
        except discord.HTTPException as err:
            log.warning("qa: a vote on question %s was counted but not acknowledged: %s %s", qid, err.status, err.text[:200])

    # --- chairs ----------------------------------------------------------------------
    async def questions(self, interaction: discord.Interaction, talk: str | None) -> None:
        assert self.bot is not None and self.store is not None
        if not self.is_chair(interaction):
            await interaction.response.send_message(NOT_CHAIR, ephemeral=True)
            return
        target = self.resolve(talk)
        embed, view = await self._list(interaction.guild_id or 0, target)
        await interaction.response.send_message(embed=embed, ephemeral=True, **({"view": view} if view else {}))

    async def _list(self, guild_id: int, talk: Talk) -> tuple[discord.Embed, discord.ui.View | None]:
        assert self.bot is not None and self.store is not None
        schedule = self.bot.programme.schedule
        top = await asyncio.to_thread(qa.top_for, self.store, schedule, guild_id, talk, LIST_MAX)
        return render_list(top, schedule, talk, guild_id)

    def _listed_talk(self, interaction: discord.Interaction, q: Question) -> Talk | None:
        """The talk the clicked list was for (its footer names it), else the question's own."""
        assert self.bot is not None
        embeds = interaction.message.embeds if interaction.message is not None else []
        footer = (embeds[0].footer.text or "") if embeds else ""
        schedule = self.bot.programme.schedule
        return schedule.talk(footer.rsplit(" · ", 1)[-1]) or schedule.talk(q.talk_id)

    async def chair_action(self, interaction: discord.Interaction, action: str, qid: int) -> None:
        assert self.store is not None
        if not self.is_chair(interaction):
            log.info("qa: user %s, not a chair, clicked %s on question %s", interaction.user.id, action, qid)
            await interaction.response.send_message(NOT_CHAIR, ephemeral=True)
            return
        q = await asyncio.to_thread(self.store.question, qid)
        if q is None or q.guild_id != interaction.guild_id:
            await interaction.response.send_message(UNKNOWN, ephemeral=True)
            return
        await asyncio.to_thread(self.store.set_question_state, qid, "answered" if action == "answered" else "hidden")
        talk = self._listed_talk(interaction, q)
        if talk is not None:
            embed, view = await self._list(q.guild_id, talk)
            await interaction.response.edit_message(embed=embed, view=view)
        else:
            await interaction.response.defer()
        log.info("qa: chair %s marked question %s %s", interaction.user.id, qid, action)
        await (self._mark_answered(q) if action == "answered" else self._remove(q))

    async def _mark_answered(self, q: Question) -> None:
        """The question's message says it was answered; its vote button is closed."""
        assert self.bot is not None and self.store is not None
        fresh = await asyncio.to_thread(self.store.question, q.id) or q
        if not (q.channel_id and q.message_id):
            return
        message = self.bot.get_partial_messageable(q.channel_id, guild_id=q.guild_id).get_partial_message(q.message_id)
        try:
            await message.edit(content="✅ Answered", view=vote_view(fresh), allowed_mentions=render.NO_PINGS)
        except discord.HTTPException as err:
            log.warning("qa: could not mark question %s answered on its message: %s %s", q.id, err.status, err.text[:200])

    async def _remove(self, q: Question) -> None:
        assert self.bot is not None
        if not (q.channel_id and q.message_id):
            return
        message = self.bot.get_partial_messageable(q.channel_id, guild_id=q.guild_id).get_partial_message(q.message_id)
        try:
            await message.delete()
        except discord.NotFound:
            pass  # already gone
        except discord.HTTPException as err:
            log.warning("qa: could not remove the message of question %s: %s %s", q.id, err.status, err.text[:200])

    # --- threads (TALK_THREADS) ------------------------------------------------------
    def reminder_posted(self, reminder: Reminder, message_id: int) -> None:
        """Called by the ReminderExtension after a channel reminder is posted: open the talk's thread on it."""
        if self.settings.talk_threads and getattr(self.bot, "serving", True):
            self._spawn(self.open_thread(reminder.guild_id, reminder.channel_id, message_id, reminder.talk))

    async def open_thread(self, guild_id: int, channel_id: int, message_id: int, talk: Talk) -> int | None:
        """One public thread per talk and guild, on the first of its reminders; remembered in the store."""
        assert self.bot is not None and self.store is not None
        key = self.thread_key(guild_id, talk.id)
        if key in self._opening or await asyncio.to_thread(self.store.get_meta, key):
            return None
        self._opening.add(key)
        try:
            message = self.bot.get_partial_messageable(channel_id, guild_id=guild_id).get_partial_message(message_id)
            thread = await message.create_thread(name=thread_name(talk), auto_archive_duration=ARCHIVE_MINUTES)
        except (discord.HTTPException, ValueError) as err:
            log.warning("qa: could not open a thread for %s in channel %s of guild %s: %s", talk.id, channel_id, guild_id, err)
            return None
        finally:
            self._opening.discard(key)
        await asyncio.to_thread(self.store.set_meta, key, str(thread.id))
        log.info("qa: opened thread %s for %s in guild %s", thread.id, talk.id, guild_id)
        return thread.id

    # --- the chairs' top questions -----------------------------------------------------
    async def _digest_loop(self) -> None:
        """Wakes at each digest's due instant on the bot's clock (maybe replayed), and at least every NAP_SECONDS."""
        done: set[str] = set()
        while True:
            self._wake.clear()
            nap = NAP_SECONDS
            try:
                nap = await self._digest_round(done)
            except StateError as err:  # the store logs an outage once when it starts and once when it ends
                log.debug("qa: the top questions wait for the state (%s)", err)
                nap = 1.0
            except Exception:
                log.exception("qa: posting the top questions failed; trying again in %g s", nap)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), max(nap, 0.01))

    async def _digest_round(self, done: set[str]) -> float:
        """Post what is due (within the grace, in every guild with a channel); real seconds until the next is due."""
        assert self.bot is not None
        now = self.clock.now()
        grace = dt.timedelta(minutes=self.settings.reminder_grace_minutes)
        times = qa.digest_times(self.bot.programme.schedule)
        for due, talk in times:
            if now - grace <= due <= now:
                for guild in list(self.bot.guilds):
                    if self.settings.owns_guild(guild.id):
                        await self.post_digest(guild.id, talk, due, done)
        later = [due for due, _ in times if due > now]
        return min(NAP_SECONDS, self.clock.seconds_until(min(later))) if later else NAP_SECONDS

    def _lease(self) -> float:
        """The reminders' lease: a digest claimed by a process that died is taken up by the next round in time."""
        reminders = self._reminders()
        if reminders is not None and reminders.service is not None:
            return reminders.service.lease
        return lease_seconds(dt.timedelta(minutes=self.settings.reminder_grace_minutes), self.clock.speed, send_timeout=15.0)

    def digest_id(self, guild_id: int, talk_id: str, due: dt.datetime) -> str:
        return f"{self.run}|qa-top|{guild_id}|{talk_id}|{int(due.timestamp())}"

    async def post_digest(self, guild_id: int, talk: Talk, due: dt.datetime, done: set[str]) -> None:
        """Exactly once per (run, guild, talk, due): claimed in the ledger, sent with a stable nonce, then marked sent."""
        assert self.bot is not None and self.store is not None
        rid = self.digest_id(guild_id, talk.id, due)
        channel_id = await self.channel_for(guild_id) if rid not in done else None
        schedule = self.bot.programme.schedule
        top = await asyncio.to_thread(qa.top_for, self.store, schedule, guild_id, talk, DIGEST_MAX) if channel_id is not None else []
        if not top:
            return  # done, nowhere to post, or nothing asked (yet: a question within the grace still gets its post)
        done.add(rid)
        row = NewRow(rid, self.run, guild_id, talk.id, 0, channel_id, reminder_nonce(rid), due)
        store, lease = self.store, self._lease()
        if not await asyncio.to_thread(lambda: store.claim(row, lease=lease) or store.retry(rid, lease=lease) is not None):
            return  # posted (or refused) by an earlier process, or another one holds it
        channel = self.bot.get_partial_messageable(channel_id, guild_id=guild_id)
        try:
            message = await channel.send(embed=render_digest(top, schedule, talk, guild_id), nonce=row.nonce, allowed_mentions=render.NO_PINGS)
        except discord.HTTPException as err:
            permanent = err.status in (403, 404)
            await asyncio.to_thread(functools.partial(self.store.mark_failed, rid, f"{err.status} {err.text[:200]}", permanent=permanent, lease=lease))
            if not permanent:
                done.discard(rid)
            log.warning("qa: could not post the top questions for %s in channel %s: %s", talk.id, channel_id, err.status)
            return
        await asyncio.to_thread(self.store.mark_sent, rid, message.id)
        log.info("qa: posted the top %d questions for %s in guild %s", len(top), talk.id, guild_id)

    def _spawn(self, work: Coroutine[Any, Any, Any]) -> None:
        task = asyncio.create_task(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)


def qa_commands(ext: QaExtension) -> list[app_commands.Command]:
    """/ask for everyone, /questions for chairs (hidden from others by default; checked again on use)."""
    talks = safe_autocomplete(lambda text: answers.suggest_talks(ext.bot.programme.index, text, ext.clock.now(), limit=CHOICES_MAX), "talks")  # type: ignore[union-attr]

    @app_commands.command(name="ask", description="Ask the speakers a question; everyone can upvote it")
    @app_commands.describe(
        question="Your question, up to 500 characters",
        talk="The talk it is for; by default the talk (or joint Q&A) on now",
        anonymous="Hide your name (moderators can still see who asked)",
    )
    @app_commands.autocomplete(talk=talks)
    @app_commands.guild_only()
    async def ask_(interaction: discord.Interaction, question: QuestionText, talk: Query | None = None, anonymous: bool = False) -> None:
        await ext.ask(interaction, question, talk, anonymous)

    @app_commands.command(name="questions", description="Session chairs: the top questions for a talk, to mark answered or hide")
    @app_commands.describe(talk="The talk or joint Q&A; by default the one on now")
    @app_commands.autocomplete(talk=talks)
    @app_commands.guild_only()
    async def questions_(interaction: discord.Interaction, talk: Query | None = None) -> None:
        await ext.questions(interaction, talk)

    if ext.settings.chair_role_id is None:  # with a chair role, members without Manage Messages must see it too
        questions_.default_permissions = discord.Permissions(manage_messages=True)
    return [ask_, questions_]
