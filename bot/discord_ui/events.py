"""The guild's Events tab follows the programme: one external scheduled event per upcoming talk.

An extension of the bot (SCHEDULED_EVENTS=on) and `python -m bot events` (sync once and exit).
Every sync is REST only: read the bot's permissions and the guild's events, plan the diff
(bot.reminders.events), then delete, patch and create. The talk -> event ids live in the state
store (meta key `scheduled_events:<guild id>`), saved after each step, so a restart or a kill
creates nothing twice; an event whose id was lost is found again by the marker in its description.

The bot syncs on ready, after each schedule reload, when a talk with an event ends (which frees a
slot under Discord's limit of 100 for the next talk) and every few minutes in case someone edited
or deleted an event by hand. Times: see `effective_now` (Discord compares starts with real time).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import datetime as dt
import json
import logging
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import discord

from bot.config import Settings
from bot.core.changes import Changes
from bot.core.clock import Clock, SystemClock
from bot.core.schedule import Schedule
from bot.reminders.events import CREATE_EVENTS, EVENTS_MAX, MANAGE_EVENTS, Delete, EventPlan, EventSpec, Existing, Patch, effective_now, plan_events
from bot.state import open_store
from bot.state.base import StateError
from bot.state.store import Store

if TYPE_CHECKING:
    from bot.discord_ui.app import SessionBot

log = logging.getLogger(__name__)

RESYNC_SECONDS = 300.0  # real seconds between checks when no talk ends sooner
STATE_KEY = "scheduled_events:{guild_id}"
STATE_MAX_ITEMS = 10_000  # the state file is untrusted too
OPEN = (discord.EventStatus.scheduled, discord.EventStatus.active)
MAX_EVENTS_CODE = 30038


@dataclass
class SyncResult:
    """What one sync did in one guild; `problem` is what an organiser must fix (shown in the status)."""

    guild_id: int
    created: int = 0
    updated: int = 0
    deleted: int = 0
    kept: int = 0
    adopted: int = 0
    skipped_past: int = 0
    beyond_limit: int = 0
    failures: list[str] = field(default_factory=list)
    problem: str | None = None
    next_end: dt.datetime | None = None

    @property
    def ok(self) -> bool:
        return self.problem is None and not self.failures

    def line(self) -> str:
        done = f"Guild {self.guild_id}: {self.created} event(s) created, {self.updated} updated, {self.deleted} deleted, {self.kept} unchanged"
        notes = [f"{self.adopted} existing event(s) adopted"] if self.adopted else []
        if self.skipped_past:
            notes.append(f"{self.skipped_past} talk(s) already started (Discord refuses past starts)")
        if self.beyond_limit:
            notes.append(f"{self.beyond_limit} later talk(s) wait for a free slot (Discord keeps at most {EVENTS_MAX} events)")
        notes += self.failures[:3]
        if self.problem:
            notes.append(self.problem)
        return done + "".join(f"; {note}" for note in notes) + "."


# --------------------------------------------------------------------------- state


def load_known(store: Store, guild_id: int) -> dict[str, int]:
    """Talk id -> event id from earlier syncs; anything malformed counts as nothing stored (events are adopted again)."""
    raw = store.get_meta(STATE_KEY.format(guild_id=guild_id))
    if not raw:
        return {}
    try:
        events = json.loads(raw)["events"]
        known = {str(tid): int(eid) for tid, eid in events.items() if str(eid).isdigit()}
    except (ValueError, KeyError, TypeError, AttributeError):
        log.warning("events: the stored event ids of guild %s are unreadable; existing events will be adopted again", guild_id)
        return {}
    return dict(list(known.items())[:STATE_MAX_ITEMS])


def save_known(store: Store, guild_id: int, events: dict[str, int]) -> None:
    store.set_meta(STATE_KEY.format(guild_id=guild_id), json.dumps({"version": 1, "events": {t: str(e) for t, e in sorted(events.items())}}))


def existing(event: discord.ScheduledEvent, bot_id: int) -> Existing:
    return Existing(
        id=event.id,
        name=event.name,
        start=event.start_time,
        end=event.end_time,
        description=event.description or "",
        location=event.location or "",
        by_bot=event.creator_id == bot_id,
        external=event.entity_type is discord.EntityType.external,
        active=event.status is discord.EventStatus.active,
    )


def missing_text(names: tuple[str, ...] | list[str]) -> str:
    """The one line an organiser reads: which permission, and what it stops."""
    which = " and ".join(names)
    plural = "s" * (len(names) > 1)
    return f"the bot lacks the {which} permission{plural} in this server, so talks' scheduled events are not kept up to date (Server Settings > Roles)"


# --------------------------------------------------------------------------- the extension


class EventsExtension:
    """Keeps DISCORD_GUILD_ID's scheduled events in step with the programme; `problem(guild_id)` for the status."""

    def __init__(
        self, settings: Settings, clock: Clock, store: Store | None = None, *, real_clock: Clock | None = None, resync_seconds: float = RESYNC_SECONDS
    ) -> None:
        self.settings, self.clock = settings, clock
        self.real_clock = real_clock or SystemClock()
        self.resync_seconds = resync_seconds
        self._own_store = store is None
        self.store = store
        self.client: discord.Client | None = None
        self._schedule: Callable[[], Schedule] | None = None
        self._problems: dict[int, str] = {}
        self._noted: set[tuple[int, str]] = set()  # (guild, what) logged once per process
        self._lock = asyncio.Lock()
        self._wake = asyncio.Event()
        self._task: asyncio.Task | None = None
        self.last: dict[int, SyncResult] = {}

    def __repr__(self) -> str:
        return f"EventsExtension(guild={self.settings.guild_id})"

    def attach(self, client: discord.Client, schedule: Callable[[], Schedule]) -> None:
        """The client to act through (logged in) and where the current programme comes from."""
        self.client, self._schedule = client, schedule
        if self.store is None:
            self.store = open_store(self.settings)

    async def setup(self, bot: SessionBot) -> None:
        self.attach(bot, lambda: bot.programme.schedule)
        if not getattr(bot, "serving", True):
            return  # `python -m bot sync` only publishes commands
        if abs((self.clock.now() - self.real_clock.now()).total_seconds()) > 60:
            log.info("events: the clock is replayed (%r); Discord compares with real time, so only talks starting after both get an event", self.clock)
        self._task = asyncio.create_task(self._run(), name="scheduled-events")

    async def guilds_changed(self) -> None:
        self._wake.set()

    async def schedule_changed(self, schedule: Schedule, changes: Changes, version: str) -> None:
        """A reload: the next sync (at once) reads the new programme from the bot."""
        self._wake.set()

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        if self.store is not None and self._own_store:
            self.store.close()
            self.store = None

    def problem(self, guild_id: int) -> str | None:
        """What stops the events from being kept up to date in this guild (a missing permission), or None."""
        return self._problems.get(guild_id)

    # --- the loop -----------------------------------------------------------------------
    async def _run(self) -> None:
        """Sync when woken (ready, a reload), when the next talk with an event ends, and every few minutes."""
        guild_id = self.settings.guild_id
        if guild_id is None:
            return
        if not self.settings.owns_guild(guild_id):
            log.info("events: guild %s is on shard %d, which another process holds; it keeps the events", guild_id, self.settings.shard_of(guild_id))
            return
        await self._wake.wait()
        while True:
            self._wake.clear()
            delay = self.resync_seconds
            try:
                delay = self._delay((await self.sync(guild_id)).next_end)
            except StateError as err:  # the store logs an outage once when it starts and once when it ends
                log.debug("events: the sync of guild %s waits for the state (%s)", guild_id, err)
                delay = 5.0
            except Exception:
                log.exception("events: the sync of guild %s failed; trying again in %.0f s", guild_id, delay)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), delay)

    def _delay(self, next_end: dt.datetime | None) -> float:
        """Real seconds until the later of the two clocks reaches `next_end`, within the resync period."""
        if next_end is None:
            return self.resync_seconds
        real = (next_end - self.real_clock.now()).total_seconds()
        return min(self.resync_seconds, max(1.0, min(real, self.clock.seconds_until(next_end)) + 0.5))

    # --- one sync -----------------------------------------------------------------------
    async def sync(self, guild_id: int) -> SyncResult:
        """Plan against what Discord holds now, then delete, patch and create; one at a time, saved after each."""
        async with self._lock:
            result = await self._sync(guild_id)
        self.last[guild_id] = result
        return result

    async def _sync(self, guild_id: int) -> SyncResult:
        assert self.client is not None and self.client.user is not None and self._schedule is not None and self.store is not None
        result = SyncResult(guild_id)
        try:
            guild = await self.client.fetch_guild(guild_id)
            perms = (await guild.fetch_member(self.client.user.id)).guild_permissions
            found = {e.id: e for e in await guild.fetch_scheduled_events(with_counts=False) if e.status in OPEN}
        except (discord.NotFound, discord.Forbidden) as err:
            result.problem = f"the bot cannot see guild {guild_id} ({err.status} {err.text[:80]}); invite it there with the Create Events permission"
            self._set_problem(guild_id, result.problem)
            return result
        except discord.HTTPException as err:
            result.failures.append(f"Discord answered {err.status} reading guild {guild_id}'s events; trying again later")
            log.warning("events: %s", result.failures[-1])
            return result
        now = effective_now(self.clock.now(), self.real_clock.now())
        known = await asyncio.to_thread(load_known, self.store, guild_id)
        full = plan_events(self._schedule(), self.settings.reminder_kinds, [existing(e, self.client.user.id) for e in found.values()], known, now)
        plan = full.allowed(perms.create_events, perms.manage_events)
        blocked = [CREATE_EVENTS] if not perms.create_events else []  # without it no new talk gets an event, needed now or not
        for name in plan.blocked:
            _add(blocked, name)
        self._note(guild_id, full)
        events = dict(plan.events)
        await asyncio.to_thread(save_known, self.store, guild_id, dict(events))
        result = dataclasses.replace(
            result, adopted=len(plan.adopted), kept=plan.kept, skipped_past=plan.skipped_past, beyond_limit=plan.beyond_limit, next_end=plan.next_end
        )
        await self._apply(guild, plan, found, events, result, blocked)
        result.problem = missing_text(blocked) if blocked else None
        self._set_problem(guild_id, result.problem)
        if plan:
            log.info(
                "events: guild %s: %d created, %d updated, %d deleted, %d unchanged", guild_id, result.created, result.updated, result.deleted, result.kept
            )
        return result

    async def _apply(
        self, guild: discord.Guild, plan: EventPlan, found: dict[int, discord.ScheduledEvent], events: dict[str, int], result: SyncResult, blocked: list[str]
    ) -> None:
        """Deletes first (they free slots), then patches, then creates; a 403 stops that kind of step."""
        assert self.store is not None
        steps = _Steps(guild, found, events, result, blocked, self.store)
        for delete in plan.deletes:
            await steps.delete(delete)
        for patch in plan.patches:
            await steps.patch(patch)
        for spec in plan.creates:
            if not await steps.create(spec):
                break
        if steps.full:
            self._once(guild.id, "full", "events: guild %s already has %d open events, some not ours; the rest wait for free slots", guild.id, EVENTS_MAX)

    # --- logging once -------------------------------------------------------------------
    def _set_problem(self, guild_id: int, problem: str | None) -> None:
        """Log a problem once when it appears, and once when it is gone."""
        before = self._problems.get(guild_id)
        if problem == before:
            return
        if problem is None:
            self._problems.pop(guild_id, None)
            log.info("events: guild %s: scheduled events are kept up to date again", guild_id)
        else:
            self._problems[guild_id] = problem
            log.warning("events: guild %s: %s", guild_id, problem)

    def _note(self, guild_id: int, plan: EventPlan) -> None:
        if plan.beyond_limit:
            self._once(
                guild_id,
                "limit",
                "events: guild %s: Discord keeps at most %d events, so the soonest %d talks have one and the later ones get theirs as talks end",
                guild_id,
                EVENTS_MAX,
                plan.capacity,
            )
        if plan.skipped_past:
            self._once(
                guild_id, "past", "events: guild %s: %d talk(s) that already started get no event (Discord refuses past starts)", guild_id, plan.skipped_past
            )

    def _once(self, guild_id: int, what: str, message: str, *args: object) -> None:
        if (guild_id, what) not in self._noted:
            self._noted.add((guild_id, what))
            log.info(message, *args)


@dataclass
class _Steps:
    """One sync's calls to Discord; the talk -> event ids are saved after each step that changes them."""

    guild: discord.Guild
    found: dict[int, discord.ScheduledEvent]
    events: dict[str, int]
    result: SyncResult
    blocked: list[str]
    store: Store
    full: bool = False

    async def delete(self, delete: Delete) -> None:
        try:
            await self.found[delete.event_id].delete(reason=f"talk {delete.reason}"[:100])
        except discord.NotFound:
            pass  # already gone
        except discord.Forbidden:
            _add(self.blocked, CREATE_EVENTS if delete.by_bot else MANAGE_EVENTS)
            return
        except discord.HTTPException as err:
            self.result.failures.append(f"deleting an event: {err.status} {err.text[:80]}")
            return
        if delete.talk_id and self.events.get(delete.talk_id) == delete.event_id:
            del self.events[delete.talk_id]
            await asyncio.to_thread(save_known, self.store, self.guild.id, dict(self.events))
        self.result.deleted += 1

    async def patch(self, patch: Patch) -> None:
        try:
            await self.found[patch.event_id].edit(**_edit_args(patch.spec, patch.fields))
        except discord.Forbidden:
            _add(self.blocked, CREATE_EVENTS if patch.by_bot else MANAGE_EVENTS)
            return
        except discord.HTTPException as err:  # a 404: deleted meanwhile, created again at the next sync
            self.result.failures.append(f"updating the event of {patch.spec.talk_id}: {err.status} {err.text[:80]}")
            return
        self.result.updated += 1

    async def create(self, spec: EventSpec) -> bool:
        """False when no further event can be created now (no permission, or the guild is full)."""
        try:
            event = await self.guild.create_scheduled_event(**_create_args(spec))
        except discord.Forbidden:
            _add(self.blocked, CREATE_EVENTS)
            return False
        except discord.HTTPException as err:
            if err.code == MAX_EVENTS_CODE:
                self.full = True
                return False
            self.result.failures.append(f"creating the event of {spec.talk_id}: {err.status} {err.text[:80]}")
            return True
        self.events[spec.talk_id] = event.id
        await asyncio.to_thread(save_known, self.store, self.guild.id, dict(self.events))
        self.result.created += 1
        return True


def _add(names: list[str], name: str) -> None:
    if name not in names:
        names.append(name)


def _create_args(spec: EventSpec) -> dict:
    return {
        "name": spec.name,
        "description": spec.description,
        "start_time": spec.start,
        "end_time": spec.end,
        "entity_type": discord.EntityType.external,
        "privacy_level": discord.PrivacyLevel.guild_only,
        "location": spec.location,
        "reason": f"programme: {spec.talk_id}"[:100],
    }


def _edit_args(spec: EventSpec, fields: tuple[str, ...]) -> dict:
    values = {"name": spec.name, "description": spec.description, "location": spec.location, "start": spec.start, "end": spec.end}
    keys = {"start": "start_time", "end": "end_time"}
    return {keys.get(f, f): values[f] for f in fields}


# --------------------------------------------------------------------------- python -m bot events


def run_events(settings: Settings, schedule_path: Path, clock: Clock) -> int:
    """`python -m bot events`: log in over REST (no gateway), sync DISCORD_GUILD_ID once, print one line; 0 when in step, else 2."""
    if not settings.scheduled_events or settings.guild_id is None:
        print("error: SCHEDULED_EVENTS is off; set SCHEDULED_EVENTS=on and DISCORD_GUILD_ID to keep that server's Events tab in step", file=sys.stderr)
        return 2
    schedule = _load(settings, schedule_path)
    client = discord.Client(intents=discord.Intents.default())
    extension = EventsExtension(settings, clock)
    guild_id = settings.guild_id

    async def once() -> SyncResult:
        async with client:
            await client.login(settings.discord_token.reveal())
            extension.attach(client, lambda: schedule)
            try:
                return await extension.sync(guild_id)
            finally:
                await extension.close()

    try:
        result = asyncio.run(once())
    except discord.LoginFailure:
        log.error("Discord refused DISCORD_TOKEN; copy it again from the Developer Portal (your application > Bot > Reset Token).")
        return 2
    print(result.line())
    return 0 if result.ok else 2


def _load(settings: Settings, schedule_path: Path) -> Schedule:
    """The programme as the bot would serve it: SCHEDULE_URL (or its last good copy), else the prepared file."""
    if settings.schedule_url:
        import functools

        from bot.discord_ui.app import parse_ready
        from bot.sources.watch import fetch_at_start

        parse = functools.partial(parse_ready, timezone=settings.schedule_timezone)
        (schedule, _), _, _ = fetch_at_start(settings.schedule_url, settings.state_path.parent, parse)
        return schedule
    from bot.state.prepared import load_prepared

    return load_prepared(settings, schedule_path)[0]
