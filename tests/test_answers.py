"""Answers are pure functions of the schedule and `now`: before, during, between and after sessions."""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

from bot.core.answers import Phase, agenda, next_talks, on_now, until
from bot.core.render_text import render_next, render_now
from bot.sources import parse_schedule
from tests.conftest import PST, pst
from tests.test_schedule import VALID


def test_before_the_session_next_is_the_first_oral(schedule):
    answer = next_talks(schedule, pst(5, 50))
    assert answer.phase is Phase.BEFORE
    assert [t.id for t in answer.talks] == ["shooting-formulation", "l2-regularization-dynamics", "compositional-explanations"]
    text = render_next(answer, pst(5, 50), PST)
    assert "starts on Thu 10 Dec 2020 at 06:00 PST (in 10 min)" in text
    assert "06:00 PST (in 10 min) [Oral] A shooting formulation of deep learning" in text


def test_days_before_the_session(schedule):
    text = render_next(next_talks(schedule, pst(9, day=7)), pst(9, day=7), PST)
    assert "in 2 days" in text


def test_during_a_talk_next_skips_breaks_and_counts_down(schedule):
    now = pst(6, 40)
    answer = next_talks(schedule, now)
    assert answer.phase is Phase.DURING
    assert [t.id for t in answer.talks][:1] == ["hamiltonian-lagrangian-constraints"]
    assert "in 20 min" in render_next(answer, now, PST)


def test_now_during_a_talk_shows_it_and_what_follows(schedule):
    answer = on_now(schedule, pst(7, 12))
    assert [t.id for t in answer.current] == ["power-laws-deep-ensembles"]
    assert answer.following.id == "wave-based-imaging"
    text = render_now(answer, pst(7, 12), PST)
    assert "On now: [Spotlight] On Power Laws in Deep Ensembles (until 07:20 PST, ends in 8 min)" in text


def test_now_during_a_break_and_a_qa(schedule):
    assert on_now(schedule, pst(6, 50)).current[0].kind.value == "break"
    qa = on_now(schedule, pst(8, 35)).current[0]
    assert qa.kind.value == "qa"
    assert on_now(schedule, pst(8, 35)).following.id == "break-2"


def test_boundaries_belong_to_the_talk_that_starts(schedule):
    assert on_now(schedule, pst(6, 15)).current[0].id == "l2-regularization-dynamics"
    assert next_talks(schedule, pst(6, 15)).talks[0].id == "compositional-explanations"


def test_after_the_session_says_it_ended(schedule):
    now = pst(10)
    answer = next_talks(schedule, now)
    assert answer.phase is Phase.AFTER
    assert answer.talks == ()
    text = render_next(answer, now, PST)
    assert "Orals & Spotlights Track 28: Deep Learning ended on Thu 10 Dec 2020" in text
    assert "no more talks" in text
    assert "ended on Thu 10 Dec 2020" in render_now(on_now(schedule, now), now, PST)


def test_times_follow_the_requested_zone(schedule):
    text = render_next(next_talks(schedule, pst(5, 50)), pst(5, 50), ZoneInfo("Europe/Paris"))
    assert "15:00 CET" in text


def two_sessions():
    second = (
        VALID.split("sessions:\n", 1)[1]
        .replace("id: s1", "id: s2")
        .replace("Session One", "Session Two")
        .replace("id: first", "id: third")
        .replace("id: second", "id: fourth")
        .replace("2020-12-10", "2020-12-11")
    )
    return parse_schedule(VALID + second)


def test_between_sessions_names_the_one_that_ended_and_the_next():
    sched = two_sessions()
    now = dt.datetime(2020, 12, 10, 12, tzinfo=PST)
    answer = next_talks(sched, now)
    assert answer.phase is Phase.BETWEEN
    assert answer.talks[0].id == "third"
    text = render_next(answer, now, PST)
    assert "Session One ended on Thu 10 Dec 2020. Next: Session Two, Fri 11 Dec 2020 at 06:00 PST." in text


def test_two_rooms_at_once_are_both_on_now():
    sched = two_sessions()
    moved = parse_schedule(
        VALID.replace("    timezone:", "    room: A\n    timezone:", 1)
        + "\n".join(
            line.replace("2020-12-11", "2020-12-10")
            for line in (
                "  - id: s2\n    name: Session Two\n    room: B\n    date: 2020-12-11\n    timezone: America/Los_Angeles\n    items:\n"
                "      - id: third\n        kind: oral\n        start: 2020-12-11T06:05:00-08:00\n        end: 2020-12-11T06:20:00-08:00\n"
                "        title: Parallel talk\n"
            ).splitlines()
        )
        + "\n"
    )
    assert len(sched.sessions) == 2
    current = on_now(moved, dt.datetime(2020, 12, 10, 6, 10, tzinfo=PST)).current
    assert [t.id for t in current] == ["first", "third"]


def test_agenda_is_the_whole_session(schedule):
    (session,) = agenda(schedule)
    assert len(session.items) == 15
    assert session.items[0].start < session.items[-1].start


def test_until_reads_like_a_person():
    now = dt.datetime(2020, 12, 10, 6, tzinfo=dt.UTC)
    assert until(now, now + dt.timedelta(seconds=20)) == "now"
    assert until(now, now + dt.timedelta(minutes=5)) == "in 5 min"
    assert until(now, now + dt.timedelta(minutes=65)) == "in 1 h 5 min"
    assert until(now, now - dt.timedelta(minutes=2)) == "2 min ago"
    assert until(now, now + dt.timedelta(days=3, hours=2)) == "in 3 days"


def test_next_always_says_something_after_the_last_talk_has_started(schedule):
    # 08:30 is the last Q&A; only a break is left before the session ends at 09:00.
    for now, left in [(pst(8, 35), "in 25 min"), (pst(8, 45), "in 15 min")]:
        text = render_next(next_talks(schedule, now), now, PST)
        assert text == f"There are no more talks: Orals & Spotlights Track 28: Deep Learning ends at 09:00 PST ({left})."


def test_now_names_the_chairs_of_the_running_session(schedule):
    text = render_now(on_now(schedule, pst(7, 12)), pst(7, 12), PST)
    assert "In Orals & Spotlights Track 28: Deep Learning — chairs: Oriol Vinyals, Guido Montufar" in text


def test_before_the_session_its_chairs_are_named(schedule):
    assert "Chaired by Oriol Vinyals and Guido Montufar." in render_now(on_now(schedule, pst(5)), pst(5), PST)
    assert "Chaired by Oriol Vinyals and Guido Montufar." in render_next(next_talks(schedule, pst(5)), pst(5), PST)
