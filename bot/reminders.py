"""Reminders before talks: which exist and when they are due (pure), and the service that sends them.

The pure half takes `now` and answers "what is due, what is stale". The ReminderService wakes up
with APScheduler at each due time (mapped from the possibly replayed clock onto real time) and
then drains, in order, everything due and not yet in the ledger; the ledger (bot.store) makes it
exactly-once across restarts. Sending goes through a `send` callable, so tests pass a fake.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import hashlib
import logging
import time
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import TextIO

from apscheduler.schedulers.asyncio import AsyncIOScheduler
from apscheduler.triggers.date import DateTrigger
from apscheduler.triggers.interval import IntervalTrigger

from bot.clock import Clock, ReplayClock, rehearsal_start
from bot.config import Settings
from bot.schedule import Schedule, Talk
from bot.store import DONE, GuildOverrides, LedgerRow, State, Store

log = logging.getLogger(__name__)

NONCE_LENGTH = 25  # Discord refuses longer nonces
ON_TIME_SLACK_REAL_SECONDS = 0.5  # a wake-up this late (real time, at most a schedule minute) still counts as on time


# --------------------------------------------------------------------------- pure planning


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


# --------------------------------------------------------------------------- the service


class SendError(Exception):
    """A send that failed; `permanent` for a missing permission or an unknown channel."""

    def __init__(self, message: str, *, permanent: bool = False) -> None:
        super().__init__(message)
        self.permanent = permanent


@dataclass(frozen=True, slots=True)
class Delivery:
    reminder: Reminder
    nonce: str
    now: dt.datetime  # the schedule clock at the moment of sending, for the wording


Send = Callable[[Delivery], Awaitable[str | int | None]]
Skipped = Callable[[Reminder, Verdict], None]


class ReminderService:
    """Wakes at each due time and drains due reminders in order through `send`, one at a time."""

    def __init__(
        self,
        schedule: Schedule,
        clock: Clock,
        store: Store,
        send: Send,
        targets: Callable[[], Sequence[Target]],
        *,
        kinds: Iterable[str],
        grace_minutes: float,
        send_timeout: float = 15.0,
    ) -> None:
        self.schedule, self.clock, self.store, self._send, self._targets = schedule, clock, store, send, targets
        self.kinds = frozenset(kinds)
        self.grace_minutes = grace_minutes
        self.send_timeout = send_timeout
        self.plan: list[Reminder] = []
        self._scheduler: AsyncIOScheduler | None = None
        self._wake = asyncio.Event()
        self._worker: asyncio.Task | None = None
        self._retry: asyncio.TimerHandle | None = None
        self._failures = 0
        self.idle = asyncio.Event()  # set whenever a drain finished with nothing left to do now

    @property
    def grace(self) -> dt.timedelta:
        """The grace window on the schedule clock, never shorter than a small real-time slack."""
        slack = dt.timedelta(seconds=min(ON_TIME_SLACK_REAL_SECONDS * self.clock.speed, 60.0))
        return max(dt.timedelta(minutes=self.grace_minutes), slack)

    def start(self) -> None:
        """Start the scheduler and the worker; needs a running event loop (call from setup_hook)."""
        logging.getLogger("apscheduler").setLevel(max(logging.WARNING, log.getEffectiveLevel()))  # not a line per wake-up
        self._scheduler = AsyncIOScheduler(timezone=dt.UTC)
        sweep = min(30.0, max(0.5, 60.0 / self.clock.speed))  # about one schedule minute, as a safety net
        self._scheduler.add_job(
            self._job,
            IntervalTrigger(seconds=sweep),
            id="reminders:sweep",
            name="reminders:sweep",
            replace_existing=True,
            misfire_grace_time=None,
            coalesce=True,
        )
        self._scheduler.start()
        self.reschedule()
        self._worker = asyncio.get_running_loop().create_task(self._work(), name="reminders")
        self.wake()

    def reschedule(self) -> None:
        """(Re)build one DateTrigger job per future (talk, lead): stable ids, replace_existing, no duplicates."""
        self.plan = plan_reminders(self.schedule, self._targets(), self.kinds)
        if self._scheduler is None:
            return
        real_now = dt.datetime.now(dt.UTC)
        wanted: dict[str, dt.datetime] = {}
        for r in self.plan:
            wait = self.clock.seconds_until(r.due_at)
            if wait > 0:
                wanted.setdefault(f"reminder:{r.talk.id}:{r.lead}", real_now + dt.timedelta(seconds=wait))
        for job in self._scheduler.get_jobs():
            if job.id.startswith("reminder:") and job.id not in wanted:
                job.remove()
        for job_id, run_date in wanted.items():
            # misfire_grace_time=None: the job only wakes the drain, which applies the grace window on the
            # schedule clock; APScheduler's own 1 s default would silently drop a late wake-up.
            self._scheduler.add_job(self._job, DateTrigger(run_date=run_date), id=job_id, name=job_id, replace_existing=True, misfire_grace_time=None)
        log.info("reminders: %d planned, %d job(s) scheduled on %r", len(self.plan), len(wanted), self.clock)
        self.wake()

    async def _job(self) -> None:
        """A coroutine, so APScheduler's AsyncIOExecutor runs it on the loop, not in a thread."""
        self.wake()

    def wake(self) -> None:
        self.idle.clear()
        self._wake.set()

    async def close(self) -> None:
        if self._scheduler is not None:
            self._scheduler.shutdown(wait=False)
            self._scheduler = None
        if self._retry is not None:
            self._retry.cancel()
        if self._worker is not None:
            self._worker.cancel()
            await asyncio.gather(self._worker, return_exceptions=True)
            self._worker = None

    async def _work(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            try:
                delay = await self.drain()
            except Exception:
                log.exception("reminders: drain failed; retrying")
                delay = 1.0
            if delay is None:
                self._failures = 0
                self.idle.set()
            else:
                self._retry = asyncio.get_running_loop().call_later(delay, self.wake)

    async def drain(self) -> float | None:
        """Send everything due and not done, in order; the real seconds to wait before retrying, if one failed."""
        now = self.clock.now()
        done = {row.id for row in self.store.rows(*DONE)}
        send, skip = due_reminders(self.plan, now, self.grace, done)
        for r, verdict in skip:
            self.store.skip(r.id, verdict.value, talk_id=r.talk.id, lead=r.lead, channel_id=r.channel_id, nonce=r.nonce, due_at=r.due_at)
            log.warning("reminders: skipped %s (%s min before %r): %s on %s", r.id, r.lead, r.talk.title[:60], verdict.value, now.isoformat())
        for r in send:
            if not await self._deliver(r):
                self._failures += 1
                return self._backoff()
            self._failures = 0
        return None

    def _backoff(self) -> float:
        """Real seconds before the next try: doubling, but a tenth of the grace window at most."""
        cap = min(30.0, self.grace.total_seconds() / self.clock.speed / 10)
        return max(0.02, min(0.1 * 2 ** (self._failures - 1), cap))

    async def _deliver(self, r: Reminder) -> bool:
        """Claim (or take up again) and send one reminder; True when it needs no retry."""
        row = self.store.get(r.id)
        if row is None:
            if not self.store.claim(r.id, talk_id=r.talk.id, lead=r.lead, channel_id=r.channel_id, nonce=r.nonce, due_at=r.due_at):
                return True
            nonce = r.nonce
        else:
            if row.state in DONE or self.store.retry(r.id) is None:
                return True
            nonce = row.nonce
            log.info("reminders: re-sending %s (state was %s) with its nonce", r.id, row.state.value)
        try:
            message_id = await asyncio.wait_for(self._send(Delivery(r, nonce, self.clock.now())), self.send_timeout)
        except SendError as err:
            self.store.mark_failed(r.id, str(err))
            log.warning("reminders: %s not sent: %s", r.id, err)
            return False
        except Exception as err:
            self.store.mark_failed(r.id, f"{type(err).__name__}: {err}")
            log.warning("reminders: %s not sent (%s: %s); will retry with the same nonce", r.id, type(err).__name__, err)
            return False
        self.store.mark_sent(r.id, message_id)
        log.info("reminders: sent %s as message %s", r.id, message_id)
        return True

    def status(self, now: dt.datetime, count: int = 3) -> ReminderStatus:
        rows = self.store.rows()
        upcoming = [r for r in self.plan if r.due_at > now][:count]
        sent = [row for row in rows if row.state is State.SENT]
        last = max(sent, key=lambda row: row.updated_at) if sent else None
        failures = [row for row in rows if row.error]
        return ReminderStatus(tuple(upcoming), last, tuple(failures[-5:]))


@dataclass(frozen=True, slots=True)
class ReminderStatus:
    upcoming: tuple[Reminder, ...]
    last_sent: LedgerRow | None
    failures: tuple[LedgerRow, ...] = ()
