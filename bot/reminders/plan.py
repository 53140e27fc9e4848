"""Reminders before talks, the pure half: which exist, when they are due, what to do with each at `now`.

Nothing here sends or sleeps; the service (bot.reminders.service) wakes at due times and sends.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import logging
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import TextIO

from bot.config import Settings
from bot.core.clock import Clock, ReplayClock, rehearsal_start
from bot.core.schedule import Schedule, Talk
from bot.state.store import GuildOverrides, Store

log = logging.getLogger(__name__)

NONCE_LENGTH = 25  # Discord refuses longer nonces


@dataclass(frozen=True, slots=True)
class Target:
    """Where reminders go and with which leads (minutes before the start)."""

    channel_id: int
    leads: tuple[int, ...]
    guild_id: int | None = None


@dataclass(frozen=True, slots=True)
class Reminder:
    talk: Talk
    lead: int
    channel_id: int
    due_at: dt.datetime

    @property
    def id(self) -> str:
        return reminder_id(self.talk.id, self.lead, self.channel_id)

    @property
    def nonce(self) -> str:
        return reminder_nonce(self.talk.id, self.lead, self.channel_id)


class Verdict(StrEnum):
    WAIT = "wait"  # not due yet
    SEND = "send"  # due, on time or late within the grace window
    STALE = "stale"  # due longer ago than the grace window
    OVER = "over"  # the talk has ended
    SUPERSEDED = "superseded"  # a shorter lead for the same talk is also due: send only that one


def reminder_due_at(talk: Talk, lead: int) -> dt.datetime:
    return talk.start - dt.timedelta(minutes=lead)


def reminder_id(talk_id: str, lead: int, channel_id: int) -> str:
    return f"{talk_id}:{lead}:{channel_id}"


def reminder_nonce(talk_id: str, lead: int, channel_id: int) -> str:
    """A stable nonce of at most 25 characters, the same in every process that sends this reminder."""
    digest = hashlib.blake2b(reminder_id(talk_id, lead, channel_id).encode(), digest_size=12).hexdigest()
    return ("r" + digest)[:NONCE_LENGTH]


def plan_reminders(schedule: Schedule, targets: Iterable[Target], kinds: Iterable[str]) -> list[Reminder]:
    """Every reminder for the given kinds (never breaks), in the order they fall due."""
    wanted = {k for k in kinds if k != "break"}
    found = [
        Reminder(talk, lead, target.channel_id, reminder_due_at(talk, lead))
        for target in targets
        for talk in schedule.talks
        if talk.kind.value in wanted
        for lead in target.leads
    ]
    return sorted(found, key=lambda r: (r.due_at, r.talk.start, r.talk.id, r.channel_id))


def reminder_verdict(reminder: Reminder, now: dt.datetime, grace: dt.timedelta, plan: Sequence[Reminder] = ()) -> Verdict:
    """What to do with one reminder at `now` (on the schedule clock)."""
    if now >= reminder.talk.end:
        return Verdict.OVER
    if now < reminder.due_at:
        return Verdict.WAIT
    if now - reminder.due_at > grace:
        return Verdict.STALE
    for other in plan:
        if other.talk.id == reminder.talk.id and other.channel_id == reminder.channel_id and other.lead < reminder.lead and other.due_at <= now:
            return Verdict.SUPERSEDED
    return Verdict.SEND


def reminder_phrase(start: dt.datetime, now: dt.datetime) -> str:
    """'starts in 5 minutes', 'starting now', 'started 2 minutes ago'."""
    minutes = round((start - now).total_seconds() / 60)
    if minutes == 0:
        return "starting now"
    unit = "minute" if abs(minutes) == 1 else "minutes"
    return f"starts in {minutes} {unit}" if minutes > 0 else f"started {-minutes} {unit} ago"


def resolve_targets(settings: Settings, overrides: Iterable[GuildOverrides], default_guild: int | None = None) -> list[Target]:
    """The environment's channel and leads, changed per guild by /reminders overrides."""
    default_guild = default_guild if default_guild is not None else settings.guild_id
    targets: dict[int | None, Target] = {}
    if settings.reminder_channel_id is not None:
        targets[default_guild] = Target(settings.reminder_channel_id, settings.reminder_leads, default_guild)
    for o in overrides:
        base = targets.get(o.guild_id)
        if base is None and default_guild is None and None in targets:
            base = targets.pop(None)  # the default channel's guild is unknown: take it to be this one
        channel = o.channel_id or (base.channel_id if base else None)
        if o.enabled is False or channel is None:
            targets.pop(o.guild_id, None)
            continue
        targets[o.guild_id] = Target(channel, o.leads or settings.reminder_leads, o.guild_id)
    return list(targets.values())


def print_plan(schedule: Schedule, settings: Settings, now: dt.datetime, out: TextIO) -> int:
    """`python -m bot plan`: when each reminder would fire, in UTC and in the session's zone."""
    channel = settings.reminder_channel_id or 0
    plan = plan_reminders(schedule, [Target(channel, settings.reminder_leads)], settings.reminder_kinds)
    grace = dt.timedelta(minutes=settings.reminder_grace_minutes)
    where = f"channel {settings.reminder_channel_id}" if settings.reminder_channel_id else "no REMINDER_CHANNEL_ID set"
    print(
        f"{len(plan)} reminder(s), leads {','.join(map(str, settings.reminder_leads))} min, kinds {','.join(sorted(settings.reminder_kinds))}, {where}",
        file=out,
    )
    print(f"clock now: {now.astimezone(dt.UTC):%Y-%m-%d %H:%M:%S} UTC; late reminders allowed for {settings.reminder_grace_minutes} min", file=out)
    for r in plan:
        zone = schedule.session_of(r.talk).timezone
        local = r.due_at.astimezone(zone)
        verdict = reminder_verdict(r, now, grace)
        mark = {Verdict.WAIT: "", Verdict.SEND: "  [due now]", Verdict.STALE: "  [past]", Verdict.OVER: "  [past, talk over]"}.get(verdict, "")
        print(
            f"{r.due_at.astimezone(dt.UTC):%Y-%m-%d %H:%M} UTC  {local:%H:%M %Z}  -{r.lead:>2} min  {r.talk.kind.label:<9} {r.talk.display_title[:70]}{mark}",
            file=out,
        )
    return 0


REHEARSAL_KEY = "rehearsal"


def continue_rehearsal(clock: Clock, store: Store, schedule: Schedule, wall_now: float | None = None) -> Clock:
    """A replayed clock that survives restarts: resume an interrupted rehearsal on its timeline.

    A new rehearsal that starts before what the ledger already covers starts over: the ledger
    is cleared so that every talk is announced again. A live (system) clock is returned as is.
    """
    if not isinstance(clock, ReplayClock):
        return clock
    session_end = max(s.end for s in schedule.sessions)
    covered = min((row.due_at for row in store.rows()), default=None)
    wall = time.time() if wall_now is None else wall_now
    start, anchor = rehearsal_start(clock.start, clock.speed, wall, store.get_meta(REHEARSAL_KEY), session_end, covered)
    store.set_meta(REHEARSAL_KEY, anchor)
    if start.resumed:
        log.info("rehearsal: resuming the interrupted run; the clock shows %s", start.instant.isoformat())
        return ReplayClock(start.instant, clock.speed)
    if start.started_over:
        log.info("rehearsal: starting over from %s; forgot %d reminder(s) of the earlier run", start.instant.isoformat(), store.clear_ledger())
    return clock


def due_reminders(plan: Sequence[Reminder], now: dt.datetime, grace: dt.timedelta, done: set[str]) -> tuple[list[Reminder], list[tuple[Reminder, Verdict]]]:
    """Split the not-done reminders due by `now` into those to send (in order) and those to skip."""
    send: list[Reminder] = []
    skip: list[tuple[Reminder, Verdict]] = []
    for r in plan:
        if r.due_at > now:
            break
        if r.id in done:
            continue
        verdict = reminder_verdict(r, now, grace, plan)
        (send.append(r) if verdict is Verdict.SEND else skip.append((r, verdict)))
    return send, skip
