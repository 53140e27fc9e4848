"""ReminderService with a fake send and a fast replayed clock: order, exactly-once, restarts, faults."""

from __future__ import annotations

import asyncio
import datetime as dt

import pytest

from bot.core.clock import ReplayClock
from bot.reminders.plan import Target, reminder_phrase
from bot.reminders.service import Delivery, ReminderService, SendError
from bot.state.store import State, Store
from tests.conftest import pst

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


def service_for(schedule, store, channel, clock, leads=(5,), grace=10) -> ReminderService:
    return ReminderService(schedule, clock, store, channel.send, lambda: [Target(CHANNEL, leads)], kinds=KINDS, grace_minutes=grace)


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
    service.start()
    await run_until(clock, pst(8, 40))
    await service.close()
    assert [m[0] for m in channel.messages] == expected_ids(schedule)
    # at 3600x a millisecond of real latency is 3.6 schedule seconds: allow a few schedule minutes
    assert all(m[2].startswith("starts in") for m in channel.messages)
    for talk_id, _, _, sent_at in channel.messages:
        due = schedule.talk(talk_id).start - dt.timedelta(minutes=5)
        assert dt.timedelta(0) <= sent_at - due < dt.timedelta(minutes=5)
    assert all(row.state is State.SENT for row in store.rows())


async def test_jobs_have_stable_ids_and_rebuild_without_duplicates(schedule, store):
    clock = ReplayClock(pst(5, 0), 1.0)
    service = service_for(schedule, store, FakeChannel(), clock, leads=(10, 2))
    service.start()
    service.reschedule()
    service.reschedule()
    ids = [job.id for job in service._scheduler.get_jobs() if job.id.startswith("reminder:")]
    assert len(ids) == len(set(ids)) == 2 * len(expected_ids(schedule))
    assert all(job.misfire_grace_time is None for job in service._scheduler.get_jobs())
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
    service.start()
    await run_until(clock, pst(6, 11))
    await service.close()  # "kill": the send of the second talk never returned
    first.close()
    second = Store(path)
    assert second.get(f"l2-regularization-dynamics:5:{CHANNEL}").state is State.CLAIMED
    clock = ReplayClock(pst(6, 13), SPEED)  # back two minutes later, inside the grace window
    service = service_for(schedule, second, channel, clock)
    service.start()
    await run_until(clock, pst(8, 40))
    await service.close()
    assert [m[0] for m in channel.messages] == expected_ids(schedule)
    assert all(row.state is State.SENT for row in second.rows())
    assert second.get(f"l2-regularization-dynamics:5:{CHANNEL}").attempts == 2
    second.close()


async def test_restart_after_long_downtime_skips_stale_without_flood(schedule, tmp_path, caplog):
    path = tmp_path / "bot.sqlite3"
    channel = FakeChannel()
    clock = ReplayClock(pst(5, 50), SPEED)
    store = Store(path)
    service = service_for(schedule, store, channel, clock)
    service.start()
    await run_until(clock, pst(6, 0))
    await service.close()
    store.close()
    # down from 06:00 until 07:23: the 07:10 and 07:20 spotlights' reminders are stale, 07:20's
    # (due 07:15) is 8 minutes late and inside the 10-minute grace; the next ones are on time.
    store = Store(path)
    clock = ReplayClock(pst(7, 23), SPEED)
    service = service_for(schedule, store, channel, clock)
    with caplog.at_level("WARNING", logger="bot.reminders.service"):
        service.start()
        await run_until(clock, pst(8, 40))
        await service.close()
    ids = [m[0] for m in channel.messages]
    assert ids[:2] == ["shooting-formulation", "wave-based-imaging"]
    assert channel.messages[1][2] in {"started 3 minutes ago", "started 4 minutes ago"}
    assert ids[2:] == expected_ids(schedule, after=pst(7, 23))
    skipped = {row.talk_id for row in store.rows(State.SKIPPED)}
    assert {"l2-regularization-dynamics", "hamiltonian-lagrangian-constraints", "power-laws-deep-ensembles"} <= skipped
    assert "skipped" in caplog.text
    store.close()


async def test_transient_and_permanent_failures_retried_once_each(schedule, store):
    channel = FakeChannel()
    channel.faults = [ConnectionResetError("gateway gone"), SendError("503 Service Unavailable"), SendError("403 Missing Permissions", permanent=True)]
    clock = ReplayClock(pst(5, 54), 600.0)
    service = service_for(schedule, store, channel, clock)
    service.start()
    await run_until(clock, pst(6, 12))
    await service.close()
    assert [m[0] for m in channel.messages] == expected_ids(schedule)[:2]
    first = store.get(f"shooting-formulation:5:{CHANNEL}")
    assert first.state is State.SENT and first.attempts == 4
    assert channel.messages[0][2].startswith("starts in")  # retried within the same schedule minutes
