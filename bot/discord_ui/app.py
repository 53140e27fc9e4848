"""The Discord client: dependencies passed in, commands synced in setup_hook, one error handler.

Commands sync to DISCORD_GUILD_ID at start (they appear at once); global publication is the
explicit `python -m bot sync`. Nothing syncs in on_ready, which fires after every reconnect.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import signal
from collections.abc import Sequence
from enum import Enum
from pathlib import Path
from typing import Any, Protocol
from zoneinfo import ZoneInfo

import discord
from discord import app_commands

from bot.config import Settings
from bot.core.answers import next_talks
from bot.core.clock import Clock, SystemClock
from bot.core.errors import UserError
from bot.core.programme import Programme
from bot.core.render_text import render_summary, talk_line
from bot.core.schedule import Schedule
from bot.core.search import SearchIndex
from bot.discord_ui import render
from bot.discord_ui.calendar import add_calendar_command
from bot.discord_ui.claims import first_to_answer
from bot.discord_ui.commands import add_commands, message_args, send
from bot.state.base import StateError
from bot.state.store import LIVE

log = logging.getLogger(__name__)


class Extension(Protocol):
    """Optional feature (e.g. reminders): may add commands and start background work."""

    async def setup(self, bot: SessionBot) -> None: ...

    async def guilds_changed(self) -> None:
        """The gateway is ready, or the bot joined or left a guild."""
        ...

    async def close(self) -> None: ...


class SyncScope(Enum):
    """Where `sync_commands` publishes the commands.

    Guild commands show at once, global ones after a while, and a command published in both
    shows twice in that guild. So `python -m bot sync` publishes to one scope and removes the
    application's commands from the other; a normal start only ever touches DISCORD_GUILD_ID.
    """

    GUILD_IF_SET = "start"  # normal start: sync to DISCORD_GUILD_ID, or not at all
    GLOBAL = "global"  # `sync`: publish globally, remove the copies in DISCORD_GUILD_ID
    GUILD = "guild"  # `sync --guild`: publish to DISCORD_GUILD_ID, remove the global ones
    CLEAR = "clear"  # `sync --clear`: remove both

    async def publish(self, tree: app_commands.CommandTree, guild_id: int | None, done: list[str]) -> list[app_commands.AppCommand]:
        """For `python -m bot sync`: publish to this scope, then remove the other scope's copies.

        Appends a phrase to `done` for each step, so a refusal midway still says what changed.
        """
        guild = None if guild_id is None else discord.Object(id=guild_id)
        synced: list[app_commands.AppCommand] = []
        if self is SyncScope.GLOBAL:
            synced = await tree.sync()
            done.append(f"published {len(synced)} commands globally (Discord may take a while to show them)")
        elif self is SyncScope.GUILD:
            if guild is None:
                raise ValueError("SyncScope.GUILD needs DISCORD_GUILD_ID")
            tree.copy_global_to(guild=guild)
            synced = await tree.sync(guild=guild)
            done.append(f"published {len(synced)} commands to guild {guild_id} (they show at once)")
        if self is not SyncScope.GLOBAL:
            done.append(await SyncScope._remove(tree, None))
        if self is not SyncScope.GUILD:
            done.append(await SyncScope._remove(tree, guild) if guild else "no DISCORD_GUILD_ID, so no guild was checked for copies")
        if guild is not None and self is SyncScope.GLOBAL:
            done.append("unset DISCORD_GUILD_ID, or the next start copies them to that guild again")
        elif guild is not None and self is SyncScope.CLEAR:
            done.append("the next start publishes them to that guild again while DISCORD_GUILD_ID is set")
        return synced

    @staticmethod
    async def _remove(tree: app_commands.CommandTree, guild: discord.Object | None) -> str:
        old = await tree.fetch_commands(guild=guild)
        if old:
            tree.clear_commands(guild=guild)
            await tree.sync(guild=guild)
        place = "global commands" if guild is None else f"commands in guild {guild.id}"
        return f"removed {len(old)} {place}" if old else f"found no {place} to remove"


def default_extensions(
    settings: Settings, schedule: Schedule, index: SearchIndex, clock: Clock, run: str = LIVE, source: str | None = None, served: bytes | None = None
) -> list[Extension]:
    """Reminders, session Q&A, and (given the schedule's source) following the schedule as it changes."""
    from bot.discord_ui.qa import QaExtension
    from bot.discord_ui.remind import PersonalReminders
    from bot.discord_ui.reminders import ReminderExtension
    from bot.discord_ui.updates import ScheduleUpdates

    extensions: list[Extension] = [ReminderExtension(settings, schedule, clock, run=run), PersonalReminders(settings, clock, run=run)]
    extensions.append(QaExtension(settings, clock, run=run))  # /ask, /questions, vote buttons, the chairs' top questions
    if source is not None:
        parse = functools.partial(parse_ready, timezone=settings.schedule_timezone)
        extensions.append(ScheduleUpdates(source, parse, poll_seconds=settings.schedule_poll_seconds, served=served, state_dir=settings.state_path.parent))
    if settings.scheduled_events:
        from bot.discord_ui.events import EventsExtension

        extensions.append(EventsExtension(settings, clock))
    return extensions


def parse_ready(data: bytes, source: str, timezone: ZoneInfo | None = None) -> tuple[Schedule, SearchIndex]:
    """A schedule's bytes in any format, validated and indexed (runs in a worker thread on reloads)."""
    from bot.core.schedule import gc_paused
    from bot.sources import log_warnings, parse_bytes

    schedule, warnings = parse_bytes(data, source, timezone)
    log_warnings(source, warnings)
    with gc_paused():
        return schedule, SearchIndex(schedule)


def bot_permissions(settings: Settings) -> discord.Permissions:
    """The least the bot needs: see channels, post reminders, embed; ping a role only if configured."""
    # Read Message History: after a crash, an unconfirmed reminder is looked for before it is posted again.
    perms = discord.Permissions(view_channel=True, send_messages=True, embed_links=True, read_message_history=True)
    if settings.reminder_role_id is not None:
        perms.mention_everyone = True  # needed to ping a role that is not mentionable
    if settings.talk_threads:  # a thread on each talk's reminder, where /ask posts its questions
        perms.create_public_threads = perms.send_messages_in_threads = True
    if settings.scheduled_events:  # create the talks' events; change or delete ones made by others (see bot.discord_ui.events)
        perms.create_events = perms.manage_events = True
    return perms


def invite_url(application_id: int, settings: Settings) -> str:
    return discord.utils.oauth_url(application_id, permissions=bot_permissions(settings), scopes=("bot", "applications.commands"))


class SessionTree(app_commands.CommandTree):
    """The command tree with the one error handler every command shares."""

    async def interaction_check(self, interaction: discord.Interaction, /) -> bool:
        """Commands and autocomplete are answered by one process even when several hold the shard."""
        return await first_to_answer(interaction)

    async def on_error(self, interaction: discord.Interaction, error: app_commands.AppCommandError) -> None:
        original = getattr(error, "original", error)
        name = interaction.command.qualified_name if interaction.command else "?"
        if isinstance(original, UserError):
            log.info("/%s: %s", name, original.message)
            replies = render.render_user_error(original)
        elif isinstance(original, StateError):  # the database is away: one line, no traceback (the store logs the outage itself)
            log.warning("/%s answered with an apology: %s", name, str(original)[:300])
            replies = [render.render_storage_apology()]
        else:
            log.error("/%s failed", name, exc_info=original)
            replies = [render.render_apology()]
        try:
            if interaction.response.is_done():
                for reply in replies:
                    await interaction.followup.send(**{**message_args(reply), "ephemeral": True})
            else:
                await send(interaction, replies)
        except discord.HTTPException as exc:
            log.warning("could not answer /%s after an error: %s", name, exc)


class SessionBot(discord.Client):
    """The bot: a discord.Client over the schedule core, with optional extensions."""

    def __init__(
        self,
        settings: Settings,
        schedule: Schedule,
        index: SearchIndex,
        clock: Clock,
        extensions: Sequence[Extension] = (),
        *,
        sync_scope: SyncScope = SyncScope.GUILD_IF_SET,
        **client_options: Any,
    ) -> None:
        """`client_options` go to discord.Client (tests pass guild_ready_timeout)."""
        super().__init__(intents=discord.Intents.default(), allowed_mentions=discord.AllowedMentions.none(), **client_options)
        self.settings = settings
        self.programme = Programme(schedule, index)
        self.clock = clock
        self.extensions = list(extensions)
        self.sync_scope = sync_scope
        # False during `python -m bot sync`: extensions add their commands but start no background work.
        self.serving = sync_scope is SyncScope.GUILD_IF_SET
        self.synced: list[app_commands.AppCommand] = []
        self.tree = SessionTree(self)
        add_commands(self.tree, self.programme, clock)
        self.calendar = add_calendar_command(self.tree, self.programme, clock)  # /remind sets .followed
        self._closing = False
        self.interaction_claims: Any = None  # the shared state, with STATE_URL (bot.discord_ui.claims)

    @property
    def schedule(self) -> Schedule:
        """The schedule being served now (a reload replaces it)."""
        return self.programme.schedule

    @property
    def index(self) -> SearchIndex:
        return self.programme.index

    async def setup_hook(self) -> None:
        if self.settings.state_url is not None and self.serving:
            from bot.state import open_store

            # Several processes may hold one shard: each interaction is claimed in the shared state (see claims.py).
            self.interaction_claims = await asyncio.to_thread(open_store, self.settings)
        for extension in self.extensions:
            await extension.setup(self)
        self.log_start()
        await self.sync_commands()

    async def sync_commands(self) -> None:
        """Publish to this run's SyncScope. For `python -m bot sync` (any scope but GUILD_IF_SET),
        also remove the other scope's copies, and leave a one-line `sync_summary` and `sync_ok`."""
        guild_id = self.settings.guild_id
        scope = self.sync_scope
        if scope is not SyncScope.GUILD_IF_SET:
            done: list[str] = []
            self.sync_ok = False
            try:
                self.synced = await scope.publish(self.tree, guild_id, done)
                self.sync_ok = True
            except discord.HTTPException as exc:
                hint = f"; is the bot in guild {guild_id}, invited with applications.commands?" if guild_id else ""
                done.append(f"{'then ' if done else 'nothing changed: '}Discord refused ({exc.status} {exc.text}){hint}")
            summary = "; ".join(done)
            self.sync_summary = summary[:1].upper() + summary[1:] + "."
            return
        if guild_id is not None and not self.settings.owns_guild(guild_id):
            log.info("Commands: guild %s is on shard %d; the process holding it syncs them", guild_id, self.settings.shard_of(guild_id))
            return
        try:
            if guild_id is not None:
                guild = discord.Object(id=guild_id)
                self.tree.copy_global_to(guild=guild)
                self.synced = await self.tree.sync(guild=guild)
                log.info("Synced %d commands to guild %s: %s", len(self.synced), guild_id, ", ".join(f"/{c.name}" for c in self.synced))
                published = await self.tree.fetch_commands()
                if published:
                    log.warning(
                        "%d commands are also published globally, so guild %s shows each twice; `python -m bot sync --guild` removes the global copies",
                        len(published),
                        guild_id,
                    )
            else:
                log.info("No DISCORD_GUILD_ID: commands were not synced on start; `python -m bot sync` publishes them globally.")
        except discord.HTTPException as exc:
            log.error("Command sync failed (%s %s): is the bot in guild %s, invited with applications.commands?", exc.status, exc.text, guild_id)

    def log_start(self) -> None:
        if self.application_id is not None:
            log.info("Invite URL: %s", invite_url(self.application_id, self.settings))
        for session in self.schedule.sessions:
            log.info("Schedule: %s", render_summary(session))
        now = self.clock.now()
        upcoming = next_talks(self.schedule, now, count=1).talks
        tz = self.schedule.timezone
        log.info("Next talk: %s", talk_line(upcoming[0], now, tz) if upcoming else "none, the schedule is over")

    async def on_ready(self) -> None:
        log.info("Connected as %s (id %s) to %d guild(s); clock: %r", self.user, self.user.id if self.user else "?", len(self.guilds), self.clock)
        await self._guilds_changed()

    async def on_guild_join(self, guild: discord.Guild) -> None:
        log.info("Joined guild %s", guild.id)
        await self._guilds_changed()

    async def on_guild_remove(self, guild: discord.Guild) -> None:
        log.info("Left guild %s", guild.id)
        await self._guilds_changed()

    async def _guilds_changed(self) -> None:
        for extension in self.extensions:
            try:
                await extension.guilds_changed()
            except Exception:
                log.exception("extension %r failed to follow the guilds", extension)

    async def close(self) -> None:
        if not self._closing:
            self._closing = True
            for extension in reversed(self.extensions):
                try:
                    await extension.close()
                except Exception:
                    log.exception("closing extension %r failed", extension)
            if self.interaction_claims is not None:
                self.interaction_claims.close()
        await super().close()


IDENTIFY_WINDOW = 5.0  # seconds: Discord allows max_concurrency IDENTIFYs per window, per bucket shard_id % max_concurrency


class ShardedSessionBot(SessionBot, discord.AutoShardedClient):
    """SHARD_COUNT/SHARD_IDS: the same bot over Discord's gateway shards, this process holding SHARD_IDS.

    The gateway sends each shard only its guilds' events, so `guilds` holds this process's guilds;
    guild work (channel reminders, announcements, digests, events) follows it, and
    `Settings.owns_guild` states the rule where a guild id comes from elsewhere (DISCORD_GUILD_ID).
    Work of no guild (DMs) is claimed in the shared state, so any process may do it.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        settings: Settings = args[0] if args else kwargs["settings"]
        ids = list(settings.shard_ids) if settings.shard_ids is not None else None
        super().__init__(*args, shard_count=settings.shard_count, shard_ids=ids, **kwargs)
        self._max_concurrency: int | None = None
        self._identified: dict[int, float] = {}

    async def before_identify_hook(self, shard_id: int | None, *, initial: bool = False) -> None:
        """Pace IDENTIFYs by Discord's session start limit instead of discord.py's flat 5 s per shard:
        bots granted a max_concurrency above 1 start their shards that many at a time."""
        if self._max_concurrency is None:
            try:
                self._max_concurrency = max(1, (await self.fetch_session_start_limits()).max_concurrency)
            except (discord.HTTPException, KeyError, TypeError):
                self._max_concurrency = 1
        loop = asyncio.get_running_loop()
        bucket = (shard_id or 0) % self._max_concurrency
        wait = self._identified.get(bucket, -IDENTIFY_WINDOW) + IDENTIFY_WINDOW - loop.time()
        if wait > 0:
            await asyncio.sleep(wait)
        self._identified[bucket] = loop.time()

    async def on_shard_ready(self, shard_id: int) -> None:
        log.info("Shard %d of %d ready", shard_id, self.shard_count or 1)


def _build(settings: Settings, schedule_path: Path, clock: Clock, scope: SyncScope) -> SessionBot:
    from bot.sources.watch import fetch_at_start
    from bot.state.prepared import load_prepared

    if settings.schedule_url:
        source = settings.schedule_url
        parse = functools.partial(parse_ready, timezone=settings.schedule_timezone)
        (schedule, index), served, how = fetch_at_start(source, settings.state_path.parent, parse)
        log.info("Schedule: %s (%s)", source, how)
    else:
        source = str(schedule_path)
        schedule, index = load_prepared(settings, schedule_path)
        try:
            served = schedule_path.read_bytes()
        except OSError:
            served = None
    run = LIVE
    if scope is SyncScope.GUILD_IF_SET:
        clock, run = resumable_clock(clock, settings, schedule)
    extensions = default_extensions(settings, schedule, index, clock, run, source, served)
    cls = ShardedSessionBot if settings.sharded and scope is SyncScope.GUILD_IF_SET else SessionBot
    return cls(settings, schedule, index, clock, extensions, sync_scope=scope)


def resumable_clock(clock: Clock, settings: Settings, schedule: Schedule) -> tuple[Clock, str]:
    """A rehearsal's clock continues across restarts (its anchor lives in the state file); the ledger run goes with it.

    Opening the state file here, before connecting, also refuses an unusable one with a clear message.
    """
    from bot.reminders.plan import continue_rehearsal
    from bot.state import open_store

    store = open_store(settings)
    try:
        return continue_rehearsal(clock, store, schedule)
    finally:
        store.close()


async def _serve(bot: SessionBot, token: str) -> None:
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        with contextlib.suppress(NotImplementedError, RuntimeError):  # not the main thread, or Windows
            loop.add_signal_handler(sig, lambda: asyncio.ensure_future(bot.close()))
    async with bot:
        await bot.start(token)


def _login_failed() -> int:
    log.error("Discord refused DISCORD_TOKEN; copy it again from the Developer Portal (your application > Bot > Reset Token).")
    return 2


def run_discord(settings: Settings, schedule_path: Path, clock: Clock) -> int:
    """Connect and answer commands until stopped; the exit code for `python -m bot`."""
    bot = _build(settings, schedule_path, clock, SyncScope.GUILD_IF_SET)
    try:
        asyncio.run(_serve(bot, settings.discord_token.reveal()))
    except discord.LoginFailure:
        return _login_failed()
    except discord.PrivilegedIntentsRequired:
        log.error("Discord asked for a privileged intent; this bot should need none.")
        return 2
    except discord.ConnectionClosed as closed:
        return _gateway_refused(closed, settings)
    return 0


def _gateway_refused(closed: discord.ConnectionClosed, settings: Settings) -> int:
    """Close codes that no reconnect can fix: say what to change, exit 2."""
    if closed.code == 4011:  # Discord: a shard may hold at most 2,500 guilds
        if settings.shard_count is None:
            log.error("Discord requires sharding: the bot is in too many servers for one connection. Set SHARD_COUNT (see README, Running at scale).")
        else:
            log.error("Discord requires more shards: SHARD_COUNT=%d is too few for the servers the bot is in; raise it on every process.", settings.shard_count)
        return 2
    if closed.code == 4010:
        log.error("Discord refused shard %s of SHARD_COUNT=%s; check SHARD_COUNT and SHARD_IDS on every process.", closed.shard_id, settings.shard_count)
        return 2
    log.error("Discord closed the gateway with code %s, which a reconnect cannot fix; see Discord's gateway close codes.", closed.code)
    return 2


def sync_global(settings: Settings, schedule_path: Path, scope: SyncScope = SyncScope.GLOBAL) -> int:
    """`python -m bot sync`: log in, publish to `scope` and remove the other scope's copies, log
    out (no gateway); prints one line saying what changed."""
    # Built as GLOBAL whatever the scope: no background work, no rehearsal clock, no state.
    bot = _build(settings, schedule_path, SystemClock(), scope)

    async def publish() -> None:
        async with bot:
            await bot.login(settings.discord_token.reveal())

    try:
        asyncio.run(publish())
    except discord.LoginFailure:
        return _login_failed()
    print(getattr(bot, "sync_summary", "Nothing was synced."))
    return 0 if getattr(bot, "sync_ok", False) else 1
