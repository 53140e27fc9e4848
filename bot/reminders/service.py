"""The reminder service: wakes up at each due time and sends each reminder exactly once.

One APScheduler job wakes the service at the next due time (mapped from the possibly replayed
clock onto real time), and a sweep every schedule minute is the safety net. A wake-up drains
everything due within the grace window and not yet in the ledger (bot.state), which makes it
exactly-once across restarts. Reminders go out in lanes, one per (guild, channel): a lane keeps its
own order, and a lane that fails never delays another. Sending goes through a `send` callable and
looking for an earlier, unconfirmed post through `find_sent`, so tests pass fakes.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
from collections import Counter
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass
from enum import Enum

from apscheduler.schedulers.asyncio import AsyncIOScheduler
from apscheduler.triggers.date import DateTrigger
from apscheduler.triggers.interval import IntervalTrigger

from bot.core.clock import Clock
from bot.core.schedule import Schedule
from bot.reminders.plan import Plan, Reminder, Target, due_reminders, plan_reminders
from bot.state.store import DONE, LIVE, LedgerRow, Store

log = logging.getLogger(__name__)

ON_TIME_SLACK_REAL_SECONDS = 0.5  # a wake-up this late (real time, at most a schedule minute) still counts as on time
HISTORY_SLACK = dt.timedelta(minutes=2)  # an unconfirmed post is looked for from this long before its last attempt


class SendError(Exception):
    """A send that failed; `permanent` for a missing permission or an unknown channel (never retried)."""

    def __init__(self, message: str, *, permanent: bool = False) -> None:
        super().__init__(message)
        self.permanent = permanent


@dataclass(frozen=True, slots=True)
class Delivery:
    reminder: Reminder
    nonce: str
    now: dt.datetime  # the schedule clock at the moment of sending, for the wording

    @property
    def marker(self) -> str:
        """Shown in the post, so that a restart can find it again in the channel's history."""
        return self.nonce[: len(self.reminder.marker)]


Send = Callable[[Delivery], Awaitable[str | int | None]]
# Looks in the channel's recent messages (posted after `since`, real UTC) for this delivery's marker.
FindSent = Callable[[Delivery, dt.datetime], Awaitable[str | int | None]]


class Outcome(Enum):
    DONE = "done"  # sent, found, refused for good, or not ours to send
    RETRY = "retry"  # a passing failure: the lane waits and tries again


@dataclass(frozen=True, slots=True)
class ReminderStatus:
    upcoming: tuple[Reminder, ...]
    last_sent: LedgerRow | None
    failures: tuple[LedgerRow, ...] = ()


class ReminderService:
    """Wakes at each due time and drains due reminders, lane by lane, through `send`."""

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
        run: str = LIVE,
        send_timeout: float = 15.0,
        find_sent: FindSent | None = None,
        planner: Callable[[Schedule, str], Plan] | None = None,
    ) -> None:
        """`planner` (schedule, run) -> Plan replaces planning from `targets` (personal reminders plan from follows)."""
        self.schedule, self.clock, self.store, self._send, self._targets = schedule, clock, store, send, targets
        self.kinds = frozenset(kinds)
        self.grace_minutes = grace_minutes
        self.run = run
        self.send_timeout = send_timeout
        self._find_sent = find_sent
        self._planner = planner
        self.plan = Plan()
        self._scheduler: AsyncIOScheduler | None = None
        self._wake = asyncio.Event()
        self._worker: asyncio.Task | None = None
        self._retry: asyncio.TimerHandle | None = None
        self._lane_failures: Counter[tuple[int, int]] = Counter()
        self._lane_wait_until: dict[tuple[int, int], float] = {}
        self.idle = asyncio.Event()  # set whenever a drain finished with nothing left to do now

    @property
    def grace(self) -> dt.timedelta:
        """The grace window on the schedule clock, never shorter than a small real-time slack."""
        slack = dt.timedelta(seconds=min(ON_TIME_SLACK_REAL_SECONDS * self.clock.speed, 60.0))
        return max(dt.timedelta(minutes=self.grace_minutes), slack)

    def start(self) -> None:
        """Start the scheduler and the worker; needs a running event loop (call from setup_hook).

        Nothing is planned until `replan()`: the guilds, and so the targets, are known only once
        the gateway is ready.
        """
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
        self._worker = asyncio.get_running_loop().create_task(self._work(), name="reminders")

    async def replan(self) -> None:
        """Plan again from the current targets (built in a thread: tens of thousands of reminders at scale)."""
        targets = list(self._targets())
        if self._planner is not None:
            plan = await asyncio.to_thread(self._planner, self.schedule, self.run)
            guilds = {r.guild_id for r in plan}
        else:
            plan = await asyncio.to_thread(plan_reminders, self.schedule, targets, self.kinds, self.run)
            guilds = {t.guild_id for t in targets}
        self.plan = plan
        now = self.clock.now()
        cutoff = now - self.grace
        past = max(0, plan.due_before(cutoff) - self.store.count_before(self.run, cutoff, guilds))
        whom = f"{len({r.channel_id for r in plan})} user(s)" if self._planner is not None else f"{len(targets)} guild(s)"
        log.info(
            "reminders: %d planned for %s on %r (run %s)%s",
            len(plan),
            whom,
            self.clock,
            self.run,
            f"; {past} fell due more than {self.grace_minutes:g} min ago and will not be posted late" if past else "",
        )
        self._arm(now)
        self.wake()

    def _arm(self, now: dt.datetime) -> None:
        """One job wakes the service at the next due time; the sweep covers anything else."""
        if self._scheduler is None:
            return
        upcoming = self.plan.next_due(now)
        if upcoming is None:
            return
        run_date = dt.datetime.now(dt.UTC) + dt.timedelta(seconds=max(0.0, self.clock.seconds_until(upcoming)))
        # misfire_grace_time=None: the job only wakes the drain, which applies the grace window on the
        # schedule clock; APScheduler's own 1 s default would silently drop a late wake-up.
        self._scheduler.add_job(
            self._job, DateTrigger(run_date=run_date), id="reminders:next", name="reminders:next", replace_existing=True, misfire_grace_time=None
        )

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
            if self._retry is not None:
                self._retry.cancel()
                self._retry = None
            if delay is None:
                self.idle.set()
            else:
                self._retry = asyncio.get_running_loop().call_later(delay, self.wake)
            self._arm(self.clock.now())

    async def drain(self) -> float | None:
        """Send everything due and not done, each lane in order; the real seconds until a lane retries, if one must."""
        now = self.clock.now()
        window = self.plan.between(now - self.grace - dt.timedelta(microseconds=1), now)
        if not window:
            return None
        rows = self.store.get_many(r.id for r in window)
        done = {rid for rid, row in rows.items() if row.state in DONE}
        send, skip = due_reminders(self.plan, now, self.grace, done)
        if skip:
            self.store.skip_many((r.new_row(), verdict.value) for r, verdict in skip)
            counts = Counter(verdict.value for _, verdict in skip)
            log.info("reminders: not posting %d reminder(s) (%s) at %s", len(skip), ", ".join(f"{n} {v}" for v, n in sorted(counts.items())), now.isoformat())
            for r, verdict in skip:
                log.debug("reminders: skipped %s (%s min before %r): %s", r.id, r.lead, r.talk.title[:60], verdict.value)
        lanes: dict[tuple[int, int], list[Reminder]] = {}
        for r in send:
            lanes.setdefault(r.lane, []).append(r)
        loop_now = asyncio.get_running_loop().time()
        waiting = [self._lane_wait_until[lane] - loop_now for lane in lanes if self._lane_wait_until.get(lane, 0.0) > loop_now]
        ready = {lane: items for lane, items in lanes.items() if self._lane_wait_until.get(lane, 0.0) <= loop_now}
        delays = await asyncio.gather(*(self._run_lane(lane, items, rows) for lane, items in ready.items()))
        pending = [d for d in (*delays, *waiting) if d is not None]
        return max(0.02, min(pending)) if pending else None

    async def _run_lane(self, lane: tuple[int, int], reminders: list[Reminder], rows: dict[str, LedgerRow]) -> float | None:
        """One (guild, channel): in order; a passing failure stops the lane until its backoff ends."""
        for r in reminders:
            if await self._deliver(r, rows.get(r.id)) is Outcome.RETRY:
                self._lane_failures[lane] += 1
                delay = self._backoff(self._lane_failures[lane])
                self._lane_wait_until[lane] = asyncio.get_running_loop().time() + delay
                return delay
            self._lane_failures.pop(lane, None)
            self._lane_wait_until.pop(lane, None)
        return None

    def _backoff(self, failures: int) -> float:
        """Real seconds before a lane's next try: doubling, but a tenth of the grace window at most."""
        cap = min(30.0, self.grace.total_seconds() / self.clock.speed / 10)
        return max(0.02, min(0.1 * 2 ** (failures - 1), cap))

    async def _deliver(self, r: Reminder, row: LedgerRow | None) -> Outcome:
        """Claim (or take up again) and send one reminder."""
        if row is None:
            if not self.store.claim(r.new_row()):
                return Outcome.DONE  # another process claimed it first
            delivery = Delivery(r, r.nonce, self.clock.now())
        else:
            if row.state in DONE or self.store.retry(r.id) is None:
                return Outcome.DONE
            delivery = Delivery(r, row.nonce, self.clock.now())
            if await self._already_posted(delivery, row):
                return Outcome.DONE
            log.info("reminders: re-sending %s (state was %s) with its nonce", r.id, row.state.value)
        try:
            message_id = await asyncio.wait_for(self._send(delivery), self.send_timeout)
        except SendError as err:
            self.store.mark_failed(r.id, str(err), permanent=err.permanent)
            log.warning("reminders: %s not sent%s: %s", r.id, " and not retried" if err.permanent else "", err)
            return Outcome.DONE if err.permanent else Outcome.RETRY
        except Exception as err:
            self.store.mark_failed(r.id, f"{type(err).__name__}: {err}")
            log.warning("reminders: %s not sent (%s: %s); will retry with the same nonce", r.id, type(err).__name__, err)
            return Outcome.RETRY
        self.store.mark_sent(r.id, message_id)
        log.info("reminders: sent %s as message %s", r.id, message_id)
        return Outcome.DONE

    async def _already_posted(self, delivery: Delivery, row: LedgerRow) -> bool:
        """An earlier attempt may have reached Discord after the nonce window closed: look before posting again."""
        if self._find_sent is None:
            return False
        try:
            found = await asyncio.wait_for(self._find_sent(delivery, row.updated_at - HISTORY_SLACK), self.send_timeout)
        except Exception as err:
            log.warning("reminders: could not read channel %s's history to check %s (%s); sending with its nonce", row.channel_id, row.id, err)
            return False
        if found is None:
            return False
        self.store.mark_sent(row.id, found)
        log.info("reminders: %s was already posted as message %s; not posting it again", row.id, found)
        return True

    def status(self, now: dt.datetime, guild_id: int, count: int = 3) -> ReminderStatus:
        """One guild's view: its next reminders, its last one sent, its failures. Nothing of other guilds."""
        upcoming = self.plan.upcoming(now, guild_id, count)
        return ReminderStatus(tuple(upcoming), self.store.last_sent(self.run, guild_id), tuple(self.store.failures(self.run, guild_id)))
