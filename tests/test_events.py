"""Scheduled events, the pure plan: one event per listed talk that has not ended, soonest 100, a diff to what Discord holds."""

from __future__ import annotations

import dataclasses
import datetime as dt
from zoneinfo import ZoneInfo

import pytest

from bot.config import DEFAULT_KINDS, ConfigError, settings_from
from bot.core.clock import ReplayClock
from bot.core.schedule import Kind, Schedule, Session, Talk
from bot.reminders.events import (
    CREATE_EVENTS,
    DESCRIPTION_MAX,
    EVENTS_MAX,
    MANAGE_EVENTS,
    MARKER,
    EventSpec,
    Existing,
    differences,
    effective_now,
    event_spec,
    listed,
    plan_events,
)

UTC = dt.UTC
NOW = dt.datetime(2030, 6, 1, 12, 0, tzinfo=UTC)


def shifted(schedule: Schedule, delta: dt.timedelta) -> Schedule:
    """Every item moved by the same amount: the same programme on another day."""

    def move(talk: Talk) -> Talk:
        return dataclasses.replace(talk, start=talk.start + delta, end=talk.end + delta)

    sessions = tuple(dataclasses.replace(s, date=(s.start + delta).date(), items=tuple(move(t) for t in s.items)) for s in schedule.sessions)
    return Schedule(sessions, schedule.conference, schedule.source)


def future(schedule: Schedule, first_start: dt.datetime) -> Schedule:
    return shifted(schedule, first_start - schedule.talks[0].start)


def many(count: int, first: dt.datetime = NOW + dt.timedelta(hours=1), minutes: int = 10) -> Schedule:
    """`count` talks back to back in one room."""
    zone = ZoneInfo("Europe/Berlin")
    talks = tuple(
        Talk(
            f"t{i:03d}",
            "s",
            Kind.TALK,
            first + dt.timedelta(minutes=minutes * i),
            first + dt.timedelta(minutes=minutes * (i + 1)),
            f"Talk {i}",
            authors=(f"Author {i}",),
            abstract="Short.",
        )
        for i in range(count)
    )
    return Schedule((Session("s", "Main track", zone, first.date(), talks, room="Hall A"),), "Test Con")


def as_existing(spec: EventSpec, event_id: int, **changes: object) -> Existing:
    """The event Discord would hold after creating `spec`."""
    base = Existing(event_id, spec.name, spec.start, spec.end, spec.description, spec.location)
    return dataclasses.replace(base, **changes)


def created(schedule: Schedule, now: dt.datetime = NOW, first_id: int = 1000) -> tuple[list[Existing], dict[str, int]]:
    """The guild after a first sync: its events and the stored ids."""
    plan = plan_events(schedule, DEFAULT_KINDS, [], {}, now)
    events = [as_existing(spec, first_id + i) for i, spec in enumerate(plan.creates)]
    return events, {spec.talk_id: first_id + i for i, spec in enumerate(plan.creates)}


# --------------------------------------------------------------------------- one talk's event


def test_event_of_a_talk_has_discords_fields_within_limits(schedule: Schedule) -> None:
    moved = future(schedule, NOW + dt.timedelta(days=1))
    talk = next(t for t in moved.talks if "L_2" in t.title or "L₂" in t.display_title)
    spec = event_spec(talk, moved)
    assert spec.name == talk.display_title and "$" not in spec.name and len(spec.name) <= 100
    assert spec.location == "Orals & Spotlights Track 28: Deep Learning"  # no room: the session's name
    assert (spec.start, spec.end) == (talk.start, talk.end) and spec.start.utcoffset() == dt.timedelta(0)
    lines = spec.description.split("\n")
    assert lines[0] == f"{talk.kind.label} by {', '.join(talk.authors)}"
    assert lines[2].startswith(talk.display_abstract[:60]) and lines[-1] == MARKER + talk.id
    assert len(spec.description) <= DESCRIPTION_MAX


def test_hostile_lengths_are_cut_to_discords_limits() -> None:
    base = many(1)
    talk = dataclasses.replace(base.talks[0], title="T " * 200, authors=tuple(f"Author number {i}" for i in range(200)), abstract="word " * 2000, id="x" * 300)
    session = dataclasses.replace(base.sessions[0], items=(talk,), room="R" * 300, name="N" * 300)
    schedule = Schedule((session,), "Test Con")
    spec = event_spec(talk, schedule)
    assert len(spec.name) <= 100 and len(spec.location) <= 100 and len(spec.description) <= DESCRIPTION_MAX
    assert spec.description.split("\n")[-1].startswith(MARKER + "h")  # a long id is hashed in the marker
    assert as_existing(spec, 1).ref == spec.ref


def test_breaks_and_qas_get_no_event_by_default(schedule: Schedule) -> None:
    kinds = {t.kind for t in schedule.talks if listed(t, DEFAULT_KINDS)}
    assert Kind.BREAK not in kinds and Kind.QA not in kinds and Kind.ORAL in kinds


# --------------------------------------------------------------------------- the plan


def test_first_sync_creates_one_event_per_listed_talk_with_exact_times(schedule: Schedule) -> None:
    moved = future(schedule, NOW + dt.timedelta(days=1))
    plan = plan_events(moved, DEFAULT_KINDS, [], {}, NOW)
    expected = [t for t in moved.talks if listed(t, DEFAULT_KINDS)]
    assert [(s.talk_id, s.start, s.end) for s in plan.creates] == [(t.id, t.start, t.end) for t in expected]
    assert len(plan.creates) == 11 and not plan.patches and not plan.deletes and plan.next_end == expected[0].end


def test_second_sync_and_restart_change_nothing(schedule: Schedule) -> None:
    moved = future(schedule, NOW + dt.timedelta(days=1))
    events, known = created(moved)
    assert not plan_events(moved, DEFAULT_KINDS, events, known, NOW)
    plan = plan_events(moved, DEFAULT_KINDS, events, known, NOW + dt.timedelta(hours=1))
    assert not plan and plan.kept == 11


def test_past_talks_are_skipped_and_started_ones_keep_their_event(schedule: Schedule) -> None:
    moved = future(schedule, NOW + dt.timedelta(hours=1))
    events, known = created(moved)
    during_third = moved.talks[2].start + dt.timedelta(minutes=1)
    assert not plan_events(moved, DEFAULT_KINDS, events, known, during_third).creates
    fresh = plan_events(moved, DEFAULT_KINDS, [], {}, during_third)  # the state was lost and the events deleted by hand
    assert fresh.skipped_past == 1 and all(s.start > during_third for s in fresh.creates)
    ended = plan_events(moved, DEFAULT_KINDS, events, known, moved.talks[1].end)
    assert [(d.talk_id, d.reason) for d in ended.deletes] == [(moved.talks[0].id, "ended"), (moved.talks[1].id, "ended")]


def test_a_start_about_to_pass_is_not_created() -> None:
    schedule = many(2, first=NOW + dt.timedelta(seconds=30))
    plan = plan_events(schedule, DEFAULT_KINDS, [], {}, NOW)
    assert [s.talk_id for s in plan.creates] == ["t001"] and plan.skipped_past == 1


def test_a_replayed_clock_in_the_past_creates_nothing(schedule: Schedule) -> None:
    clock = ReplayClock(schedule.talks[0].start - dt.timedelta(minutes=10), speed=60)
    now = effective_now(clock.now(), NOW)
    assert now == NOW
    plan = plan_events(schedule, DEFAULT_KINDS, [], {}, now)  # the real 2020 session: all in Discord's past
    assert not plan.creates and not plan.skipped_past  # ended, not merely started
    ahead = effective_now(NOW + dt.timedelta(hours=2), NOW)  # a rehearsal running ahead treats what it played as over
    assert ahead == NOW + dt.timedelta(hours=2)


def test_more_than_100_talks_keep_the_soonest_100_and_roll_forward() -> None:
    schedule = many(130)
    plan = plan_events(schedule, DEFAULT_KINDS, [], {}, NOW)
    assert len(plan.creates) == EVENTS_MAX and plan.beyond_limit == 30
    assert [s.talk_id for s in plan.creates] == [t.id for t in schedule.talks[:100]]
    events = [as_existing(s, 1000 + i) for i, s in enumerate(plan.creates)]
    known = {s.talk_id: 1000 + i for i, s in enumerate(plan.creates)}
    after_two = schedule.talks[1].end
    rolled = plan_events(schedule, DEFAULT_KINDS, events, known, after_two)
    assert [(d.talk_id, d.reason) for d in rolled.deletes] == [("t000", "ended"), ("t001", "ended")]
    assert [s.talk_id for s in rolled.creates] == ["t100", "t101"] and rolled.beyond_limit == 28
    assert rolled.next_end == schedule.talks[2].end


def test_other_events_in_the_guild_take_their_slots() -> None:
    schedule = many(120)
    foreign = [Existing(i, f"Meetup {i}", NOW + dt.timedelta(days=3), by_bot=False) for i in range(1, 6)]
    plan = plan_events(schedule, DEFAULT_KINDS, foreign, {}, NOW)
    assert plan.capacity == 95 and len(plan.creates) == 95 and plan.beyond_limit == 25


def test_a_moved_or_retitled_talk_is_patched_and_a_removed_one_deleted(schedule: Schedule) -> None:
    moved = future(schedule, NOW + dt.timedelta(days=1))
    events, known = created(moved)
    first, second, third = [t for t in moved.talks if listed(t, DEFAULT_KINDS)][:3]
    later = first.start + dt.timedelta(hours=5)
    changed = [
        dataclasses.replace(first, start=later, end=later + (first.end - first.start)),
        dataclasses.replace(second, title="A new title"),
    ]
    by_id = {t.id: t for t in changed}
    sessions = tuple(
        dataclasses.replace(s, items=tuple(sorted((by_id.get(t.id, t) for t in s.items if t.id != third.id), key=lambda t: t.start))) for s in moved.sessions
    )
    new = Schedule(sessions, moved.conference, moved.source)
    plan = plan_events(new, DEFAULT_KINDS, events, known, NOW)
    patches = {p.spec.talk_id: p.fields for p in plan.patches}
    assert patches == {first.id: ("start", "end"), second.id: ("name",)}
    assert [(d.talk_id, d.event_id, d.reason) for d in plan.deletes] == [(third.id, known[third.id], "removed")]
    assert not plan.creates


def test_an_active_events_start_is_not_moved() -> None:
    spec = event_spec(many(1).talks[0], many(1))
    later = dataclasses.replace(spec, start=spec.start + dt.timedelta(hours=1), end=spec.end + dt.timedelta(hours=1))
    assert differences(as_existing(spec, 1), later, NOW) == ("start", "end")
    assert differences(as_existing(spec, 1, active=True), later, NOW) == ("end",)
    into_the_past = dataclasses.replace(spec, start=NOW - dt.timedelta(minutes=5))
    assert differences(as_existing(spec, 1), into_the_past, NOW) == ()


def test_events_are_adopted_by_marker_or_by_name_and_start(schedule: Schedule) -> None:
    moved = future(schedule, NOW + dt.timedelta(days=1))
    events, _ = created(moved)
    plan = plan_events(moved, DEFAULT_KINDS, events, {}, NOW)  # the state was lost: ours are found by their marker
    assert not plan and len(plan.adopted) == 11
    renamed = [dataclasses.replace(e, name=e.name + " (old)") for e in events]  # the marker wins over the name
    assert {p.fields for p in plan_events(moved, DEFAULT_KINDS, renamed, {}, NOW).patches} == {("name",)}
    spec = plan_events(moved, DEFAULT_KINDS, [], {}, NOW).creates[0]
    by_hand = Existing(77, spec.name, spec.start, spec.end, "Come along!", spec.location, by_bot=False)
    plan = plan_events(moved, DEFAULT_KINDS, [by_hand], {}, NOW)
    assert plan.adopted == {spec.talk_id: 77} and len(plan.creates) == 10
    (patch,) = plan.patches
    assert patch.fields == ("description",) and not patch.by_bot


def test_a_duplicate_of_ours_is_deleted_and_a_stray_one_too(schedule: Schedule) -> None:
    moved = future(schedule, NOW + dt.timedelta(days=1))
    events, known = created(moved)
    twin = dataclasses.replace(events[0], id=5000)  # a create retried after a lost answer
    gone = dataclasses.replace(events[1], id=5001, description=f"Oral\n\n{MARKER}no-such-talk")
    plan = plan_events(moved, DEFAULT_KINDS, [*events, twin, gone], known, NOW)
    assert sorted((d.event_id, d.reason) for d in plan.deletes) == [(5000, "duplicate"), (5001, "orphan")]
    assert not plan.creates and not plan.patches
    human_copy = dataclasses.replace(twin, id=5002, by_bot=False)  # someone else's event is never deleted as a stray
    assert not plan_events(moved, DEFAULT_KINDS, [*events, human_copy], known, NOW).deletes


def test_vanished_events_are_created_again(schedule: Schedule) -> None:
    moved = future(schedule, NOW + dt.timedelta(days=1))
    events, known = created(moved)
    plan = plan_events(moved, DEFAULT_KINDS, events[1:], known, NOW)  # someone deleted the first by hand
    assert [s.talk_id for s in plan.creates] == [events[0].ref] and events[0].id not in plan.events.values()


def test_permissions_decide_what_part_of_the_plan_runs(schedule: Schedule) -> None:
    moved = future(schedule, NOW + dt.timedelta(days=1))
    plan = plan_events(moved, DEFAULT_KINDS, [], {}, NOW)
    none = plan.allowed(can_create=False, can_manage=False)
    assert not none.creates and none.blocked == (CREATE_EVENTS,)
    assert plan.allowed(can_create=False, can_manage=True).blocked == (CREATE_EVENTS,)  # Manage Events alone no longer creates
    assert plan.allowed(can_create=True, can_manage=False).creates == plan.creates
    spec = plan.creates[0]
    theirs = Existing(77, spec.name, spec.start, spec.end, "Come along!", spec.location, by_bot=False)
    mixed = plan_events(moved, DEFAULT_KINDS, [theirs], {}, NOW).allowed(can_create=True, can_manage=False)
    assert mixed.blocked == (MANAGE_EVENTS,) and not mixed.patches and len(mixed.creates) == 10
    events, known = created(moved)
    retitled = [dataclasses.replace(e, name="old") for e in events]
    own = plan_events(moved, DEFAULT_KINDS, retitled, known, NOW)
    assert len(own.allowed(can_create=True, can_manage=False).patches) == 11  # our own events: Create Events is enough
    assert own.allowed(can_create=False, can_manage=False).blocked == (CREATE_EVENTS,)


# --------------------------------------------------------------------------- settings


def test_scheduled_events_setting_is_validated() -> None:
    assert settings_from({}).scheduled_events is False
    assert settings_from({"SCHEDULED_EVENTS": "on", "DISCORD_GUILD_ID": "123456789012345678"}).scheduled_events is True
    assert settings_from({"SCHEDULED_EVENTS": "off"}).scheduled_events is False
    with pytest.raises(ConfigError, match="SCHEDULED_EVENTS=on needs DISCORD_GUILD_ID"):
        settings_from({"SCHEDULED_EVENTS": "on"})
    with pytest.raises(ConfigError, match="SCHEDULED_EVENTS must be on or off"):
        settings_from({"SCHEDULED_EVENTS": "maybe", "DISCORD_GUILD_ID": "123456789012345678"})
