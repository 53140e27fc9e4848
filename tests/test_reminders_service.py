"""ReminderService with a fake send and a fast replayed clock: order, exactly-once, restarts, faults."""

from __future__ import annotations

import asyncio
import datetime as dt
import time

import pytest

from bot.core.clock import FixedClock, ReplayClock
from bot.reminders.plan import Reminder, Target, reminder_due_at, reminder_id, reminder_phrase
from bot.reminders.service import Delivery, ReminderService, SendError
from bot.state.store import State, Store
from tests.conftest import moved, pst, wait_for

CHANNEL = 111111111111111111
KINDS = frozenset({"oral", "spotlight"})
SPEED = 3600.0  # an hour per second: the whole session in about three seconds


class FakeChannel:
    """Discord's channel as far as reminders care: nonce dedupe, and faults on demand."""

    def __init__(self) -> None:
        self.messages: list[tuple[str, int, str, dt.datetime]] = []
        self.by_nonce: dict[str, int] = {}
        self.faults: list[BaseException] = []
        self.hang_after_post: set[str] = set()  # talk ids: post, then never confirm (the process "dies")

    async def send(self, d: Delivery) -> int:
        if self.faults:
            raise self.faults.pop(0)
        if d.nonce in self.by_nonce:
            return self.by_nonce[d.nonce]
        self.messages.append((d.reminder.talk.id, d.reminder.lead, reminder_phrase(d.reminder.talk.start, d.now), d.now))
        self.by_nonce[d.nonce] = len(self.messages)
        if d.reminder.talk.id in self.hang_after_post:
            self.hang_after_post.discard(d.reminder.talk.id)
            await asyncio.Event().wait()
        return len(self.messages)


def expected_ids(schedule, after: dt.datetime | None = None) -> list[str]:
    return [t.id for t in schedule.talks if t.kind.value in KINDS and (after is None or t.start - dt.timedelta(minutes=5) >= after)]


def service_for(schedule, store, channel, clock, leads=(5,), grace=10, targets=None, **options) -> ReminderService:
    chosen = targets or [Target(CHANNEL, leads)]
    return ReminderService(schedule, clock, store, channel.send, lambda: chosen, kinds=KINDS, grace_minutes=grace, **options)


async def started(service: ReminderService) -> ReminderService:
    service.start()
    await service.replan()
    return service


def rid(schedule, talk_id: str, lead: int = 5, channel: int = CHANNEL, guild: int = 0) -> str:
    return reminder_id("live", guild, channel, talk_id, lead, reminder_due_at(schedule.talk(talk_id), lead))


async def run_until(clock, until: dt.datetime) -> None:
    while clock.now() < until:
        await asyncio.sleep(0.01)


@pytest.fixture
def store(tmp_path):
    s = Store(tmp_path / "bot.sqlite3")
    yield s
    s.close()


async def test_whole_session_once_in_order_on_time(schedule, store):
    channel = FakeChannel()
    clock = ReplayClock(pst(5, 50), SPEED)
    service = service_for(schedule, store, channel, clock)
    await started(service)
    await run_until(clock, pst(8, 40))
    await service.close()
    assert [m[0] for m in channel.messages] == expected_ids(schedule)
    # at 3600x a millisecond of real latency is 3.6 schedule seconds: allow a few schedule minutes
    assert all(m[2].startswith("starts in") for m in channel.messages), channel.messages
    for talk_id, _, _, sent_at in channel.messages:
        due = schedule.talk(talk_id).start - dt.timedelta(minutes=5)
        assert dt.timedelta(0) <= sent_at - due < dt.timedelta(minutes=5)
    assert all(row.state is State.SENT for row in store.rows())


async def test_one_wake_up_job_however_many_reminders(schedule, store):
    """One DateTrigger at the next due time (and the sweep), not a job per reminder: planning stays cheap at scale."""
    clock = ReplayClock(pst(5, 0), 1.0)
    service = service_for(schedule, store, FakeChannel(), clock, leads=(10, 2))
    await started(service)
    await service.replan()
    await asyncio.sleep(0.05)
    jobs = {job.id: job for job in service._scheduler.get_jobs()}
    assert set(jobs) == {"reminders:sweep", "reminders:next"}
    assert all(job.misfire_grace_time is None for job in jobs.values())
    first_due = reminder_due_at(schedule.talk("shooting-formulation"), 10)
    assert abs((jobs["reminders:next"].next_run_time - dt.datetime.now(dt.UTC)).total_seconds() - clock.seconds_until(first_due)) < 2
    await service.close()


async def test_kill_between_post_and_confirm_then_restart(schedule, tmp_path):
    """The process dies after Discord posted but before the ledger says sent: the restart
    re-sends with the same nonce, Discord dedupes, and every talk is announced exactly once."""
    path = tmp_path / "bot.sqlite3"
    channel = FakeChannel()
    channel.hang_after_post.add("l2-regularization-dynamics")
    clock = ReplayClock(pst(5, 50), SPEED)
    first = Store(path)
    service = service_for(schedule, first, channel, clock)
    await started(service)
    await run_until(clock, pst(6, 11))
    await service.close()  # "kill": the send of the second talk never returned
    first.close()
    second = Store(path)
    assert second.get(rid(schedule, "l2-regularization-dynamics")).state is State.CLAIMED
    clock = ReplayClock(pst(6, 13), SPEED)  # back two minutes later, inside the grace window
    service = service_for(schedule, second, channel, clock)
    await started(service)
    await run_until(clock, pst(8, 40))
    await service.close()
    assert [m[0] for m in channel.messages] == expected_ids(schedule)
    assert all(row.state is State.SENT for row in second.rows())
    assert second.get(rid(schedule, "l2-regularization-dynamics")).attempts == 2
    second.close()


async def test_restart_after_long_downtime_skips_stale_without_flood(schedule, tmp_path, caplog):
    path = tmp_path / "bot.sqlite3"
    channel = FakeChannel()
    clock = ReplayClock(pst(5, 50), SPEED)
    store = Store(path)
    service = service_for(schedule, store, channel, clock)
    await started(service)
    await run_until(clock, pst(6, 0))
    await service.close()
    store.close()
    # down from 06:00 until 07:23: the 07:10 and 07:20 spotlights' reminders are stale, 07:20's
    # (due 07:15) is 8 minutes late and inside the 10-minute grace; the next ones are on time.
    store = Store(path)
    clock = ReplayClock(pst(7, 23), SPEED)
    service = service_for(schedule, store, channel, clock)
    with caplog.at_level("INFO", logger="bot.reminders.service"):
        await started(service)
        await run_until(clock, pst(8, 40))
        await service.close()
    ids = [m[0] for m in channel.messages]
    assert ids[:2] == ["shooting-formulation", "wave-based-imaging"]
    assert channel.messages[1][2] in {"started 3 minutes ago", "started 4 minutes ago"}
    assert ids[2:] == expected_ids(schedule, after=pst(7, 23))
    # what fell due long before the restart is summed up in one line, not written row by row
    (summary,) = [r.getMessage() for r in caplog.records if "will not be posted late" in r.getMessage()]
    assert "4 fell due more than 10 min ago" in summary  # l2, compositional, hamiltonian, power-laws; 05:55 was sent
    assert store.rows(State.SKIPPED) == []
    assert not [r for r in caplog.records if r.levelname == "WARNING"]
    store.close()


async def test_transient_failures_are_retried_and_a_permanent_one_is_not(schedule, store):
    channel = FakeChannel()
    channel.faults = [ConnectionResetError("gateway gone"), SendError("503 Service Unavailable"), SendError("403 Missing Permissions", permanent=True)]
    clock = ReplayClock(pst(5, 54), 600.0)
    service = service_for(schedule, store, channel, clock)
    await started(service)
    await run_until(clock, pst(6, 12))
    await service.close()
    # two passing failures, then a 403: the first talk is refused for good and never retried
    assert [m[0] for m in channel.messages] == expected_ids(schedule)[1:2]
    first = store.get(rid(schedule, "shooting-formulation"))
    assert first.state is State.REFUSED and first.attempts == 3 and "403" in first.error
    assert store.get(rid(schedule, "l2-regularization-dynamics")).state is State.SENT


class RefusingChannel(FakeChannel):
    """One channel refuses the bot (403) every time; the others work."""

    def __init__(self, refused: int) -> None:
        super().__init__()
        self.refused = refused
        self.refusals = 0

    async def send(self, d: Delivery) -> int:
        if d.reminder.channel_id == self.refused:
            self.refusals += 1
            raise SendError(f"403 missing permission in channel {self.refused}", permanent=True)
        return await super().send(d)


async def test_a_guild_whose_channel_refuses_never_delays_another(schedule, store):
    """Guild B's channel answers 403: guild A still gets all its reminders, on time; B's are refused once each."""
    a, b = Target(CHANNEL, (5,), guild_id=1), Target(CHANNEL + 1, (5,), guild_id=2)
    channel = RefusingChannel(refused=b.channel_id)
    clock = ReplayClock(pst(5, 50), SPEED)
    service = service_for(schedule, store, channel, clock, targets=[b, a])
    await started(service)
    await run_until(clock, pst(8, 40))
    await service.close()
    assert [m[0] for m in channel.messages] == expected_ids(schedule)
    assert all(m[2].startswith("starts in") for m in channel.messages)
    assert channel.refusals == len(expected_ids(schedule))  # one try each, never retried
    assert {row.state for row in store.rows(guild_id=2)} == {State.REFUSED}
    assert {row.state for row in store.rows(guild_id=1)} == {State.SENT}


class SlowChannel(FakeChannel):
    """One channel answers 503 for a while; the other is fine."""

    def __init__(self, failing: int, failures: int) -> None:
        super().__init__()
        self.failing, self.failures = failing, failures

    async def send(self, d: Delivery) -> int:
        if d.reminder.channel_id == self.failing and self.failures:
            self.failures -= 1
            raise SendError("503 Service Unavailable")
        return await super().send(d)


async def test_a_failing_lane_retries_in_order_while_others_go_on(schedule, store):
    a, b = Target(CHANNEL, (5,), guild_id=1), Target(CHANNEL + 1, (5,), guild_id=2)
    channel = SlowChannel(failing=b.channel_id, failures=3)
    clock = ReplayClock(pst(5, 54), 600.0)
    service = service_for(schedule, store, channel, clock, targets=[a, b])
    await started(service)
    await run_until(clock, pst(6, 12))
    await service.close()
    assert [m[0] for m in channel.messages].count("shooting-formulation") == 2  # once in each guild
    assert store.get(rid(schedule, "shooting-formulation", channel=CHANNEL + 1, guild=2)).attempts == 4
    assert store.get(rid(schedule, "shooting-formulation", channel=CHANNEL, guild=1)).attempts == 1


async def test_a_postponed_talk_is_reminded_at_its_new_time(schedule, tmp_path):
    """A talk moved from 06:00 to 09:00 between restarts keeps its id and is reminded at 08:55."""
    path = tmp_path / "bot.sqlite3"
    channel = FakeChannel()
    clock = ReplayClock(pst(5, 54), SPEED)
    store = Store(path)
    service = service_for(schedule, store, channel, clock)
    await started(service)
    await run_until(clock, pst(5, 58))
    await service.close()
    store.close()
    assert [m[0] for m in channel.messages] == ["shooting-formulation"]
    later = moved(schedule, "shooting-formulation", pst(9, 0))
    store = Store(path)
    clock = ReplayClock(pst(8, 50), SPEED)
    service = service_for(later, store, channel, clock)
    await started(service)
    await run_until(clock, pst(9, 5))
    await service.close()
    store.close()
    assert [m[0] for m in channel.messages] == ["shooting-formulation", "shooting-formulation"]
    assert channel.messages[1][2] == "starts in 5 minutes" or channel.messages[1][2].startswith("starts in")


async def test_an_unconfirmed_post_is_found_in_the_channel_before_posting_again(schedule, tmp_path):
    """Past Discord's nonce window a resend would post twice: the service looks for the marker first."""
    path = tmp_path / "bot.sqlite3"
    channel = FakeChannel()
    channel.hang_after_post.add("shooting-formulation")
    clock = ReplayClock(pst(5, 54), SPEED)
    store = Store(path)
    service = service_for(schedule, store, channel, clock)
    await started(service)
    await run_until(clock, pst(5, 57))
    await service.close()  # killed between Discord's post and the ledger's "sent"
    store.close()
    channel.by_nonce.clear()  # the nonce window is over: Discord would post a repeat
    looked: list[str] = []

    async def find_sent(d: Delivery, since: dt.datetime) -> int | None:
        looked.append(d.marker)
        return 1 if d.reminder.talk.id == "shooting-formulation" else None

    store = Store(path)
    # Restarted 4 schedule minutes later, at a tenth of the speed: 6 minutes of the grace window left are
    # 0.6 real seconds, room for the dead process's lease to run out (at full speed: 0.1 s, a thread hop or two).
    service = service_for(schedule, store, channel, ReplayClock(pst(5, 59), SPEED / 10), find_sent=find_sent)
    await started(service)
    await run_until(service.clock, pst(6, 20))
    await service.close()
    assert [m[0] for m in channel.messages] == ["shooting-formulation", "l2-regularization-dynamics"]
    assert looked == [rid_marker(schedule, "shooting-formulation")]
    row = store.get(rid(schedule, "shooting-formulation"))
    assert row.state is State.SENT and row.message_id == "1"
    store.close()


def rid_marker(schedule, talk_id: str) -> str:
    from bot.reminders.plan import reminder_nonce

    return reminder_nonce(rid(schedule, talk_id))[:12]


async def test_changing_the_lead_never_reminds_a_talk_at_both_leads(schedule, store):
    """/reminders lead 5 -> 10 before any reminder: each talk is reminded once, 10 minutes before."""
    channel = FakeChannel()
    chosen = [Target(CHANNEL, (5,))]
    clock = ReplayClock(pst(5, 40), 600.0)
    service = ReminderService(schedule, clock, store, channel.send, lambda: chosen, kinds=KINDS, grace_minutes=10)
    await started(service)
    chosen[:] = [Target(CHANNEL, (10,))]
    await service.replan()
    await run_until(clock, pst(6, 40))
    await service.close()
    assert [m[0] for m in channel.messages] == expected_ids(schedule)[:3]
    assert {m[1] for m in channel.messages} == {10}
    assert all(m[2].startswith("starts in 1") for m in channel.messages)  # "starts in 10 minutes" (or 9-11 at 600x)


# --- several processes on one ledger: leases -------------------------------------------------------


def test_the_lease_is_a_third_of_the_real_window_at_most(schedule, store):
    """send_timeout + 5 s, but at most a third of the real grace window (or of what is left of the talk)."""

    def lease(speed: float, grace: float, send_timeout: float) -> float:
        clock = ReplayClock(pst(5, 0), speed)
        return service_for(schedule, store, FakeChannel(), clock, grace=grace, send_timeout=send_timeout).lease

    assert lease(1.0, 10, 15.0) == pytest.approx(20.0)  # the live day: send_timeout 15 s + 5 s
    assert lease(60.0, 10, 1.67) == pytest.approx(10 / 3)  # rehearsal at speed 60: 10 real seconds of grace
    assert lease(60.0, 10, 300.0) == pytest.approx(10 / 3)  # DMs wait up to 300 s for their turn: still a third
    assert lease(3600.0, 10, 15.0) == pytest.approx(600 / 3600 / 3)  # the window wins over the 2 s floor
    service = service_for(schedule, store, FakeChannel(), ReplayClock(pst(5, 0), 1200.0), grace=60, send_timeout=1.5)
    talk = schedule.talk("shooting-formulation")  # 06:00 to 06:15: reminded at 05:55, over 20 minutes later
    reminder = Reminder(talk, 5, CHANNEL, reminder_due_at(talk, 5))
    assert service.lease == pytest.approx(3600 / 1200 / 3)
    assert service.lease_for(reminder) == pytest.approx(20 * 60 / 1200 / 3)


class SlowStore:
    """A store one network round trip away: every call takes `delay` seconds of the calling thread."""

    def __init__(self, inner, delay: float) -> None:
        self._inner, self._delay = inner, delay

    def __getattr__(self, name: str):
        found = getattr(self._inner, name)
        if not callable(found):
            return found

        def slow(*args, **kwargs):
            time.sleep(self._delay)
            return found(*args, **kwargs)

        return slow


async def test_store_calls_never_block_the_event_loop(schedule, store):
    channel = FakeChannel()
    service = service_for(schedule, SlowStore(store, 0.15), channel, FixedClock(pst(5, 55)))
    await service.replan()
    loop, gaps = asyncio.get_running_loop(), []

    async def tick() -> None:
        while True:
            before = loop.time()
            await asyncio.sleep(0.01)
            gaps.append(loop.time() - before)

    ticker = asyncio.create_task(tick())
    await service.drain()  # get_many, claim and mark_sent: 0.45 s in all, none of it on the loop
    ticker.cancel()
    assert [m[0] for m in channel.messages] == ["shooting-formulation"]
    assert store.get(rid(schedule, "shooting-formulation")).state is State.SENT
    assert len(gaps) >= 10 and max(gaps) < 0.1, max(gaps)


async def test_a_reminder_another_process_holds_is_looked_at_again_after_its_lease(schedule, make_store):
    """Not "done forever": the drain comes back when the other process's lease runs out, looks in the
    channel's history, and sends with the same nonce. On both backends."""
    other, ours = make_store(), make_store()
    channel, looked = FakeChannel(), []

    async def find_sent(d: Delivery, since: dt.datetime) -> int | None:
        looked.append((d.nonce, len(channel.messages)))
        return None

    service = service_for(schedule, ours, channel, FixedClock(pst(5, 55)), find_sent=find_sent)
    await service.replan()
    (reminder,) = service.plan.between(pst(5, 54), pst(5, 55))
    assert other.claim(reminder.new_row(), lease=0.3)  # another process claimed it, and is sending or dead
    delay = await service.drain()
    assert delay is not None and 0.02 <= delay <= 0.32  # back when the lease runs out, not later
    assert channel.messages == [] and looked == []
    await asyncio.sleep(delay + 0.05)
    assert await service.drain() is None
    assert looked == [(reminder.nonce, 0)]  # the history first ...
    assert [m[0] for m in channel.messages] == ["shooting-formulation"] and list(channel.by_nonce) == [reminder.nonce]  # ... then the nonce
    row = ours.get(reminder.id)
    assert row.state is State.SENT and row.owner == ours.owner and row.attempts == 2


LEASE_SPEED, LEASE_GRACE = 60.0, 3  # three real seconds of grace: a lease of one second


class Process:
    """One bot process's reminder service over its own PostgresStore, posting to the shared fake Discord."""

    def __init__(self, name: str, schedule, store, discord: FakeChannel, clock, calls: list, *, posts=None, find_sent=None) -> None:
        self.name, self.discord, self.calls = name, discord, calls
        self._posts = posts or discord.send
        self.service = ReminderService(
            schedule, clock, store, self.send, lambda: [Target(CHANNEL, (5,))], kinds=KINDS, grace_minutes=LEASE_GRACE, find_sent=find_sent
        )

    async def send(self, d: Delivery) -> int:
        self.calls.append((self.name, d.reminder.talk.id, d.nonce, asyncio.get_running_loop().time()))
        return await self._posts(d)


def sends(calls: list, who: str, talk_id: str = "shooting-formulation") -> list[tuple]:
    return [c for c in calls if c[0] == who and c[1] == talk_id]


async def test_a_process_that_dies_mid_send_is_taken_over_once_after_its_lease(schedule, postgres_stores):
    discord, calls, looked = FakeChannel(), [], []
    clock = ReplayClock(pst(5, 54), LEASE_SPEED)  # 05:55's reminder is due in a real second

    async def never_returns(d: Delivery) -> int:
        await asyncio.Event().wait()
        raise AssertionError

    async def find_sent(d: Delivery, since: dt.datetime) -> int | None:
        looked.append((d.nonce, asyncio.get_running_loop().time()))
        return None

    a = Process("a", schedule, postgres_stores(), discord, clock, calls, posts=never_returns)
    b_store = postgres_stores()
    b = Process("b", schedule, b_store, discord, clock, calls, find_sent=find_sent)
    await started(a.service)
    await wait_for(lambda: sends(calls, "a"), 5)
    await a.service.close()  # a "dies" with the reminder claimed and its send in flight
    await started(b.service)
    await wait_for(lambda: discord.messages, 5)
    await b.service.close()
    ((*_, nonce, a_at),) = sends(calls, "a")
    ((*_, b_nonce, b_at),) = sends(calls, "b")
    reminder = next(r for r in b.service.plan if r.talk.id == "shooting-formulation")
    assert nonce == b_nonce == reminder.nonce
    assert b_at - a_at >= 0.95  # not before a's lease (one second) ran out
    assert b.service.lease_for(reminder) == pytest.approx(1.0)
    assert [n for n, _ in looked] == [nonce] and looked[0][1] <= b_at  # the history was read first
    assert [m[0] for m in discord.messages] == ["shooting-formulation"]
    row = b_store.get(reminder.id)
    assert row.state is State.SENT and row.owner == b_store.owner and row.attempts == 2


async def test_a_process_that_dies_after_posting_is_found_in_the_history_not_posted_again(schedule, postgres_stores):
    discord, calls = FakeChannel(), []
    discord.hang_after_post.add("shooting-formulation")
    clock = ReplayClock(pst(5, 54), LEASE_SPEED)
    posted: dict[str, int] = {}
    looked: list[float] = []

    async def find_sent(d: Delivery, since: dt.datetime) -> int | None:
        looked.append(asyncio.get_running_loop().time())
        return posted.get(d.nonce)

    a = Process("a", schedule, postgres_stores(), discord, clock, calls)
    b_store = postgres_stores()
    b = Process("b", schedule, b_store, discord, clock, calls, find_sent=find_sent)
    await started(a.service)
    await wait_for(lambda: discord.messages, 5)
    await a.service.close()  # posted, never confirmed
    posted.update(discord.by_nonce)
    discord.by_nonce.clear()  # and Discord's nonce window is over: a resend would post twice
    await started(b.service)
    reminder = next(r for r in b.service.plan if r.talk.id == "shooting-formulation")
    await wait_for(lambda: b_store.get(reminder.id).state is State.SENT, 5)
    await b.service.close()
    assert sends(calls, "b") == [] and [m[0] for m in discord.messages] == ["shooting-formulation"]
    ((*_, a_at),) = sends(calls, "a")
    assert len(looked) == 1 and looked[0] - a_at >= 0.95  # taken up (and looked for) only once a's lease ran out
    row = b_store.get(reminder.id)
    assert row.message_id == "1" and row.owner == b_store.owner


async def test_a_slow_but_live_process_keeps_its_claim_and_nothing_is_sent_twice(schedule, postgres_stores):
    """The owner renews its lease while its send is in flight: the other process never sends it."""
    discord, calls = FakeChannel(), []
    clock = ReplayClock(pst(5, 54), LEASE_SPEED)

    async def slow(d: Delivery) -> int:
        await asyncio.sleep(2.5)  # two and a half leases
        return await discord.send(d)

    a_store = postgres_stores()
    a = Process("a", schedule, a_store, discord, clock, calls, posts=slow)
    b = Process("b", schedule, postgres_stores(), discord, clock, calls, find_sent=nothing_found)
    await started(a.service)
    await wait_for(lambda: sends(calls, "a"), 5)
    await started(b.service)
    await wait_for(lambda: discord.messages, 5)
    await asyncio.sleep(0.3)
    await asyncio.gather(a.service.close(), b.service.close())
    assert sends(calls, "b") == [] and [m[0] for m in discord.messages] == ["shooting-formulation"]
    row = a_store.get(next(r.id for r in a.service.plan if r.talk.id == "shooting-formulation"))
    assert row.state is State.SENT and row.owner == a_store.owner and row.attempts == 1


async def nothing_found(d: Delivery, since: dt.datetime) -> None:
    return None


class NoRenew:
    """A store whose lease renewals never reach the database (a stalled owner): its lease lapses while it sends."""

    def __init__(self, inner) -> None:
        self._inner = inner

    def __getattr__(self, name: str):
        return getattr(self._inner, name)

    def renew(self, rid: str, *, lease: float) -> bool:
        return True


async def test_a_slow_owner_whose_lease_lapsed_causes_no_second_post(schedule, postgres_stores):
    """The next owner reads the history, then sends with the same nonce: Discord dedupes the late first send."""
    discord, calls, looked = FakeChannel(), [], []
    clock = ReplayClock(pst(5, 54), LEASE_SPEED)

    async def slow(d: Delivery) -> int:
        await asyncio.sleep(2.0)
        return await discord.send(d)

    async def find_sent(d: Delivery, since: dt.datetime) -> int | None:
        looked.append(asyncio.get_running_loop().time())
        return None

    a = Process("a", schedule, NoRenew(postgres_stores()), discord, clock, calls, posts=slow)
    b = Process("b", schedule, postgres_stores(), discord, clock, calls, find_sent=find_sent)
    await started(a.service)
    await wait_for(lambda: sends(calls, "a"), 5)
    await started(b.service)
    await wait_for(lambda: sends(calls, "b"), 5)
    await asyncio.sleep(2.0)  # a's send comes back too
    await asyncio.gather(a.service.close(), b.service.close())
    ((*_, a_nonce, a_at),) = sends(calls, "a")
    ((*_, b_nonce, b_at),) = sends(calls, "b")
    assert a_nonce == b_nonce and b_at - a_at >= 0.95 and looked and looked[0] <= b_at
    assert [m[0] for m in discord.messages] == ["shooting-formulation"]
