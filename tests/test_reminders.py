"""Pure reminder planning at fixed instants: due times, ids, wording, grace and staleness."""

from __future__ import annotations

import datetime as dt
import io

from bot.config import Settings
from bot.core.clock import FixedClock
from bot.reminders.plan import (
    Target,
    Verdict,
    due_reminders,
    guild_targets,
    plan_reminders,
    print_plan,
    reminder_due_at,
    reminder_id,
    reminder_nonce,
    reminder_phrase,
    reminder_verdict,
)
from bot.state.store import GuildOverrides
from tests.conftest import pst

CHANNEL = 111111111111111111
GRACE = dt.timedelta(minutes=10)
KINDS = frozenset({"oral", "spotlight"})


def test_due_at_is_start_minus_lead(schedule):
    talk = schedule.talk("shooting-formulation")
    assert reminder_due_at(talk, 5) == pst(5, 55)
    assert reminder_due_at(talk, 0) == talk.start


def test_ids_and_nonces_are_stable_short_and_apart_per_run_guild_and_time():
    due = pst(5, 55)
    rid = reminder_id("live", 7, CHANNEL, "t", 5, due)
    nonce = reminder_nonce(rid)
    assert nonce == reminder_nonce(reminder_id("live", 7, CHANNEL, "t", 5, due))
    assert len(nonce) <= 25
    others = [
        reminder_id("rehearsal-1", 7, CHANNEL, "t", 5, due),  # a rehearsal is never the live day
        reminder_id("live", 8, CHANNEL, "t", 5, due),  # another guild
        reminder_id("live", 7, CHANNEL + 1, "t", 5, due),
        reminder_id("live", 7, CHANNEL, "t", 2, due),
        reminder_id("live", 7, CHANNEL, "t", 5, pst(8, 55)),  # the talk moved
    ]
    assert len({rid, *others}) == 6
    assert len({nonce, *(reminder_nonce(o) for o in others)}) == 6


def test_plan_covers_orals_and_spotlights_only_in_order(schedule):
    plan = plan_reminders(schedule, [Target(CHANNEL, (5,))], KINDS)
    kinds = {r.talk.kind.value for r in plan}
    assert kinds == {"oral", "spotlight"}
    assert len(plan) == sum(t.kind.value in KINDS for t in schedule.talks)
    assert [r.due_at for r in plan] == sorted(r.due_at for r in plan)
    assert plan[0].talk.id == "shooting-formulation"


def test_breaks_never_planned_even_if_asked(schedule):
    plan = plan_reminders(schedule, [Target(CHANNEL, (5,))], {"oral", "spotlight", "qa", "break"})
    assert all(r.talk.kind.value != "break" for r in plan)
    assert any(r.talk.kind.value == "qa" for r in plan)


def test_several_leads_interleave_by_due_time(schedule):
    plan = plan_reminders(schedule, [Target(CHANNEL, (10, 2))], KINDS)
    assert len(plan) == 2 * sum(t.kind.value in KINDS for t in schedule.talks)
    assert [r.due_at for r in plan] == sorted(r.due_at for r in plan)


def test_phrases():
    start = pst(6)
    assert reminder_phrase(start, pst(5, 55)) == "starts in 5 minutes"
    assert reminder_phrase(start, pst(5, 59)) == "starts in 1 minute"
    assert reminder_phrase(start, start + dt.timedelta(seconds=20)) == "starting now"
    assert reminder_phrase(start, pst(6, 2)) == "started 2 minutes ago"
    assert reminder_phrase(start, pst(6, 1)) == "started 1 minute ago"


def test_verdicts_before_on_time_late_stale_over(schedule):
    clock = FixedClock(pst(5, 50))
    (first,) = [r for r in plan_reminders(schedule, [Target(CHANNEL, (5,))], KINDS) if r.talk.id == "shooting-formulation"]
    assert reminder_verdict(first, clock.now(), GRACE) is Verdict.WAIT
    clock.advance(minutes=5)
    assert reminder_verdict(first, clock.now(), GRACE) is Verdict.SEND
    clock.advance(minutes=10)  # 06:05, ten minutes late: still inside the grace window
    assert reminder_verdict(first, clock.now(), GRACE) is Verdict.SEND
    clock.advance(minutes=1)
    assert reminder_verdict(first, clock.now(), GRACE) is Verdict.STALE
    assert reminder_verdict(first, first.talk.end, dt.timedelta(hours=5)) is Verdict.OVER


def test_shorter_lead_supersedes_a_late_longer_one(schedule):
    plan = plan_reminders(schedule, [Target(CHANNEL, (10, 2))], KINDS)
    send, skip = due_reminders(plan, pst(5, 59), GRACE, set())
    assert [(r.talk.id, r.lead) for r in send] == [("shooting-formulation", 2)]
    assert [(r.talk.id, r.lead, v) for r, v in skip] == [("shooting-formulation", 10, Verdict.SUPERSEDED)]


def test_no_flood_on_a_late_start(schedule):
    """Started at 07:26 with a 15-minute grace: only what fell due since 07:11 goes out."""
    plan = plan_reminders(schedule, [Target(CHANNEL, (5,))], KINDS)
    grace = dt.timedelta(minutes=15)
    send, skip = due_reminders(plan, pst(7, 26), grace, set())
    assert [r.talk.id for r in send] == ["wave-based-imaging", "early-time-learning-dynamics"]
    assert all(v in {Verdict.STALE, Verdict.OVER} for _, v in skip)
    done = {r.id for r in send} | {r.id for r, _ in skip}
    assert due_reminders(plan, pst(7, 26), grace, done) == ([], [])


def test_print_plan_marks_past(schedule):
    out = io.StringIO()
    settings = Settings(reminder_channel_id=CHANNEL)
    assert print_plan(schedule, settings, pst(7, 0), out) == 0
    text = out.getvalue()
    assert "13:55 UTC  05:55 PST" in text
    assert "[past" in text
    assert "Break" not in text
    lines = [line for line in text.splitlines() if " UTC  " in line]
    assert len(lines) == sum(t.kind.value in KINDS for t in schedule.talks)


def test_each_guild_gets_only_its_own_settings():
    """Guild B's settings never change guild A's: the environment's channel belongs to the home guild only."""
    settings = Settings(reminder_channel_id=CHANNEL, reminder_leads=(5,), reminder_role_id=99)
    home, other = 7, 8
    assert guild_targets(settings, [home, other], {}, home) == [Target(CHANNEL, (5,), home, 99)]
    b_off = {other: GuildOverrides(other, enabled=False)}
    assert guild_targets(settings, [home, other], b_off, home) == [Target(CHANNEL, (5,), home, 99)]
    b_moved = {other: GuildOverrides(other, channel_id=222, leads=(10, 2))}
    assert guild_targets(settings, [home, other], b_moved, home) == [Target(CHANNEL, (5,), home, 99), Target(222, (10, 2), other, None)]
    assert guild_targets(settings, [home], {home: GuildOverrides(home, enabled=False)}, home) == []
    assert guild_targets(settings, [home], {home: GuildOverrides(home, role_id=0)}, home) == [Target(CHANNEL, (5,), home, None)]
    assert guild_targets(settings, [other], b_moved, None) == [Target(222, (10, 2), other, None)]
    assert guild_targets(settings, [], b_moved, home) == []  # a guild the bot is not in gets nothing


def test_console_ticker_prints_each_due_reminder_once(schedule):
    from bot.console.app import ReminderTicker
    from tests.conftest import PST

    clock = FixedClock(pst(5, 40))
    ticker = ReminderTicker(schedule, clock, Settings(), PST, io.StringIO())
    assert ticker.tick() == []
    clock.advance(minutes=15)
    assert ticker.tick() == ["⏰ Oral starts in 5 minutes (06:00 PST): A shooting formulation of deep learning"]
    assert ticker.tick() == []
    clock.advance(minutes=80)  # 07:15: the 06:xx and 07:00 ones are over or stale, silently; 07:05 is 10 min late
    assert [line.split(": ", 1)[1] for line in ticker.tick()] == ["On Power Laws in Deep Ensembles", "Learning the Geometry of Wave-Based Imaging"]


# ------------------------------------------------------------------ rehearsals across restarts


def test_a_restarted_rehearsal_resumes_on_its_own_timeline_and_run(schedule, tmp_path):
    from bot.core.clock import ReplayClock
    from bot.reminders.plan import continue_rehearsal
    from bot.state.store import Store

    store = Store(tmp_path / "state.sqlite3")
    begin = pst(5, 50)
    first, run = continue_rehearsal(ReplayClock(begin, 60), store, schedule, wall_now=1000.0)
    assert abs((first.now() - begin).total_seconds()) < 5
    assert run.startswith("rehearsal-")
    # killed, started again 90 real seconds later with the same BOT_REPLAY_FROM: 90 schedule minutes on
    again, run_again = continue_rehearsal(ReplayClock(begin, 60), store, schedule, wall_now=1090.0)
    assert abs((again.now() - pst(7, 20)).total_seconds()) < 5
    assert run_again == run
    store.close()


def test_processes_starting_one_rehearsal_together_share_its_clock_and_run(schedule, tmp_path):
    """Three bots started at once by a supervisor: the second reads no anchor, and before it writes one
    the first has written its own. Both must end on one run, or each would post every reminder."""
    from bot.core.clock import ReplayClock
    from bot.reminders.plan import continue_rehearsal
    from bot.state.store import Store

    first, second = Store(tmp_path / "state.sqlite3"), Store(tmp_path / "state.sqlite3")
    begin, started = pst(5, 50), {}

    class ReadsBeforeTheOtherWrites:
        def __init__(self, inner: Store) -> None:
            self.inner, self.raced = inner, False

        def __getattr__(self, name: str):
            return getattr(self.inner, name)

        def get_meta(self, key: str) -> str | None:
            found = self.inner.get_meta(key)
            if not self.raced:
                self.raced = True
                started["first"] = continue_rehearsal(ReplayClock(begin, 60), first, schedule, wall_now=1000.0)
            return found

    clock, run = continue_rehearsal(ReplayClock(begin, 60), ReadsBeforeTheOtherWrites(second), schedule, wall_now=1001.0)
    first_clock, first_run = started["first"]
    assert run == first_run
    assert abs((clock.now() - first_clock.now()).total_seconds()) < 120  # one timeline: a real second is a schedule minute
    first.close()
    second.close()


def _claim(store, run: str, talk_id: str = "shooting-formulation") -> str:
    from bot.state.store import NewRow

    rid = reminder_id(run, 1, 1, talk_id, 5, pst(5, 55))
    store.claim(NewRow(rid, run, 1, talk_id, 5, 1, reminder_nonce(rid), pst(5, 55)))
    return rid


def test_a_new_rehearsal_from_the_start_announces_everything_again_with_fresh_nonces(schedule, tmp_path):
    from bot.core.clock import ReplayClock
    from bot.reminders.plan import continue_rehearsal
    from bot.state.store import Store

    store = Store(tmp_path / "state.sqlite3")
    live = _claim(store, "live")
    _, run = continue_rehearsal(ReplayClock(pst(5, 50), 60), store, schedule, wall_now=0.0)
    first = _claim(store, run)
    # a restart passing the instant it stopped at keeps the rehearsal's ledger: nothing is announced twice
    _, same = continue_rehearsal(ReplayClock(pst(6, 5), 60), store, schedule, wall_now=600.0)
    assert same == run and store.get(first) is not None
    # the first run is long over (hours later); the same command rehearses from the top again
    again, fresh = continue_rehearsal(ReplayClock(pst(5, 50), 60), store, schedule, wall_now=100_000.0)
    assert abs((again.now() - pst(5, 50)).total_seconds()) < 5
    assert fresh != run  # fresh run key, so fresh nonces: Discord cannot hand back the old messages
    assert reminder_nonce(reminder_id(fresh, 1, 1, "shooting-formulation", 5, pst(5, 55))) != reminder_nonce(first)
    assert store.get(first) is None
    assert store.get(live) is not None  # the live ledger is never touched by a rehearsal
    store.close()


def test_a_live_clock_is_never_touched_and_runs_live(schedule, tmp_path):
    from bot.core.clock import SystemClock
    from bot.reminders.plan import continue_rehearsal
    from bot.state.store import Store

    store = Store(tmp_path / "state.sqlite3")
    clock = SystemClock()
    assert continue_rehearsal(clock, store, schedule) == (clock, "live")
    store.close()
