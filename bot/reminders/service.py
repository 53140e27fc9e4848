"""The reminder service: wakes up at each due time and sends each reminder exactly once.

One APScheduler job wakes the service at the next due time (mapped from the possibly replayed
clock onto real time), and a sweep every schedule minute is the safety net. A wake-up drains
everything due within the grace window and not yet in the ledger (bot.state), which makes it
exactly-once across restarts. Reminders go out in lanes, one per (guild, channel): a lane keeps its
own order, and a lane that fails never delays another. Sending goes through a `send` callable and
looking for an earlier, unconfirmed post through `find_sent`, so tests pass fakes.

Several processes may drain the same reminders (DM reminders are drained by every process; two
processes may hold one shard by mistake). A claim is a lease (see `ReminderService.lease`): a row
another process holds under a live lease is not ours now and is looked at again when the lease has
run out; a row whose owner died is taken up after its lease, looked for in the channel's history
first and sent with the same nonce, so that even a slow but live owner never causes a double post.
Store calls run in helper threads: a round trip to a managed PostgreSQL never blocks the event loop.
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
from bot.state.base import DONE, LIVE, LedgerRow, StateError, StateStore

log = logging.getLogger(__name__)

ON_TIME_SLACK_REAL_SECONDS = 0.5  # a wake-up this late (real time, at most a schedule minute) still counts as on time
HISTORY_SLACK = dt.timedelta(minutes=2)  # an unconfirmed post is looked for from this long before its last attempt
LEASE_SLACK_SECONDS = 5.0  # a lease outlasts the send's own timeout by this much (store round trips, a slow loop)
LEASE_MIN_SECONDS = 2.0  # ... and is never shorter, unless the grace window itself is shorter (see ReminderService.lease)
LEASE_WINDOW_SHARE = 3  # at most a third of the real window a reminder can be sent in: a dead owner's is still sent in time


def lease_seconds(window: dt.timedelta, speed: float, send_timeout: float) -> float:
    """Real seconds a claim stays its owner's (see ReminderService.lease): a share of the window on the
    schedule clock, send_timeout plus some slack where the window allows, never below 0.05 s."""
    window_real = max(0.0, window.total_seconds()) / speed
    return max(0.05, min(window_real / LEASE_WINDOW_SHARE, max(LEASE_MIN_SECONDS, send_timeout + LEASE_SLACK_SECONDS)))


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
    DONE = "done"  # sent, found, refused, skipped (by us or by another process)
    RETRY = "retry"  # a passing failure: the lane waits and tries again


@dataclass(frozen=True, slots=True)
class Busy:
    """Another process holds the reminder under a live lease: not ours now; the lane looks again in `seconds` (real)."""

    seconds: float


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
        store: StateStore,
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

    @property
    def lease(self) -> float:
        """Real seconds a claim stays ours: send_timeout + 5 s, at least 2 s, but never more than a third of the real grace window.

        Another process takes a reminder up only once its lease has run out, so the lease bounds how
        late a dead owner's reminder goes out: with a third of the window it is still sent within the
        grace, even after a further backoff. The cap wins over the 2 s floor: with the default 10
        minutes, that is 20 s at speed 1 (send_timeout 15 s) and 3.3 s at the rehearsal's speed 60
        (10 real seconds of grace). A restarted process is a new owner: it too waits out its former
        self's lease. While a send is in flight its owner renews the lease every third of it, so a
        slow but live owner keeps its claim; if it stalls anyway, the next owner looks in the
        channel's history and sends with the same nonce, which Discord dedupes.
        """
        return self._lease_within(self.grace)

    def lease_for(self, r: Reminder) -> float:
        """`lease`, or a third of the reminder's own window when its talk ends before the grace does (it is not sent once over)."""
        return self._lease_within(min(self.grace, r.talk.end - r.due_at))

    def _lease_within(self, window: dt.timedelta) -> float:
        return lease_seconds(window, self.clock.speed, self.send_timeout)

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
        past = max(0, plan.due_before(cutoff) - await asyncio.to_thread(self.store.count_before, self.run, cutoff, guilds))
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
            except StateError as err:  # the store logs an outage once when it starts and once when it ends
                log.debug("reminders: drain waits for the state (%s)", err)
                delay = 1.0
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
        rows = await asyncio.to_thread(self.store.get_many, [r.id for r in window])
        done = {rid for rid, row in rows.items() if row.state in DONE}
        send, skip = due_reminders(self.plan, now, self.grace, done)
        if skip:
            await asyncio.to_thread(self.store.skip_many, [(r.new_row(), verdict.value) for r, verdict in skip])
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
        """One (guild, channel): in order; a passing failure stops the lane until its backoff ends, another
        process's live lease until that lease has run out (then the lane finds the row sent, or takes it up)."""
        for r in reminders:
            outcome = await self._deliver(r, rows.get(r.id))
            if outcome is Outcome.DONE:
                self._lane_failures.pop(lane, None)
                self._lane_wait_until.pop(lane, None)
                continue
            if isinstance(outcome, Busy):
                delay = outcome.seconds
            else:
                self._lane_failures[lane] += 1
                delay = self._backoff(self._lane_failures[lane])
            self._lane_wait_until[lane] = asyncio.get_running_loop().time() + delay
            return delay
        return None

    def _backoff(self, failures: int) -> float:
        """Real seconds before a lane's next try: doubling, but a tenth of the grace window at most."""
        cap = min(30.0, self.grace.total_seconds() / self.clock.speed / 10)
        return max(0.02, min(0.1 * 2 ** (failures - 1), cap))

    async def _deliver(self, r: Reminder, row: LedgerRow | None) -> Outcome | Busy:
        """Claim (or take up again) and send one reminder."""
        if row is not None and row.state in DONE:
            return Outcome.DONE
        lease = self.lease_for(r)
        if row is None and await asyncio.to_thread(self.store.claim, r.new_row(), lease=lease):
            delivery = Delivery(r, r.nonce, self.clock.now())
        else:
            taken = await asyncio.to_thread(self.store.retry, r.id, lease=lease)
            if taken is None:
                return await self._not_taken(r.id, lease)
            delivery = Delivery(r, taken.nonce, self.clock.now())
            if await self._already_posted(delivery, row or taken):
                return Outcome.DONE
            log.info("reminders: re-sending %s (state was %s) with its nonce", r.id, row.state.value if row else "claimed elsewhere")
        try:
            message_id = await self._send_holding_lease(delivery, lease)
        except SendError as err:
            await asyncio.to_thread(self.store.mark_failed, r.id, str(err), permanent=err.permanent, lease=lease)
            log.warning("reminders: %s not sent%s: %s", r.id, " and not retried" if err.permanent else "", err)
            return Outcome.DONE if err.permanent else Outcome.RETRY
        except Exception as err:
            await asyncio.to_thread(self.store.mark_failed, r.id, f"{type(err).__name__}: {err}", lease=lease)
            log.warning("reminders: %s not sent (%s: %s); will retry with the same nonce", r.id, type(err).__name__, err)
            return Outcome.RETRY
        await asyncio.to_thread(self.store.mark_sent, r.id, message_id)
        log.info("reminders: sent %s as message %s", r.id, message_id)
        return Outcome.DONE

    async def _not_taken(self, rid: str, lease: float) -> Outcome | Busy:
        """Neither claimed nor taken up: done (by anyone), or another process's under a live lease.

        Then we look again when the lease runs out (measured on the store's clock, and never later
        than one lease of ours from now): the owner has sent it by then, or died and left it to us.
        """
        left = await asyncio.to_thread(self.store.lease_left, rid)
        if left is None:
            return Outcome.DONE
        log.debug("reminders: %s is another process's for %.2f s more; looking again then", rid, left)
        return Busy(min(lease, max(0.02, left + 0.01)))

    async def _send_holding_lease(self, delivery: Delivery, lease: float) -> str | int | None:
        """Send (within send_timeout), renewing our lease meanwhile, so that a slow but live send is never taken over."""
        keeper = asyncio.get_running_loop().create_task(self._keep_lease(delivery.reminder.id, lease), name="reminders:lease")
        try:
            return await asyncio.wait_for(self._send(delivery), self.send_timeout)
        finally:
            keeper.cancel()

    async def _keep_lease(self, rid: str, lease: float) -> None:
        while True:
            await asyncio.sleep(lease / 3)
            try:
                if not await asyncio.to_thread(self.store.renew, rid, lease=lease):
                    log.info("reminders: %s is no longer ours while its send is in flight; its next owner sends with the same nonce", rid)
                    return
            except Exception as err:  # the database is away: the send goes on, the lease may lapse
                log.warning("reminders: could not renew the lease on %s (%s)", rid, err)

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
        await asyncio.to_thread(self.store.mark_sent, row.id, found)
        log.info("reminders: %s was already posted as message %s; not posting it again", row.id, found)
        return True

    def status(self, now: dt.datetime, guild_id: int, count: int = 3) -> ReminderStatus:
        """One guild's view: its next reminders, its last one sent, its failures. Nothing of other guilds."""
        upcoming = self.plan.upcoming(now, guild_id, count)
        return ReminderStatus(tuple(upcoming), self.store.last_sent(self.run, guild_id), tuple(self.store.failures(self.run, guild_id)))
