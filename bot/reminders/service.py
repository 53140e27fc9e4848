"""The reminder service: wakes up with APScheduler at each due time and sends exactly once.

It wakes at each due time (mapped from the possibly replayed clock onto real time) and then
drains, in order, everything due and not yet in the ledger; the ledger (bot.state) makes it
exactly-once across restarts. Sending goes through a `send` callable, so tests pass a fake.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass

from apscheduler.schedulers.asyncio import AsyncIOScheduler
from apscheduler.triggers.date import DateTrigger
from apscheduler.triggers.interval import IntervalTrigger

from bot.core.clock import Clock
from bot.core.schedule import Schedule
from bot.reminders.plan import Reminder, Target, Verdict, due_reminders, plan_reminders
from bot.state.store import DONE, LedgerRow, State, Store

log = logging.getLogger(__name__)

ON_TIME_SLACK_REAL_SECONDS = 0.5  # a wake-up this late (real time, at most a schedule minute) still counts as on time


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
