"""The Discord side of reminders: the send seam (REST, nonce, exact pings) and `/reminders`.

Reminders go out through `get_partial_messageable(...).send`, a plain REST call: it needs no
gateway and no cache, so a reconnect at the due moment loses nothing. Every send carries the
reminder's stable nonce; discord.py then sets `enforce_nonce`, and Discord drops a repeat.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import functools
import hashlib
import logging
import re
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING

import discord
from discord import app_commands
from discord.utils import format_dt

from bot.config import Settings
from bot.core.changes import Changes
from bot.core.clock import Clock
from bot.core.programme import Refusal
from bot.core.schedule import Schedule, Talk
from bot.discord_ui import render
from bot.discord_ui.changes import render_changes
from bot.reminders.plan import Reminder, Target, guild_targets, reminder_phrase
from bot.reminders.service import Delivery, ReminderService, ReminderStatus, SendError
from bot.state import open_store
from bot.state.base import GuildOverrides
from bot.state.store import LIVE, NewRow, Store

if TYPE_CHECKING:
    from bot.discord_ui.app import SessionBot

log = logging.getLogger(__name__)

TEASER_MAX = 200
MISSING = "View Channel, Send Messages and Embed Links"


# --------------------------------------------------------------------------- rendering


def teaser(talk: Talk, limit: int = TEASER_MAX) -> str:
    """The abstract's first sentence on one line, cut to `limit`."""
    text = " ".join(talk.display_abstract.split())
    first = re.split(r"(?<=[.!?])\s", text, maxsplit=1)[0]
    return render.fit(render.clean(first), limit)


def render_reminder(
    talk: Talk, schedule: Schedule, now: dt.datetime, role_id: int | None, marker: str = "", moved_from: dt.datetime | None = None
) -> render.Reply:
    """The reminder message: exactly the configured role may be pinged, nothing else.

    `marker` ends the footer: a restart finds an unconfirmed post again by it in the channel's history.
    `moved_from`: the talk was moved from that start; the reminder says so.
    """
    phrase = reminder_phrase(talk.start, now)
    if moved_from is not None:
        phrase = f"moved: now at {format_dt(talk.start, 't')} (was {format_dt(moved_from, 't')}), {phrase}"
    embed = discord.Embed(title=render.fit(render.clean(talk.display_title), render.TITLE_MAX), colour=render.COLOUR)
    embed.description = render.fit(f"**{talk.kind.label}**, {phrase}: {format_dt(talk.start, 'f')} ({format_dt(talk.start, 'R')})", 500)
    if talk.authors:
        embed.add_field(name="Authors", value=render.authors_text(talk) or "\u200b", inline=False)
    if talk.abstract:
        embed.add_field(name="About", value=teaser(talk), inline=False)
    embed.set_footer(text=f"{render.local_span(talk, schedule)} · {marker}" if marker else render.local_span(talk, schedule))
    mention = f"<@&{role_id}> " if role_id else ""
    content = render.fit(f"{mention}{talk.kind.label} {phrase}: {render.clean(talk.display_title)}", render.CONTENT_MAX)
    pings = discord.AllowedMentions(everyone=False, users=False, roles=[discord.Object(role_id)]) if role_id else discord.AllowedMentions.none()
    return render.Reply(embeds=(render.ensure_fits(embed),), content=content, allowed_mentions=pings)


def render_status(status: ReminderStatus, target: Target | None, settings: Settings, enabled: bool, refused: Refusal | None = None) -> discord.Embed:
    """One guild's reminders: its settings, its next reminders, its last post and its failures only."""
    if target is None:
        state = "off" if not enabled else "no channel set (`/reminders channel`)"
    else:
        kinds = ", ".join(sorted(settings.reminder_kinds))
        state = f"on, in <#{target.channel_id}>, {', '.join(str(x) for x in target.leads)} min before each {kinds}"
        state += f", mentioning <@&{target.role_id}>" if target.role_id else ", mentioning no role"
    embed = discord.Embed(title="Reminders", description=f"{state}; late posts allowed for {settings.reminder_grace_minutes} min.", colour=render.COLOUR)
    upcoming = [f"{format_dt(r.due_at, 'R')} · {r.lead} min before {render.headline(r.talk, 80)}" for r in status.upcoming]
    embed.add_field(name="Next", value=render.fit("\n".join(upcoming) or "nothing left to remind", render.FIELD_VALUE_MAX), inline=False)
    last = status.last_sent
    embed.add_field(name="Last sent", value=f"{last.talk_id} ({last.lead} min) in <#{last.channel_id}>" if last else "none yet", inline=False)
    failures = [f"{row.talk_id} ({row.lead} min) in <#{row.channel_id}>: {render.clean(row.error or '')} [{row.state.value}]" for row in status.failures]
    embed.add_field(name="Failures", value=render.fit("\n".join(failures) or "none", render.FIELD_VALUE_MAX), inline=False)
    if refused is not None:
        reason = render.clean(refused.reason)
        embed.add_field(
            name="Schedule",
            value=render.fit(f"the latest version was refused {format_dt(refused.at, 'R')}; still serving the previous one.\n{reason}", render.FIELD_VALUE_MAX),
            inline=False,
        )
    return embed


def parse_leads(text: str) -> tuple[int, ...] | None:
    """'10,2' -> (10, 2); None when it is not a list of minutes from 0 to 1440."""
    try:
        leads = tuple(sorted({int(p) for p in text.replace(" ", ",").split(",") if p}, reverse=True))
    except ValueError:
        return None
    return leads if leads and all(0 <= x <= 24 * 60 for x in leads) and len(leads) <= 5 else None


# --------------------------------------------------------------------------- the extension


class ReminderExtension:
    """Adds `/reminders` and runs the ReminderService on the bot's loop (started in setup_hook).

    Reminders are planned per guild once the gateway says which guilds the bot is in (on ready,
    and again when it joins or leaves one); each guild's targets come from its own settings.
    """

    def __init__(self, settings: Settings, schedule: Schedule, clock: Clock, store: Store | None = None, run: str = LIVE) -> None:
        self.settings, self.schedule, self.clock, self.run = settings, schedule, clock, run
        self._own_store = store is None
        self.store = store
        self.bot: SessionBot | None = None
        self.service: ReminderService | None = None
        self._home: int | None = None  # REMINDER_CHANNEL_ID's guild, found by REST before the gateway is ready
        self.posted: list[Callable[[Reminder, int], None]] = []  # told (reminder, message id) after each post, e.g. to open its thread

    def __repr__(self) -> str:
        return f"ReminderExtension(state={str(self.settings.state_path)!r}, run={self.run!r})"

    async def setup(self, bot: SessionBot) -> None:
        self.bot = bot
        if self.store is None:
            self.store = open_store(self.settings)
        grace_real = self.settings.reminder_grace_minutes * 60 / self.clock.speed
        self.service = ReminderService(
            self.schedule,
            self.clock,
            self.store,
            self.send,
            self.targets,
            kinds=self.settings.reminder_kinds,
            grace_minutes=self.settings.reminder_grace_minutes,
            run=self.run,
            send_timeout=min(15.0, max(1.5, grace_real / 6)),  # discord.py sleeps between 5xx retries: cut it short, resend with the nonce
            find_sent=self.find_sent,
        )
        bot.tree.add_command(ReminderGroup(self))
        if not getattr(bot, "serving", True):
            return  # `python -m bot sync` only publishes commands: it must never post reminders
        self.service.start()
        # Reminders go out by REST: plan from the stored settings now, before the gateway is ready
        # (a restart waiting out Discord's identify limit still posts on time); ready re-plans.
        await self._find_home_by_rest()
        await self.service.replan()

    async def _find_home_by_rest(self) -> None:
        """REMINDER_CHANNEL_ID without DISCORD_GUILD_ID: its guild, asked by REST (the cache fills only when the gateway is ready)."""
        channel_id = self.settings.reminder_channel_id
        if self.settings.guild_id is not None or channel_id is None or self.bot is None:
            return
        try:
            data = await self.bot.http.get_channel(channel_id)
            self._home = int(data["guild_id"]) if data.get("guild_id") else None
        except (discord.HTTPException, KeyError, ValueError) as err:
            log.info("reminders: could not look up REMINDER_CHANNEL_ID %s before connecting (%s); it is used once the gateway is ready", channel_id, err)

    async def guilds_changed(self) -> None:
        """The gateway is ready, or the bot joined or left a guild: plan each guild's reminders."""
        if self.service is None or not getattr(self.bot, "serving", True):
            return
        await self.service.replan()
        if not await self.targets_now():
            log.warning("reminders: no guild has a reminder channel (REMINDER_CHANNEL_ID with DISCORD_GUILD_ID, or /reminders channel); nothing will be posted")

    async def schedule_changed(self, schedule: Schedule, changes: Changes, version: str) -> None:
        """A new version is served: reminders follow it, and each server's reminder channel hears what changed.

        Moved talks are reminded at their new times (the ledger keys reminders by due time), removed
        ones never; the ledger itself is never reset.
        """
        self.schedule = schedule
        if self.service is None or not getattr(self.bot, "serving", True):
            return
        self.service.schedule = schedule
        await self.service.replan()
        if changes:
            for target in await self.targets_now():
                await self.announce(target, changes, version)

    async def announce(self, target: Target, changes: Changes, version: str) -> None:
        """One announcement per server and version, claimed in the ledger like a reminder: a process that
        reloads the same version later (another on the same shard, or this one after a restart) stays quiet;
        the nonce per (server, channel, version) lets Discord drop a repeat of a send that was cut short."""
        assert self.bot is not None and self.store is not None and self.service is not None
        reply = render_changes(changes)
        rid = f"{self.run}|changes|{target.guild_id}|{target.channel_id}|{version}"
        nonce = ("c" + hashlib.blake2b(f"{target.guild_id}|{target.channel_id}|{version}".encode(), digest_size=12).hexdigest())[:25]
        row = NewRow(rid, self.run, target.guild_id, "schedule-changes", 0, target.channel_id, nonce, self.clock.now())
        store, lease = self.store, self.service.lease
        if not await asyncio.to_thread(lambda: store.claim(row, lease=lease)):
            log.info("schedule: version %s is already announced in guild %s", version, target.guild_id)
            return
        channel = self.bot.get_partial_messageable(target.channel_id, guild_id=target.guild_id or None)
        try:
            message = await channel.send(embeds=list(reply.embeds), nonce=nonce, allowed_mentions=reply.allowed_mentions)
        except discord.HTTPException as err:
            await asyncio.to_thread(functools.partial(store.mark_failed, rid, f"{err.status} {err.text[:200]}", permanent=True))
            log.warning(
                "schedule: could not announce %d change(s) in channel %s of guild %s: %s %s",
                len(changes),
                target.channel_id,
                target.guild_id,
                err.status,
                err.text[:200],
            )
            return
        await asyncio.to_thread(store.mark_sent, rid, message.id)
        log.info("schedule: announced %s in channel %s of guild %s", changes.summary(), target.channel_id, target.guild_id)

    async def close(self) -> None:
        if self.service is not None:
            await self.service.close()
        if self.store is not None and self._own_store:
            self.store.close()

    def home_guild(self) -> int | None:
        """The guild the environment's channel and role belong to: DISCORD_GUILD_ID, or the guild holding REMINDER_CHANNEL_ID."""
        if self.settings.guild_id is not None or self.bot is None or self.settings.reminder_channel_id is None:
            return self.settings.guild_id
        channel = self.bot.get_channel(self.settings.reminder_channel_id)
        found = getattr(getattr(channel, "guild", None), "id", None)
        return found if found is not None else self._home

    def _guild_ids(self, overrides: Mapping[int, GuildOverrides]) -> list[int]:
        """The guilds this process does the work of: those the gateway brought (with SHARD_COUNT, only its
        shards' guilds; the filter states the rule). Before the gateway is ready: the guilds whose settings
        are stored, and DISCORD_GUILD_ID; a guild the bot has left meanwhile refuses the post (403/404,
        never retried) and drops out when the gateway is ready."""
        if self.bot is None:
            return []
        if self.bot.is_ready():
            found = [g.id for g in self.bot.guilds]
        else:
            found = [gid for gid, o in overrides.items() if o.channel_id is not None] + [g for g in (self.home_guild(),) if g]
        return [gid for gid in found if self.settings.owns_guild(gid)]

    def targets(self) -> list[Target]:
        assert self.store is not None
        overrides = self.store.all_overrides()
        return guild_targets(self.settings, self._guild_ids(overrides), overrides, self.home_guild())

    async def targets_now(self) -> list[Target]:
        """`targets()` with the state read in a worker thread (the Discord cache is read on the loop)."""
        assert self.store is not None
        overrides = await asyncio.to_thread(self.store.all_overrides)
        return guild_targets(self.settings, self._guild_ids(overrides), overrides, self.home_guild())

    def target_of(self, guild_id: int) -> Target | None:
        return next((t for t in self.targets() if t.guild_id == guild_id), None)

    async def send(self, delivery: Delivery) -> int:
        """Post one reminder by REST with its nonce; Discord's answers become SendErrors that name the channel."""
        assert self.bot is not None
        r = delivery.reminder
        programme = self.bot.programme
        reply = render_reminder(r.talk, programme.schedule, delivery.now, r.role_id, delivery.marker, programme.moved_from.get(r.talk.id))
        channel = self.bot.get_partial_messageable(r.channel_id, guild_id=r.guild_id or None)
        try:
            message = await channel.send(content=reply.content, embeds=list(reply.embeds), nonce=delivery.nonce, allowed_mentions=reply.allowed_mentions)
        except discord.Forbidden as err:
            raise SendError(f"403 missing permission in channel {r.channel_id}: the bot needs {MISSING} there (code {err.code})", permanent=True) from err
        except discord.NotFound as err:
            raise SendError(f"404 unknown channel {r.channel_id} (code {err.code}): set /reminders channel", permanent=True) from err
        except discord.HTTPException as err:
            raise SendError(f"{err.status} from Discord posting to channel {r.channel_id}: {err.text[:200]}") from err
        for listener in self.posted:
            try:
                listener(r, message.id)
            except Exception:
                log.exception("reminders: a listener failed after posting %s", r.id)
        return message.id

    async def find_sent(self, delivery: Delivery, since: dt.datetime) -> int | None:
        """The id of a post of ours carrying this delivery's marker, among the channel's messages since `since`."""
        assert self.bot is not None and self.bot.user is not None
        channel = self.bot.get_partial_messageable(delivery.reminder.channel_id, guild_id=delivery.reminder.guild_id or None)
        async for message in channel.history(limit=100, after=discord.Object(discord.utils.time_snowflake(since))):
            if message.author.id == self.bot.user.id and any((e.footer.text or "").endswith(delivery.marker) for e in message.embeds):
                return message.id
        return None


def _manager(interaction: discord.Interaction) -> bool:
    """The server-side twin of default_member_permissions: Discord hides the command, we still check."""
    return interaction.guild_id is not None and interaction.permissions.manage_guild


async def _deny(interaction: discord.Interaction) -> None:
    await interaction.response.send_message("You need the Manage Server permission to change reminders.", ephemeral=True)


class ReminderGroup(app_commands.Group):
    def __init__(self, ext: ReminderExtension) -> None:
        super().__init__(
            name="reminders",
            description="Talk reminders in this server: status and settings",
            default_permissions=discord.Permissions(manage_guild=True),
            guild_only=True,
        )
        self.ext = ext

    async def _allowed(self, interaction: discord.Interaction) -> bool:
        """Checked in each handler (not interaction_check, whose CheckFailure would reach the tree's apology)."""
        if _manager(interaction):
            return True
        log.info("reminders: user %s without Manage Server tried /reminders in guild %s", interaction.user.id, interaction.guild_id)
        await _deny(interaction)
        return False

    async def _reply(self, guild_id: int) -> discord.Embed:
        """The guild's status; the state is read in a worker thread, so a slow database never stalls the bot."""
        service, store = self.ext.service, self.ext.store
        assert service is not None and store is not None
        target = next((t for t in await self.ext.targets_now() if t.guild_id == guild_id), None)
        now = self.ext.clock.now()
        enabled, status = await asyncio.to_thread(lambda: (store.overrides(guild_id).enabled is not False, service.status(now, guild_id)))
        refused = self.ext.bot.programme.refused if self.ext.bot is not None else None
        embed = render_status(status, target, self.ext.settings, enabled, refused)
        for extension in getattr(self.ext.bot, "extensions", ()):
            problem = getattr(extension, "problem", None)
            line = problem(guild_id) if callable(problem) else None
            if line:
                embed.add_field(name="Scheduled events", value=render.fit(render.clean(line), render.FIELD_VALUE_MAX), inline=False)
        return render.ensure_fits(embed)

    async def _changed(self, interaction: discord.Interaction, **change: object) -> None:
        if not await self._allowed(interaction):
            return
        assert self.ext.service is not None and self.ext.store is not None and interaction.guild_id is not None
        await asyncio.to_thread(functools.partial(self.ext.store.set_override, interaction.guild_id, **change))  # type: ignore[arg-type]
        await self.ext.service.replan()
        log.info("reminders: guild %s changed %s", interaction.guild_id, change)
        await interaction.response.send_message(embed=await self._reply(interaction.guild_id), ephemeral=True)

    @app_commands.command(name="status", description="The next reminders, the last one sent, and any failures")
    async def status(self, interaction: discord.Interaction) -> None:
        if not await self._allowed(interaction):
            return
        assert interaction.guild_id is not None
        await interaction.response.send_message(embed=await self._reply(interaction.guild_id), ephemeral=True)

    @app_commands.command(name="channel", description="Post reminders in this channel")
    @app_commands.describe(channel="The text channel for reminders")
    async def channel(self, interaction: discord.Interaction, channel: discord.TextChannel) -> None:
        await self._changed(interaction, channel_id=channel.id)

    @app_commands.command(name="lead", description="Minutes before each talk, e.g. 5 or 10,2")
    @app_commands.describe(minutes="One or more lead times in minutes, comma-separated")
    async def lead(self, interaction: discord.Interaction, minutes: str) -> None:
        leads = parse_leads(minutes)
        if leads is None and await self._allowed(interaction):
            await interaction.response.send_message(f"“{render.clean(minutes)[:50]}” is not a list of minutes (0–1440), e.g. 5 or 10,2.", ephemeral=True)
        if leads is None:
            return
        await self._changed(interaction, leads=leads)

    @app_commands.command(name="off", description="Stop posting reminders in this server")
    async def off(self, interaction: discord.Interaction) -> None:
        await self._changed(interaction, enabled=False)

    @app_commands.command(name="on", description="Post reminders in this server again")
    async def on(self, interaction: discord.Interaction) -> None:
        await self._changed(interaction, enabled=True)

    @app_commands.command(name="role", description="Mention this role in reminders; leave it out to mention no one")
    @app_commands.describe(role="The role to ping before each talk (only this role is ever pinged)")
    async def role(self, interaction: discord.Interaction, role: discord.Role | None = None) -> None:
        if role is not None and role.is_default():
            if await self._allowed(interaction):
                await interaction.response.send_message("Reminders never ping @everyone; pick a role, or leave it out.", ephemeral=True)
            return
        await self._changed(interaction, role_id=role.id if role is not None else 0)
