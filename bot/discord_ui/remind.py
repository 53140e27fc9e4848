"""Personal reminders by DM: `/remind`, and the DMs themselves, exactly once and paced.

Follows and sent DMs live in the state store beside the channel ledger, so (user, talk, lead) is
sent once across restarts, 429s and 5xx, like channel reminders (a second ReminderService, planned
from the follows, one lane per user). DMs are paced under Discord's global limit of 50 requests a
second, soonest first, and each user's DM channel is cached, so a DM costs one request.
"""

from __future__ import annotations

import asyncio
import collections
import functools
import hashlib
import logging
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

import discord
from discord import app_commands
from discord.utils import format_dt

from bot.config import Settings
from bot.core import answers
from bot.core.changes import Change, What
from bot.core.clock import Clock
from bot.core.schedule import Schedule, Talk
from bot.core.search import author_key
from bot.discord_ui import render
from bot.discord_ui.commands import CHOICES_MAX, Query, safe_autocomplete, to_choices
from bot.discord_ui.reminders import render_reminder
from bot.reminders.personal import DM_GUILD, LEAD_MAX, Followed, cancel, follow_author, follow_talk, followed_talks, my_reminders, plan_personal
from bot.reminders.plan import Plan
from bot.reminders.service import Delivery, ReminderService, SendError
from bot.state import open_store
from bot.state.base import Follow, StateError
from bot.state.store import LIVE, NewRow, Store

if TYPE_CHECKING:
    from bot.core.changes import Changes
    from bot.discord_ui.app import SessionBot

log = logging.getLogger(__name__)

DMS_CLOSED = 50007
RATE = 45  # requests a second, under Discord's global 50 (the rest of the bot's requests need room too)
WELCOME = "Hello! Reminders for the talks you follow with /remind will come here."
ALLOW_DMS = (
    "I could not send you a direct message: your privacy settings refuse DMs from this server. "
    "To allow them: right-click the server icon (or tap the server name) > Privacy Settings > turn on "
    "Direct Messages. Your follow is kept; the reminder will come once DMs are open."
)


class Pace:
    """At most `limit` requests in any second, evenly spaced, in the order they ask (the soonest DMs first).

    Spacing keeps requests from arriving in bursts that Discord would count in one second; the
    sliding window keeps waiters that wake late together (a busy loop) under the limit too.
    """

    def __init__(self, limit: int, clock: Callable[[], float] = time.monotonic) -> None:
        self.limit = limit
        self.gap = 0.8 / limit  # a little tighter than even: the loop's own delays stretch it back
        self._clock = clock
        self._sent: collections.deque[float] = collections.deque()
        self._lock: asyncio.Lock | None = None

    async def wait(self) -> None:
        if self._lock is None:
            self._lock = asyncio.Lock()  # FIFO: waiters are served in the order they came
        async with self._lock:
            while True:
                now = self._clock()
                while self._sent and now - self._sent[0] >= 1.0:
                    self._sent.popleft()
                spaced = not self._sent or now - self._sent[-1] >= self.gap  # spread out, never a burst
                if len(self._sent) < self.limit and spaced:
                    self._sent.append(now)
                    return
                wait_window = 1.0 - (now - self._sent[0]) if len(self._sent) >= self.limit else 0.0
                wait_gap = self.gap - (now - self._sent[-1])
                await asyncio.sleep(max(wait_window, wait_gap, 0.0) + 0.0005)


class DmClosed(SendError):
    def __init__(self, user_id: int) -> None:
        super().__init__(f"user {user_id} does not accept DMs from the bot (50007); kept, retried while the reminder is due")


class PersonalReminders:
    """An extension: `/remind`, and a ReminderService that sends the DMs."""

    def __init__(self, settings: Settings, clock: Clock, store: Store | None = None, run: str = LIVE, rate: int = RATE) -> None:
        self.settings, self.clock, self.run = settings, clock, run
        self._own_store = store is None
        self.store = store
        self.pace = Pace(rate)
        self.bot: SessionBot | None = None
        self.service: ReminderService | None = None
        self.default_lead = settings.reminder_leads[0] if settings.reminder_leads else 5
        self._planned_follows: list[Follow] | None = None
        self._watch: asyncio.Task | None = None

    def __repr__(self) -> str:
        return f"PersonalReminders(run={self.run!r})"

    async def setup(self, bot: SessionBot) -> None:
        self.bot = bot
        if self.store is None:
            self.store = open_store(self.settings)
        self.service = ReminderService(
            bot.programme.schedule,
            self.clock,
            self.store,
            self.send,
            list,
            kinds=(),
            grace_minutes=self.settings.reminder_grace_minutes,
            run=self.run,
            send_timeout=300.0,  # a DM may wait its turn under the global limit
            planner=self.plan,
        )
        bot.tree.add_command(RemindGroup(self))
        calendar = getattr(bot, "calendar", None)
        if calendar is not None:
            calendar.followed = self.followed_talk_ids  # /calendar mine
        if getattr(bot, "serving", True):
            self.service.start()
            await self.service.replan()  # DMs go out by REST: planned from the stored follows, before the gateway is ready
            if self.settings.state_url is not None:  # other processes record follows too: look for them
                self._watch = asyncio.create_task(self._watch_follows(), name="remind:follows")

    def plan(self, schedule: Schedule, run: str) -> Plan:
        assert self.store is not None and self.bot is not None
        follows = self.store.all_follows()
        self._planned_follows = follows
        return plan_personal(schedule, self.bot.programme.index, follows, run)

    @property
    def follows_poll_seconds(self) -> float:
        """How often a process sharing the state looks for follows recorded by the others: a quarter of the
        grace window in real seconds (so a follow made elsewhere is planned here before its DM is too late),
        between 1 and 30 s."""
        grace_real = self.settings.reminder_grace_minutes * 60 / self.clock.speed
        return min(30.0, max(1.0, grace_real / 4))

    async def _watch_follows(self) -> None:
        """With several processes on one database, any of them may send a DM (the ledger's claim decides
        which), so each plans every follow, including those another process recorded."""
        while True:
            await asyncio.sleep(self.follows_poll_seconds)
            try:
                assert self.store is not None and self.service is not None
                follows = await asyncio.to_thread(self.store.all_follows)
                if follows != self._planned_follows:
                    await self.service.replan()
            except StateError as err:  # the store logs an outage once when it starts and once when it ends
                log.debug("remind: follows wait for the state (%s)", err)
            except Exception:
                log.exception("remind: could not look for new follows; trying again")

    async def guilds_changed(self) -> None:
        if self.service is not None and getattr(self.bot, "serving", True):
            await self.service.replan()

    async def schedule_changed(self, schedule: Schedule, changes: Changes, version: str) -> None:
        """Moved talks are DMed at their new times, removed ones never (the plan follows the new version),
        and whoever follows a moved or cancelled talk is told so by DM, once."""
        if self.service is None or not getattr(self.bot, "serving", True):
            return
        self.service.schedule = schedule
        await self.service.replan()
        for change in [*changes.of(What.MOVED), *changes.of(What.REMOVED)]:
            if change.talk.end <= self.clock.now():
                continue
            for user_id in await asyncio.to_thread(self._followers, change.talk):
                await self._notify(user_id, change, version)

    def _followers(self, talk: Talk) -> list[int]:
        assert self.store is not None
        keys = {("talk", talk.id), *(("author", author_key(name)) for name in talk.authors)}
        return sorted({f.user_id for f in self.store.all_follows() if (f.what, f.key) in keys})

    async def _notify(self, user_id: int, change: Change, version: str) -> None:
        """One DM per (user, talk, version), recorded in the ledger like a reminder, so a restart never repeats it."""
        assert self.store is not None
        talk = change.talk
        rid = f"{self.run}|notice|{user_id}|{talk.id}|{version}"
        nonce = "n" + hashlib.blake2b(rid.encode(), digest_size=12).hexdigest()
        row = NewRow(rid, self.run, DM_GUILD, talk.id, -1, user_id, nonce, self.clock.now())
        if not await asyncio.to_thread(functools.partial(self.store.claim, row, lease=self.service.lease)):
            return
        title = render.clean(talk.display_title)
        if change.what is What.REMOVED:
            text = f"**{title}**, which you follow, has been cancelled: it will not take place."
        else:
            text = f"**{title}**, which you follow, has moved: now {format_dt(talk.start, 'f')} ({format_dt(talk.start, 'R')})."
            if change.old_room != change.new_room and change.new_room:
                text += f" Room: {render.clean(change.new_room)}."
        try:
            message_id = await self._post(user_id, content=render.fit(text, render.CONTENT_MAX), nonce=nonce, allowed_mentions=discord.AllowedMentions.none())
        except (SendError, discord.HTTPException) as err:
            await asyncio.to_thread(functools.partial(self.store.mark_failed, rid, str(err), permanent=True))
            log.info("remind: could not tell user %s that %s changed: %s", user_id, talk.id, err)
            return
        await asyncio.to_thread(self.store.mark_sent, rid, message_id)

    async def close(self) -> None:
        if self._watch is not None:
            self._watch.cancel()
            await asyncio.gather(self._watch, return_exceptions=True)
            self._watch = None
        if self.service is not None:
            await self.service.close()
        if self.store is not None and self._own_store:
            self.store.close()

    async def followed(self) -> None:
        """Follows changed: plan again, so a new follow is reminded on time."""
        if self.service is not None and getattr(self.bot, "serving", True):
            await self.service.replan()

    def followed_talk_ids(self, user_id: int) -> list[str]:
        """For /calendar mine: every talk the user follows, past ones included."""
        assert self.store is not None and self.bot is not None
        return list(followed_talks(self.store.follows_of(user_id), self.bot.programme.schedule, self.bot.programme.index))

    # --- DMs ---------------------------------------------------------------------------
    async def _dm_channel(self, user_id: int) -> int:
        """The user's DM channel, opened once and cached in the state store."""
        assert self.store is not None and self.bot is not None
        known = await asyncio.to_thread(self.store.dm_channel, user_id)
        if known is not None and known.channel_id is not None:
            return known.channel_id
        await self.pace.wait()
        data = await self.bot.http.start_private_message(user_id)
        saved = await asyncio.to_thread(functools.partial(self.store.set_dm_channel, user_id, channel_id=int(data["id"])))
        return saved.channel_id  # type: ignore[return-value]

    async def _post(self, user_id: int, **message: object) -> int:
        assert self.store is not None and self.bot is not None
        channel_id = await self._dm_channel(user_id)
        await self.pace.wait()
        channel = self.bot.get_partial_messageable(channel_id, type=discord.ChannelType.private)
        try:
            sent = await channel.send(**message)  # type: ignore[arg-type]
        except discord.Forbidden as err:
            if err.code == DMS_CLOSED:
                await asyncio.to_thread(functools.partial(self.store.set_dm_channel, user_id, closed=True))
                raise DmClosed(user_id) from err
            raise
        known = await asyncio.to_thread(self.store.dm_channel, user_id)
        if known is not None and known.closed:
            await asyncio.to_thread(functools.partial(self.store.set_dm_channel, user_id, closed=False))
        return sent.id

    async def send(self, delivery: Delivery) -> int:
        """One reminder DM: the channel reminder's content, for one user."""
        assert self.bot is not None
        r = delivery.reminder
        programme = self.bot.programme
        reply = render_reminder(r.talk, programme.schedule, delivery.now, None, delivery.marker, programme.moved_from.get(r.talk.id))
        link = await self._thread_link(r.talk.id)
        if link is not None:  # TALK_THREADS: where the talk's questions and discussion are
            reply.embeds[0].add_field(name="Discussion", value=f"[The talk's thread]({link})", inline=False)
        try:
            return await self._post(
                r.channel_id, embeds=list(reply.embeds), content=reply.content, nonce=delivery.nonce, allowed_mentions=discord.AllowedMentions.none()
            )
        except DmClosed:
            raise
        except discord.HTTPException as err:
            raise SendError(f"{err.status} from Discord sending a DM to user {r.channel_id}: {err.text[:200]}", permanent=err.status in (403, 404)) from err

    async def _thread_link(self, talk_id: str) -> str | None:
        """A link to the talk's thread (TALK_THREADS), in the home guild first, else any guild that has one."""
        assert self.bot is not None
        finders = [e.thread_of for e in self.bot.extensions if callable(getattr(e, "thread_of", None))]
        guilds = [g for g in (self.settings.guild_id,) if g] + [g.id for g in self.bot.guilds if g.id != self.settings.guild_id]
        for guild_id in guilds:
            for find in finders:
                thread = await find(guild_id, talk_id)
                if thread:
                    return render.jump_link(guild_id, thread)
        return None

    async def welcome(self, user_id: int) -> bool:
        """The first /remind says hello by DM; False when the user's settings refuse DMs (they are told how to allow them)."""
        assert self.store is not None
        known = await asyncio.to_thread(self.store.dm_channel, user_id)
        if known is not None and known.welcomed and not known.closed:
            return True
        try:
            await self._post(user_id, content=WELCOME, allowed_mentions=discord.AllowedMentions.none())
        except DmClosed:
            return False
        except discord.HTTPException as err:
            log.warning("remind: could not greet user %s by DM: %s %s", user_id, err.status, err.text[:200])
            return True
        await asyncio.to_thread(functools.partial(self.store.set_dm_channel, user_id, welcomed=True))
        return True


def _when(followed: Followed) -> str:
    return f"{format_dt(followed.due_at, 't')} ({format_dt(followed.due_at, 'R')}), {followed.lead} min before it starts"


class RemindGroup(app_commands.Group):
    def __init__(self, ext: PersonalReminders) -> None:
        super().__init__(name="remind", description="Reminders for you, by direct message")
        self.ext = ext

    def _programme(self):
        assert self.ext.bot is not None
        return self.ext.bot.programme

    async def _reply(self, interaction: discord.Interaction, text: str, greeted: bool = True) -> None:
        if not greeted:
            text += "\n\n" + ALLOW_DMS
        embed = discord.Embed(description=render.fit(text, render.DESCRIPTION_MAX), colour=render.COLOUR)
        await interaction.response.send_message(embed=embed, ephemeral=True, allowed_mentions=discord.AllowedMentions.none())

    @app_commands.command(name="talk", description="DM me before this talk")
    @app_commands.describe(query="The talk (pick from the list)", minutes=f"Minutes before it starts (0–{LEAD_MAX})")
    async def talk(self, interaction: discord.Interaction, query: Query, minutes: app_commands.Range[int, 0, LEAD_MAX] | None = None) -> None:
        programme, now = self._programme(), self.ext.clock.now()
        talk = answers.find_talk(programme.index, query)
        assert self.ext.store is not None
        lead = self.ext.default_lead if minutes is None else minutes
        followed = await asyncio.to_thread(follow_talk, self.ext.store, interaction.user.id, talk, lead, now)
        greeted = await self.ext.welcome(interaction.user.id)
        await self.ext.followed()
        await self._reply(interaction, f"I'll DM you about **{render.clean(talk.display_title)}** at {_when(followed)}.", greeted)

    @app_commands.command(name="author", description="DM me before every talk of this author")
    @app_commands.describe(name="The author (pick from the list)", minutes=f"Minutes before each talk starts (0–{LEAD_MAX})")
    async def author(self, interaction: discord.Interaction, name: Query, minutes: app_commands.Range[int, 0, LEAD_MAX] | None = None) -> None:
        programme, now = self._programme(), self.ext.clock.now()
        person = answers.find_author(programme.index, name)
        assert self.ext.store is not None
        lead = self.ext.default_lead if minutes is None else minutes
        coming = await asyncio.to_thread(follow_author, self.ext.store, interaction.user.id, person.key, person.name, person.talks, lead, now)
        greeted = await self.ext.welcome(interaction.user.id)
        await self.ext.followed()
        lines = [f"• **{render.clean(f.talk.display_title)}**: {_when(f)}" for f in coming[:10]]
        more = f"\n…and {len(coming) - 10} more" if len(coming) > 10 else ""
        await self._reply(interaction, f"I'll DM you before each talk of {render.clean(person.name)}:\n" + "\n".join(lines) + more, greeted)

    @app_commands.command(name="list", description="What I will DM you about")
    async def list_(self, interaction: discord.Interaction) -> None:
        programme, now = self._programme(), self.ext.clock.now()
        assert self.ext.store is not None
        mine = await asyncio.to_thread(my_reminders, self.ext.store, interaction.user.id, programme.schedule, programme.index, now)
        if not mine:
            await self._reply(interaction, "You follow no talks yet: `/remind talk` or `/remind author`.")
            return
        lines = [f"• {format_dt(f.talk.start, 'f')} **{render.clean(f.talk.display_title)}**, DM {format_dt(f.due_at, 'R')}" for f in mine[:20]]
        more = f"\n…and {len(mine) - 20} more" if len(mine) > 20 else ""
        await self._reply(interaction, "\n".join(lines) + more)

    @app_commands.command(name="cancel", description="Stop a reminder, or all of them")
    @app_commands.describe(talk="What to stop following (pick from the list), or “all”")
    async def cancel_(self, interaction: discord.Interaction, talk: str) -> None:
        assert self.ext.store is not None
        gone = await asyncio.to_thread(cancel, self.ext.store, interaction.user.id, talk)
        await self.ext.followed()
        text = "Nothing to cancel: you were not following that." if not gone else ("All your reminders are cancelled." if talk == "all" else "Cancelled.")
        await self._reply(interaction, text)

    @talk.autocomplete("query")
    async def _talks(self, interaction: discord.Interaction, current: str) -> list[app_commands.Choice[str]]:
        return await safe_autocomplete(lambda text: answers.suggest_talks(self._programme().index, text, self.ext.clock.now(), limit=CHOICES_MAX), "talks")(
            interaction, current
        )

    @author.autocomplete("name")
    async def _authors(self, interaction: discord.Interaction, current: str) -> list[app_commands.Choice[str]]:
        return await safe_autocomplete(lambda text: answers.suggest_authors(self._programme().index, text, self.ext.clock.now(), limit=CHOICES_MAX), "authors")(
            interaction, current
        )

    @cancel_.autocomplete("talk")
    async def _mine(self, interaction: discord.Interaction, current: str) -> list[app_commands.Choice[str]]:
        try:
            assert self.ext.store is not None
            wanted = current.casefold().strip()
            found = [answers.Suggestion("all", "all of them")]
            for f in await asyncio.to_thread(self.ext.store.follows_of, interaction.user.id):
                label = f"{'Talk' if f.what == 'talk' else 'Every talk of'}: {f.label}"
                if not wanted or wanted in label.casefold():
                    found.append(answers.Suggestion(f"{f.what}:{f.key}"[:100], label))
            return to_choices(found)
        except Exception:
            log.exception("autocomplete for /remind cancel failed")
            return []
