"""Reminders before talks, the pure half: which exist, when they are due, what to do with each at `now`.

Nothing here sends or sleeps; the service (bot.reminders.service) wakes at due times and sends.
A reminder's identity is (run, guild, channel, talk, lead, due time): a rehearsal ("run") never
counts as the live day, a guild never shares rows with another, and a talk that moves gets a new
reminder at its new time.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import logging
import secrets
import time
from bisect import bisect_right
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import TextIO

from bot.config import Settings
from bot.core.clock import Clock, ReplayClock, rehearsal_start
from bot.core.schedule import Schedule, Talk
from bot.state.store import LIVE, GuildOverrides, NewRow, StateError, Store

log = logging.getLogger(__name__)

NONCE_LENGTH = 25  # Discord refuses longer nonces
MARKER_LENGTH = 12  # the part of the nonce shown in the embed footer, found again in the channel's history


@dataclass(frozen=True, slots=True)
class Target:
    """Where one guild's reminders go, with which leads (minutes before the start) and which role to ping."""

    channel_id: int
    leads: tuple[int, ...]
    guild_id: int = 0
    role_id: int | None = None


@dataclass(frozen=True, slots=True)
class Reminder:
    talk: Talk
    lead: int
    channel_id: int
    due_at: dt.datetime
    guild_id: int = 0
    role_id: int | None = None
    run: str = LIVE

    @property
    def id(self) -> str:
        return reminder_id(self.run, self.guild_id, self.channel_id, self.talk.id, self.lead, self.due_at)

    @property
    def nonce(self) -> str:
        return reminder_nonce(self.id)

    @property
    def marker(self) -> str:
        return self.nonce[:MARKER_LENGTH]

    @property
    def lane(self) -> tuple[int, int]:
        """Reminders of one lane go out in order; lanes never wait for each other."""
        return (self.guild_id, self.channel_id)

    def new_row(self) -> NewRow:
        return NewRow(self.id, self.run, self.guild_id, self.talk.id, self.lead, self.channel_id, self.nonce, self.due_at)


class Verdict(StrEnum):
    WAIT = "wait"  # not due yet
    SEND = "send"  # due, on time or late within the grace window
    STALE = "stale"  # due longer ago than the grace window
    OVER = "over"  # the talk has ended
    SUPERSEDED = "superseded"  # a shorter lead for the same talk is also due: send only that one


def reminder_due_at(talk: Talk, lead: int) -> dt.datetime:
    return talk.start - dt.timedelta(minutes=lead)


def reminder_id(run: str, guild_id: int, channel_id: int, talk_id: str, lead: int, due_at: dt.datetime) -> str:
    return f"{run}|{guild_id}|{channel_id}|{talk_id}|{lead}|{int(due_at.timestamp())}"


def reminder_nonce(rid: str) -> str:
    """A stable nonce of at most 25 characters, the same in every process that sends this reminder."""
    digest = hashlib.blake2b(rid.encode(), digest_size=12).hexdigest()
    return ("r" + digest)[:NONCE_LENGTH]


def new_run_key() -> str:
    """A fresh rehearsal's run key: its ledger rows and nonces are its own."""
    return "rehearsal-" + secrets.token_hex(6)


@dataclass(frozen=True)
class Plan:
    """Every reminder in due order, with the due instants beside them for bisecting."""

    reminders: tuple[Reminder, ...] = ()
    due: tuple[float, ...] = ()
    _by_talk: dict[tuple[int, int, str], tuple[int, ...]] = field(default_factory=dict, repr=False)

    def __len__(self) -> int:
        return len(self.reminders)

    def __iter__(self):
        return iter(self.reminders)

    def __getitem__(self, index):
        return self.reminders[index]

    def between(self, after: dt.datetime, until: dt.datetime) -> Sequence[Reminder]:
        """Reminders due in (after, until]."""
        return self.reminders[bisect_right(self.due, after.timestamp()) : bisect_right(self.due, until.timestamp())]

    def due_before(self, instant: dt.datetime) -> int:
        """How many reminders fall due at or before `instant`."""
        return bisect_right(self.due, instant.timestamp())

    def upcoming(self, now: dt.datetime, guild_id: int | None = None, count: int = 3) -> list[Reminder]:
        found = []
        for r in self.reminders[bisect_right(self.due, now.timestamp()) :]:
            if guild_id is None or r.guild_id == guild_id:
                found.append(r)
                if len(found) == count:
                    break
        return found

    def next_due(self, now: dt.datetime) -> dt.datetime | None:
        i = bisect_right(self.due, now.timestamp())
        return self.reminders[i].due_at if i < len(self.reminders) else None

    def leads_of(self, r: Reminder) -> tuple[int, ...]:
        return self._by_talk.get((r.guild_id, r.channel_id, r.talk.id), (r.lead,))


def plan_reminders(schedule: Schedule, targets: Iterable[Target], kinds: Iterable[str], run: str = LIVE) -> Plan:
    """Every reminder for the given kinds (never breaks), in the order they fall due."""
    wanted = {k for k in kinds if k != "break"}
    talks = [t for t in schedule.talks if t.kind.value in wanted]
    found = [
        Reminder(talk, lead, target.channel_id, reminder_due_at(talk, lead), target.guild_id, target.role_id, run)
        for target in targets
        for lead in target.leads
        for talk in talks
    ]
    found.sort(key=lambda r: (r.due_at, r.talk.start, r.talk.id, r.guild_id, r.channel_id))
    by_talk = {(t.guild_id, t.channel_id): tuple(sorted(set(t.leads))) for t in targets}
    leads = {(r.guild_id, r.channel_id, r.talk.id): by_talk[(r.guild_id, r.channel_id)] for r in found} if any(len(v) > 1 for v in by_talk.values()) else {}
    return Plan(tuple(found), tuple(r.due_at.timestamp() for r in found), leads)


def reminder_verdict(reminder: Reminder, now: dt.datetime, grace: dt.timedelta, plan: Plan | None = None) -> Verdict:
    """What to do with one reminder at `now` (on the schedule clock)."""
    if now >= reminder.talk.end:
        return Verdict.OVER
    if now < reminder.due_at:
        return Verdict.WAIT
    if now - reminder.due_at > grace:
        return Verdict.STALE
    if plan is not None:
        for lead in plan.leads_of(reminder):
            if lead < reminder.lead and reminder_due_at(reminder.talk, lead) <= now:
                return Verdict.SUPERSEDED
    return Verdict.SEND


def reminder_phrase(start: dt.datetime, now: dt.datetime) -> str:
    """'starts in 5 minutes', 'starting now', 'started 2 minutes ago'."""
    minutes = round((start - now).total_seconds() / 60)
    if minutes == 0:
        return "starting now"
    unit = "minute" if abs(minutes) == 1 else "minutes"
    return f"starts in {minutes} {unit}" if minutes > 0 else f"started {-minutes} {unit} ago"


def guild_targets(settings: Settings, guild_ids: Iterable[int], overrides: Mapping[int, GuildOverrides], home_guild: int | None) -> list[Target]:
    """One target per guild the bot is in, from that guild's own settings only.

    The environment's channel and role belong to one guild, the home guild (DISCORD_GUILD_ID, or
    the guild that holds REMINDER_CHANNEL_ID); leads from the environment apply everywhere. No
    guild's settings ever change another's.
    """
    targets = []
    for guild_id in sorted(set(guild_ids)):
        o = overrides.get(guild_id) or GuildOverrides(guild_id)
        if o.enabled is False:
            continue
        home = guild_id == home_guild
        channel = o.channel_id or (settings.reminder_channel_id if home else None)
        if channel is None:
            continue
        role = o.role_id if o.role_id is not None else (settings.reminder_role_id if home else None)
        targets.append(Target(channel, o.leads or settings.reminder_leads, guild_id, role or None))
    return targets


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


def continue_rehearsal(clock: Clock, store: Store, schedule: Schedule, wall_now: float | None = None) -> tuple[Clock, str]:
    """The clock and the ledger run for this start: live, or a rehearsal that survives restarts.

    A live (system) clock is returned as is, with the live run. A restart of a rehearsal resumes
    it on its timeline with its own run key; a new rehearsal that starts before what the earlier
    one covered starts over with a fresh run key (fresh nonces) and forgets the earlier rows.
    Rehearsal rows never touch the live run, so a rehearsal never silences the real day.
    """
    if not isinstance(clock, ReplayClock):
        return clock, LIVE
    session_end = max(s.end for s in schedule.sessions)
    for _ in range(5):
        saved = store.get_meta(REHEARSAL_KEY)
        earlier_run = _saved_run(saved)
        covered = store.earliest_due(earlier_run) if earlier_run else None
        wall = time.time() if wall_now is None else wall_now
        start, anchor = rehearsal_start(clock.start, clock.speed, wall, saved, session_end, covered)
        run = earlier_run if earlier_run and not start.started_over else new_run_key()
        value = json.dumps({**json.loads(anchor), "run": run})
        # Compare and set: of several processes starting one rehearsal together, one writes the
        # anchor and the others, reading it again, resume on its timeline and run.
        if value == saved or store.swap_meta(REHEARSAL_KEY, saved, value):
            break
        log.info("rehearsal: another process has just started it; joining its run")
    else:
        raise StateError(
            "the rehearsal's clock keeps changing under this process: "
            "are other bots rehearsing from another BOT_REPLAY_FROM or BOT_CLOCK_SPEED on the same state?"
        )
    if start.resumed and run == earlier_run:
        log.info("rehearsal: resuming the interrupted run %s; the clock shows %s", run, start.instant.isoformat())
        return ReplayClock(start.instant, clock.speed), run
    if start.started_over and earlier_run:
        log.info(
            "rehearsal: starting over from %s as %s; forgot %d reminder(s) of %s", start.instant.isoformat(), run, store.forget_run(earlier_run), earlier_run
        )
    return clock, run


def _saved_run(saved: str | None) -> str | None:
    try:
        run = json.loads(saved)["run"] if saved else None
    except (ValueError, KeyError, TypeError):
        return None
    return run if isinstance(run, str) and run.startswith("rehearsal-") else None


def due_reminders(plan: Plan, now: dt.datetime, grace: dt.timedelta, done: set[str]) -> tuple[list[Reminder], list[tuple[Reminder, Verdict]]]:
    """Split the not-done reminders due within the grace window into those to send (in order) and those to skip.

    Reminders due before the window are stale by definition and never looked at: a start
    mid-conference costs the same as a start before it.
    """
    send: list[Reminder] = []
    skip: list[tuple[Reminder, Verdict]] = []
    for r in plan.between(now - grace - dt.timedelta(microseconds=1), now):
        if r.id in done:
            continue
        verdict = reminder_verdict(r, now, grace, plan)
        (send.append(r) if verdict is Verdict.SEND else skip.append((r, verdict)))
    return send, skip
