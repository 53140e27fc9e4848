"""The iCalendar reader: real pretalx and frab exports checked event by event against the same
conference's JSON, and crafted files for zones, floating times, speakers and hostile input."""

from __future__ import annotations

import datetime as dt
import json
import time
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from bot.core.schedule import ScheduleError
from bot.sources import ics, parse_bytes
from bot.sources.build import build
from bot.sources.draft import Draft, DraftItem

SAMPLES = Path(__file__).parent / "data" / "samples"
UTC = dt.UTC


def _utc(text: str) -> dt.datetime:
    return dt.datetime.fromisoformat(text).replace(tzinfo=UTC)


def _calendar(*events: str, head: str = "PRODID:-//test//test//EN", zones: str = "") -> bytes:
    """A calendar of the given VEVENT bodies, with CRLF line ends as RFC 5545 writes them; empty lines dropped."""
    parts = ["BEGIN:VCALENDAR", "VERSION:2.0", head, zones, *(f"BEGIN:VEVENT\n{event}\nEND:VEVENT" for event in events), "END:VCALENDAR"]
    return ("\r\n".join(line for part in parts for line in part.split("\n") if line.strip()) + "\r\n").encode()


def _event(uid: str = "a", summary: str = "A talk", start: str = "DTSTART:20250601T100000Z", end: str = "DTEND:20250601T110000Z", extra: str = "") -> str:
    return "\n".join(filter(None, [f"UID:{uid}", start, end, f"SUMMARY:{summary}", extra]))


def _items(draft: Draft) -> list[DraftItem]:
    return [item for session in draft.sessions for item in session.items]


def _notes(draft: Draft) -> str:
    return "\n".join(f"{place.line} {name}: {message}" for place, name, message in draft.notes)


def _zone(tzid: str, offset: str, rule: str = "") -> str:
    standard = f"BEGIN:STANDARD\nDTSTART:19700101T000000\n{rule}\nTZOFFSETFROM:{offset}\nTZOFFSETTO:{offset}\nTZNAME:X\nEND:STANDARD"
    return f"BEGIN:VTIMEZONE\nTZID:{tzid}\n{standard}\nEND:VTIMEZONE"


# --------------------------------------------------------------------------- the real exports


def _expected(name: str) -> dict[str, tuple[dt.datetime, dt.datetime, str, list[str], str]]:
    """Per event of the same conference's JSON export: UTC start and end, room, speakers, title.

    frab's ICS UID is the JSON guid with "@host"; pretalx's ICS and JSON share the event URL.
    """
    conference = json.loads((SAMPLES / f"{name}.json").read_text(encoding="utf-8"))["schedule"]["conference"]
    expected = {}
    for day in conference["days"]:
        for room, events in day["rooms"].items():
            for event in events:
                start = dt.datetime.fromisoformat(event["date"])
                hours, minutes = map(int, event["duration"].split(":")[:2])
                end = start + dt.timedelta(hours=hours, minutes=minutes)
                speakers = [" ".join(person["public_name"].split()) for person in event["persons"]]
                key = event["url"] if "url" in event else event["guid"]
                expected[key] = (start.astimezone(UTC), end.astimezone(UTC), room, speakers, " ".join(event["title"].split()))
    return expected


def _key(name: str, item_id: str, url: str) -> str:
    return item_id[:36] if name.startswith("33c3") else url  # 33C3: the guid, before "@frab.cccv.de" (or "-frab.cccv.de" once built)


@pytest.mark.parametrize(("name", "count", "zone"), [("33c3-2016", 150, "Europe/Berlin"), ("good-2025", 72, "US/Eastern")])
def test_every_event_of_a_real_export_matches_its_json(name: str, count: int, zone: str) -> None:
    draft = ics.read((SAMPLES / f"{name}.ics").read_bytes(), f"{name}.ics")
    expected = _expected(name)
    got = {
        _key(name, item.id, item.url): (item.start.astimezone(UTC), item.end.astimezone(UTC), session.room, item.authors, item.title)
        for session in draft.sessions
        for item in session.items
        if item.start and item.end
    }
    assert len(expected) == len(got) == count
    assert got == expected
    assert draft.notes == []
    assert draft.conference == name  # neither file names itself (no X-WR-CALNAME)
    assert {session.timezone.key for session in draft.sessions if session.timezone} == {zone}


@pytest.mark.parametrize(("name", "count"), [("33c3-2016", 150), ("good-2025", 72)])
def test_a_real_export_builds_with_every_event_on_its_true_instant(name: str, count: int) -> None:
    schedule, warnings = build(ics.read((SAMPLES / f"{name}.ics").read_bytes(), f"{name}.ics"))
    expected = _expected(name)
    assert len(schedule.talks) == count
    for talk in schedule.talks:
        session = schedule.session_of(talk)
        start, end, room, speakers, title = expected[_key(name, talk.id, talk.url)]
        assert (talk.start, talk.end, session.room, list(talk.authors), talk.title) == (start, end, room, speakers, title)
    assert all("overlap" in w.message or "starts at" in w.message for w in warnings)  # GOOD 2025 itself overlaps in one room


def test_an_ics_file_is_detected_and_loaded_by_content() -> None:
    schedule, _ = parse_bytes((SAMPLES / "33c3-2016.ics").read_bytes(), "schedule.ics")
    assert (len(schedule.talks), schedule.conference) == (150, "")  # "schedule" names no conference


def test_sessions_are_one_room_on_one_local_day() -> None:
    draft = ics.read((SAMPLES / "33c3-2016.ics").read_bytes(), "33c3-2016.ics")
    berlin = ZoneInfo("Europe/Berlin")
    for session in draft.sessions:
        assert {item.start.astimezone(berlin).date() for item in session.items if item.start} == {session.date}
        assert session.name == f"{session.room} · Day {session.id[3]}"
    assert len({session.id for session in draft.sessions}) == len(draft.sessions)
    assert [item.start for item in draft.sessions[0].items] == sorted(item.start for item in draft.sessions[0].items if item.start)


def test_a_title_that_holds_a_dash_and_an_affiliation_that_holds_one() -> None:
    draft = ics.read((SAMPLES / "good-2025.ics").read_bytes(), "good-2025.ics")
    by_url = {item.url.rsplit("/", 2)[1]: item for item in _items(draft)}
    assert (by_url["BNEEB3"].title, by_url["BNEEB3"].authors) == (
        "Scaling up OOD - a sysadmin's perspective",
        ["Simon Westersund [CSC - IT Center for Science]"],
    )
    assert (by_url["RPVAEC"].title, by_url["RPVAEC"].authors) == ("Governance Working Group - User Guide", [])


@pytest.mark.parametrize(
    ("summary", "title", "speakers"),
    [
        ("From Server Farm to Data Table - Ingrid Burrington", "From Server Farm to Data Table", ["Ingrid Burrington"]),
        ("JODI - Apache is functioning normally  - JODI", "JODI - Apache is functioning normally", ["JODI"]),
        ("Governance Working Group - Technical - ", "Governance Working Group - Technical", []),
        ("Closing - Nicolas Wöhrl, @ReinhardRemfort", "Closing", ["Nicolas Wöhrl", "@ReinhardRemfort"]),
        ("X - Raoul [IFOM ETS - The AIRC Institute], Cristiano [AIRC, Milan]", "X", ["Raoul [IFOM ETS - The AIRC Institute]", "Cristiano [AIRC, Milan]"]),
        ("Smile :( - Alice", "Smile :(", ["Alice"]),
        ("Untitled", "Untitled", []),
    ],
)
def test_split_summary(summary: str, title: str, speakers: list[str]) -> None:
    assert ics.split_summary(summary) == (title, speakers)


# --------------------------------------------------------------------------- time zones


def test_an_iana_tzid_wins_over_a_vtimezone_that_disagrees() -> None:
    data = _calendar(
        _event(start="DTSTART;TZID=Europe/Berlin:20250601T100000", end="DTEND;TZID=Europe/Berlin:20250601T110000"),
        zones=_zone("Europe/Berlin", "+0500"),
    )
    draft = ics.read(data, "wrong-zone.ics")
    (item,) = _items(draft)
    assert (item.start.astimezone(UTC), item.end.astimezone(UTC)) == (_utc("2025-06-01T08:00"), _utc("2025-06-01T09:00"))
    assert "says UTC+05:00" in _notes(draft)
    assert "zone database UTC+02:00; the zone database is used" in _notes(draft)
    assert draft.sessions[0].timezone == ZoneInfo("Europe/Berlin")


def test_a_legacy_zone_name_works_and_its_vtimezone_cannot_move_it() -> None:
    data = _calendar(
        _event(start="DTSTART;TZID=US/Eastern:20250318T083000", end="DTEND;TZID=US/Eastern:20250318T100000"),
        zones=_zone("US/Eastern", "+0000"),
    )
    (item,) = _items(ics.read(data, "legacy.ics"))
    assert (item.start.astimezone(UTC), item.end.astimezone(UTC)) == (_utc("2025-03-18T12:30"), _utc("2025-03-18T14:00"))


def test_a_non_iana_tzid_uses_this_files_own_vtimezone_not_one_seen_before() -> None:
    """icalendar caches a VTIMEZONE by TZID for the whole process; a corrected file must not get the old one."""
    times = {"start": "DTSTART;TZID=Conference Time:20250601T100000", "end": "DTEND;TZID=Conference Time:20250601T110000"}
    first = ics.read(_calendar(_event(**times), zones=_zone("Conference Time", "+0300")), "first.ics")
    second = ics.read(_calendar(_event(**times), zones=_zone("Conference Time", "+0700")), "second.ics")
    assert _items(first)[0].start.astimezone(UTC) == _utc("2025-06-01T07:00")
    assert _items(second)[0].start.astimezone(UTC) == _utc("2025-06-01T03:00")
    assert "not an IANA zone name; the file's own VTIMEZONE for it is used" in _notes(second)


@pytest.mark.timeout(20)
def test_a_vtimezone_whose_rules_fire_every_second_is_not_evaluated() -> None:
    """dateutil walks such a rule from 1970 on every lookup: hours for one event."""
    rules = (
        "BEGIN:VTIMEZONE\nTZID:Bomb\n"
        "BEGIN:STANDARD\nDTSTART:19700101T000000\nRRULE:FREQ=SECONDLY;INTERVAL=2\nTZOFFSETFROM:+0200\nTZOFFSETTO:+0100\nEND:STANDARD\n"
        "BEGIN:DAYLIGHT\nDTSTART:19700101T000001\nRRULE:FREQ=SECONDLY;INTERVAL=2\nTZOFFSETFROM:+0100\nTZOFFSETTO:+0200\nEND:DAYLIGHT\n"
        "END:VTIMEZONE"
    )
    data = _calendar(
        _event("bomb", start="DTSTART;TZID=Bomb:20250601T100000", end="DTEND;TZID=Bomb:20250601T110000"),
        _event("fine", summary="Fine"),
        zones=rules,
    )
    began = time.monotonic()
    draft = ics.read(data, "bomb.ics")
    assert time.monotonic() - began < 5
    assert [item.id for item in _items(draft)] == ["fine"]
    assert "a rule that is not a yearly change of offset" in _notes(draft)


def test_windows_and_vendor_zone_names_are_read_as_iana_zones() -> None:
    data = _calendar(
        _event("w", start="DTSTART;TZID=W. Europe Standard Time:20250601T100000", end="DTEND;TZID=W. Europe Standard Time:20250601T110000"),
        _event("v", start="DTSTART;TZID=/citadel.org/20190101_1/Europe/Paris:20250601T100000", end="DTEND:20250601T090000Z"),
    )
    draft = ics.read(data, "outlook.ics")
    assert {item.id: item.start.astimezone(UTC) for item in _items(draft)} == {"w": _utc("2025-06-01T08:00"), "v": _utc("2025-06-01T08:00")}
    assert "Windows zone name 'W. Europe Standard Time' is read as Europe/Berlin" in _notes(draft)


def test_an_unknown_tzid_leaves_the_event_out_with_its_line() -> None:
    data = _calendar(_event("lost", start="DTSTART;TZID=Mars/Olympus:20250601T100000"), _event("kept"))
    draft = ics.read(data, "mars.ics")
    assert [item.id for item in _items(draft)] == ["kept"]
    ((place, name, message),) = [note for note in draft.notes if note[1] == "DTSTART"]
    assert (place.line, name) == (6, "DTSTART")
    assert "'Mars/Olympus' is no time zone we know" in message


def test_utc_times_are_shown_in_the_x_wr_timezone() -> None:
    data = _calendar(_event(start="DTSTART:20250601T230000Z", end="DTEND:20250602T000000Z"), head="X-WR-TIMEZONE:Asia/Tokyo\nX-WR-CALNAME:Tokyo Conf")
    draft = ics.read(data, "tokyo.ics")
    assert (draft.conference, draft.sessions[0].timezone, draft.sessions[0].date) == ("Tokyo Conf", ZoneInfo("Asia/Tokyo"), dt.date(2025, 6, 2))
    assert _items(draft)[0].start == _utc("2025-06-01T23:00")


def test_utc_times_with_no_zone_named_are_grouped_by_utc_day_and_say_so() -> None:
    draft = ics.read(_calendar(_event()), "utc.ics")
    assert draft.sessions[0].timezone == ZoneInfo("UTC")
    assert "names no time zone" in _notes(draft)
    berlin = ics.read(_calendar(_event()), "utc.ics", ZoneInfo("Europe/Berlin"))
    assert berlin.sessions[0].timezone == ZoneInfo("Europe/Berlin")
    assert berlin.notes == []


def test_floating_times_without_schedule_timezone_are_refused_saying_so() -> None:
    first = _event(start="DTSTART:20250601T100000", end="DTEND:20250601T110000")
    data = _calendar(first, _event("b", start="DTSTART:20250601T120000", end="DTEND:20250601T130000"))
    with pytest.raises(ScheduleError) as refused:
        ics.read(data, "floating.ics")
    (problem,) = refused.value.problems
    assert (problem.line, problem.field) == (6, "DTSTART")
    assert "no TZID and no Z" in problem.message
    assert "like 3 other times" in problem.message
    assert "set SCHEDULE_TIMEZONE" in problem.message


def test_floating_times_are_not_read_in_the_x_wr_timezone_hint() -> None:
    data = _calendar(_event(start="DTSTART:20250601T100000", end="DTEND:20250601T110000"), head="X-WR-TIMEZONE:Europe/Berlin")
    with pytest.raises(ScheduleError, match="X-WR-TIMEZONE 'Europe/Berlin' is only a display hint"):
        ics.read(data, "floating.ics")


def test_floating_times_with_schedule_timezone_are_in_that_zone() -> None:
    data = _calendar(_event(start="DTSTART:20250601T100000", end="DTEND:20250601T110000"), head="X-WR-TIMEZONE:Asia/Tokyo")
    draft = ics.read(data, "floating.ics", ZoneInfo("America/New_York"))
    (item,) = _items(draft)
    assert (item.start.astimezone(UTC), item.end.astimezone(UTC)) == (_utc("2025-06-01T14:00"), _utc("2025-06-01T15:00"))
    assert draft.sessions[0].timezone == ZoneInfo("America/New_York")


def test_an_event_past_midnight_keeps_its_instant_and_its_local_day() -> None:
    data = _calendar(_event(start="DTSTART;TZID=Europe/Berlin:20161228T003000", end="DTEND;TZID=Europe/Berlin:20161228T013000"))
    draft = ics.read(data, "late.ics")
    assert _items(draft)[0].start.astimezone(UTC) == _utc("2016-12-27T23:30")
    assert draft.sessions[0].date == dt.date(2016, 12, 28)


# --------------------------------------------------------------------------- events and speakers


def test_duration_missing_end_all_day_cancelled_and_repeating_events() -> None:
    data = _calendar(
        _event("dur", end="DURATION:PT45M"),
        _event("noend", end=""),
        _event("allday", start="DTSTART;VALUE=DATE:20250601", end="DTEND;VALUE=DATE:20250602"),
        _event("gone", extra="STATUS:CANCELLED"),
        _event("weekly", extra="RRULE:FREQ=WEEKLY;COUNT=3"),
    )
    draft = ics.read(data, "mixed.ics")
    items = {item.id: item for item in _items(draft)}
    assert set(items) == {"dur", "noend", "weekly"}
    assert items["dur"].end - items["dur"].start == dt.timedelta(minutes=45)
    assert items["noend"].end == items["noend"].start  # the builder reports the zero duration
    notes = _notes(draft)
    for expected in ("neither DTEND nor DURATION", "all-day event", "is cancelled", "only its first occurrence"):
        assert expected in notes
    schedule, warnings = build(draft)
    assert {talk.id for talk in schedule.talks} == {"dur", "weekly"}
    assert any("zero or negative duration" in w.message for w in warnings)


def test_an_unreadable_dtstart_is_noted_and_left_out() -> None:
    draft = ics.read(_calendar(_event("bad", start="DTSTART:2025XXXX"), _event("good")), "bad.ics")
    assert [item.id for item in _items(draft)] == ["good"]
    assert "'2025XXXX'" in _notes(draft)


def test_an_unreadable_line_inside_an_event_is_noted_and_the_event_kept() -> None:
    draft = ics.read(_calendar(_event(extra="this line has no colon")), "odd.ics")
    assert len(_items(draft)) == 1
    assert "unreadable line, ignored" in _notes(draft)


def test_speakers_from_attendee_and_organizer_common_names() -> None:
    data = _calendar(
        _event("a", summary="Rust in Space - Jane Doe, Bob", extra='ORGANIZER;CN="Doe, Jane":mailto:j@example.org\nATTENDEE;CN=Bob:mailto:b@example.org'),
        _event("b", summary="Keynote", extra="ORGANIZER;CN=Ann Lee:mailto:a@example.org"),
    )
    items = {item.id: item for item in _items(ics.read(data, "people.ics"))}
    assert (items["a"].title, items["a"].authors) == ("Rust in Space - Jane Doe, Bob", ["Doe, Jane", "Bob"])
    assert (items["b"].title, items["b"].authors) == ("Keynote", ["Ann Lee"])


def test_an_organizer_on_every_event_is_the_calendars_owner() -> None:
    owner = "ORGANIZER;CN=PyCon Team:mailto:team@example.org"
    data = _calendar(_event("a", extra=owner), _event("b", summary="Other", extra=f"{owner}\nATTENDEE;CN=Kim:mailto:k@example.org"))
    draft = ics.read(data, "owner.ics")
    assert {item.id: item.authors for item in _items(draft)} == {"a": [], "b": ["Kim"]}
    assert "calendar's owner" in _notes(draft)


def test_a_calendar_of_another_generator_keeps_its_summaries_whole() -> None:
    data = _calendar(_event("a", summary="Opening - Welcome"), _event("b", summary="Lunch"))
    assert [(item.title, item.authors) for item in _items(ics.read(data, "meetup.ics"))] == [("Opening - Welcome", []), ("Lunch", [])]


def test_pretalx_summaries_are_split_even_when_one_has_no_dash() -> None:
    data = _calendar(_event("a", summary="Deep Dive - Part 2 - Ana, Bo"), _event("b", summary="Welcome"), head="PRODID:-//pretalx//cfp.example.org//conf//")
    assert [(item.title, item.authors) for item in _items(ics.read(data, "conf.ics"))] == [("Deep Dive - Part 2", ["Ana", "Bo"]), ("Welcome", [])]


def test_categories_give_the_kind_and_the_track() -> None:
    data = _calendar(
        _event("k", summary="Opening", extra="CATEGORIES:Main Track,Keynote"),
        _event("w", summary="Hands on", extra="CATEGORIES:Workshop"),
        _event("t", summary="Plain"),
        _event("l", summary="Lunch"),
    )
    items = {item.id: item for item in _items(ics.read(data, "kinds.ics"))}
    assert {key: (item.kind, item.track) for key, item in items.items()} == {
        "k": ("keynote", "Main Track, Keynote"),
        "w": ("workshop", "Workshop"),
        "t": ("talk", ""),
        "l": ("break", ""),
    }


def test_description_made_readable_and_fields_placed_on_their_lines() -> None:
    data = _calendar(_event(extra="DESCRIPTION:**Bold** <b>move</b> @everyone\nLOCATION:Hall A\nURL:https://example.org/t/1"))
    draft = ics.read(data, "fields.ics")
    (item,) = _items(draft)
    assert item.abstract == "Bold move @\u200beveryone"
    assert (item.url, draft.sessions[0].room, draft.sessions[0].name) == ("https://example.org/t/1", "Hall A", "Hall A · Day 1")
    assert (item.place.line, item.places["start"].line, item.places["room"].line) == (4, 6, 10)


# --------------------------------------------------------------------------- refused


def test_a_calendar_with_no_events_is_refused() -> None:
    with pytest.raises(ScheduleError, match="no events"):
        ics.read(_calendar(), "empty.ics")


def test_a_calendar_of_only_all_day_events_loads_nothing_and_build_says_so() -> None:
    draft = ics.read(_calendar(_event(start="DTSTART;VALUE=DATE:20250601", end="")), "holidays.ics")
    assert draft.sessions == []
    with pytest.raises(ScheduleError, match="none of its events can be loaded"):
        build(draft)


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        (b"", "no complete BEGIN:VCALENDAR"),
        (b"garbage\x01 not a calendar", "not a readable iCalendar file"),
        (b"<?xml version='1.0'?><!DOCTYPE b [<!ENTITY a 'aaaaaaaaaa'><!ENTITY b '&a;&a;&a;&a;'>]><b>&b;</b>", "not a readable iCalendar file"),
        (
            b"BEGIN:VCALENDAR\r\nBEGIN:VEVENT\r\nSUMMARY:" + b"x" * 2_000_000 + b"\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n",
            "a line of 2,000,009 characters;",
        ),
        (b"BEGIN:VCALENDAR\r\nSUMMARY:W\xf6hrl\r\nEND:VCALENDAR\r\n", "not UTF-8"),
        (b"BEGIN:VCALENDAR\r\n" + b"BEGIN:X\r\n" * 50_000 + b"BEGIN:VEVENT\r\n", "no complete BEGIN:VCALENDAR"),
    ],
)
def test_hostile_or_broken_input_is_refused_without_a_traceback(data: bytes, expected: str) -> None:
    with pytest.raises(ScheduleError) as refused:
        ics.read(data, "hostile.ics")
    assert expected in str(refused.value)
    assert refused.value.__cause__ is None
