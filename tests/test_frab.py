"""frab/pretalx JSON and frab XML: every event of real exports on its true instant, and hostile files refused.

The expectations for the real exports come from a second, deliberately naive reading of the same
files (stdlib json / ElementTree, the per-event offset plus the duration), and from the JSON and XML
exports of one conference agreeing with each other.
"""

from __future__ import annotations

import datetime as dt
import json
import time
import xml.etree.ElementTree as StdET
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from bot.core.schedule import ScheduleError
from bot.sources import frab_json, frab_xml
from bot.sources.build import build
from bot.sources.draft import Draft, Place

SAMPLES = Path(__file__).parent / "data" / "samples"
UTC = dt.UTC
READERS = {"json": frab_json, "xml": frab_xml}
COUNTS = {"33c3-2016.json": 150, "33c3-2016.xml": 150, "good-2025.json": 72, "good-2025.xml": 72, "fosdem-2026.xml": 883}


def read_sample(name: str) -> Draft:
    return READERS[name.rsplit(".", 1)[1]].read((SAMPLES / name).read_bytes(), name)


def rows(draft: Draft) -> list[tuple]:
    """(id, UTC start, UTC end, room, speakers) of every event, sorted."""
    return sorted((i.id, i.start.astimezone(UTC), i.end.astimezone(UTC), s.room, tuple(i.authors)) for s in draft.sessions for i in s.items)


def _length(text: str) -> dt.timedelta:
    hours, minutes, *_ = (int(part) for part in text.split(":"))
    return dt.timedelta(hours=hours, minutes=minutes)


def naive_json(name: str) -> list[tuple]:
    doc = json.loads((SAMPLES / name).read_bytes())
    out = []
    for day in doc["schedule"]["conference"]["days"]:
        for room, events in day["rooms"].items():
            for e in events:
                start = dt.datetime.fromisoformat(e["date"]).astimezone(UTC)
                out.append((e["guid"], start, start + _length(e["duration"]), room, tuple(p["public_name"].strip() for p in e["persons"])))
    return sorted(out)


def naive_xml(name: str) -> list[tuple]:
    root = StdET.fromstring((SAMPLES / name).read_bytes())  # our own trusted copy; the reader under test uses defusedxml
    out = []
    for room in root.iter("room"):
        for e in room.iter("event"):
            start = dt.datetime.fromisoformat(e.findtext("date")).astimezone(UTC)
            speakers = tuple(p.text.strip() for p in e.iterfind("persons/person"))
            out.append((e.get("guid"), start, start + _length(e.findtext("duration")), room.get("name"), speakers))
    return sorted(out)


@pytest.fixture(scope="module")
def drafts() -> dict[str, Draft]:
    return {name: read_sample(name) for name in COUNTS}


# --------------------------------------------------------------------------- real exports


@pytest.mark.parametrize("name", COUNTS)
def test_every_event_of_a_real_export_is_present_on_its_true_instant(drafts: dict[str, Draft], name: str) -> None:
    expected = naive_json(name) if name.endswith(".json") else naive_xml(name)
    assert len(expected) == COUNTS[name]
    assert rows(drafts[name]) == expected
    assert drafts[name].notes == []


@pytest.mark.parametrize("conference", ["33c3-2016", "good-2025"])
def test_json_and_xml_exports_of_one_conference_agree(drafts: dict[str, Draft], conference: str) -> None:
    def everything(draft: Draft) -> list[tuple]:
        return sorted(
            (i.id, i.start, i.end, s.room, s.name, s.date, tuple(i.authors), i.title, i.kind, i.track, i.abstract) for s in draft.sessions for i in s.items
        )

    assert everything(drafts[f"{conference}.json"]) == everything(drafts[f"{conference}.xml"])
    assert drafts[f"{conference}.json"].conference == drafts[f"{conference}.xml"].conference


def test_spot_checks_of_exact_instants_rooms_and_speakers(drafts: dict[str, Draft]) -> None:
    def find(name: str, guid: str):
        return next((s, i) for s in drafts[name].sessions for i in s.items if i.id == guid)

    session, fnord = find("33c3-2016.xml", "f21478d4-e8db-4f19-854c-2f74b5824706")  # after midnight, under the day before
    assert (fnord.start.astimezone(UTC), fnord.end.astimezone(UTC)) == (
        dt.datetime(2016, 12, 28, 23, 45, tzinfo=UTC),
        dt.datetime(2016, 12, 29, 1, 15, tzinfo=UTC),
    )
    assert (session.room, session.date, session.name, fnord.authors) == ("Saal 1", dt.date(2016, 12, 28), "Saal 1 · Day 2", ["Fefe", "frank"])
    session, jam = find("good-2025.json", "307e1812-4a21-5d33-910b-30543d8c6026")
    assert (jam.start.astimezone(UTC), jam.end.astimezone(UTC)) == (dt.datetime(2025, 3, 17, 17, tzinfo=UTC), dt.datetime(2025, 3, 17, 21, tzinfo=UTC))
    assert jam.authors == ["Emily Moffat Sadeghi [Ohio Supercomputer Center]", "Travis Ravert [Ohio Supercomputer Center]"]
    assert (jam.kind, jam.track, jam.url) == ("workshop", "Core Team Track", "https://cfp.openondemand.org/2025/talk/CFEMBK/")
    session, welcome = find("fosdem-2026.xml", "9c3ebb8c-7716-5130-b9fe-ff8544f5636d")
    assert (welcome.start.astimezone(UTC), welcome.end.astimezone(UTC), session.room) == (
        dt.datetime(2026, 1, 31, 8, 30, tzinfo=UTC),
        dt.datetime(2026, 1, 31, 8, 50, tzinfo=UTC),
        "Janson",
    )
    assert welcome.abstract == "FOSDEM welcome and opening talk."


def test_zones_the_files_state_or_imply(drafts: dict[str, Draft]) -> None:
    assert {s.timezone.key for s in drafts["good-2025.json"].sessions} == {"US/Eastern"}  # a legacy name, from tzdata
    assert {s.timezone.key for s in drafts["fosdem-2026.xml"].sessions} == {"Europe/Brussels"}
    assert {s.timezone.key for s in drafts["33c3-2016.json"].sessions} == {"Etc/GMT-1"}  # no name, offsets +01:00
    assert drafts["33c3-2016.xml"].conference == "33. Chaos Communication Congress"


def test_late_night_events_keep_their_true_dates(drafts: dict[str, Draft]) -> None:
    late = sorted((s.date, i.start.date(), i.title) for s in drafts["33c3-2016.json"].sessions for i in s.items if i.start.date() != s.date)
    assert len(late) == 6
    assert all(on == day + dt.timedelta(days=1) for day, on, _ in late)


def test_kinds_of_the_real_types(drafts: dict[str, Draft]) -> None:
    def kinds(name: str) -> set[str]:
        return {i.kind for s in drafts[name].sessions for i in s.items}

    assert kinds("good-2025.json") == {"talk", "workshop", "panel", "other"}
    assert kinds("fosdem-2026.xml") == {"talk", "lightning", "panel", "workshop"}
    assert kinds("33c3-2016.json") == {"talk", "lightning", "other"}


def test_the_largest_export_reads_quickly() -> None:
    began = time.perf_counter()
    read_sample("fosdem-2026.xml")
    assert time.perf_counter() - began < 5  # about 0.2 s here; generous for a loaded CI runner


# --------------------------------------------------------------------------- through the shared builder


@pytest.mark.parametrize("name", COUNTS)
def test_real_exports_build_into_a_schedule(drafts: dict[str, Draft], name: str) -> None:
    schedule, warnings = build(drafts[name])
    assert len(schedule.talks) == COUNTS[name]
    assert sorted((t.id, t.start.astimezone(UTC), t.end.astimezone(UTC), schedule.session_of(t).room, t.authors) for t in schedule.talks) == [
        (guid, start, end, room, tuple(speakers)) for guid, start, end, room, speakers in rows(drafts[name])
    ]
    overlapping = 1 if name.startswith("good-2025") else 0  # two posters in the concourse: a warning, both loaded
    assert len(warnings) == overlapping


# --------------------------------------------------------------------------- small files with known mess


def frab(events: list[dict], *, zone: str | None = "Europe/Berlin", room: str = "Saal 1", day: str = "2024-12-27", day_start: str | None = None) -> bytes:
    conference: dict = {"title": "Test Con", "acronym": "test", "days": [{"index": 1, "date": day, "rooms": {room: events}}]}
    if zone:
        conference["time_zone_name"] = zone
    if day_start:
        conference["days"][0]["day_start"] = day_start
    return json.dumps({"schedule": {"version": "1", "conference": conference}}).encode()


def event(guid: str = "g1", **fields) -> dict:
    return {"guid": guid, "id": 1, "title": "A talk", "start": "10:00", "duration": "0:30", "type": "Talk", "persons": [{"public_name": "Ada"}], **fields}


def only_item(draft: Draft):
    return next(i for s in draft.sessions for i in s.items)


def test_durations_written_h_mm_and_hh_mm_ss() -> None:
    draft = frab_json.read(
        frab([event("a", duration="1:00"), event("b", start="11:00", duration="0:30"), event("c", start="12:00", duration="01:00:00")]), "t.json"
    )
    lengths = [i.end - i.start for s in draft.sessions for i in s.items]
    assert lengths == [dt.timedelta(hours=1), dt.timedelta(minutes=30), dt.timedelta(hours=1)]
    xml = b"<schedule><conference><title>T</title><time_zone_name>Europe/Berlin</time_zone_name></conference><day date='2024-12-27'><room name='R'>"
    xml += b"<event guid='x' id='1'><title>T</title><start>10:00</start><duration>1:00</duration><type>talk</type></event></room></day></schedule>"
    item = only_item(frab_xml.read(xml, "t.xml"))
    assert (item.start, item.end - item.start) == (dt.datetime(2024, 12, 27, 10, tzinfo=ZoneInfo("Europe/Berlin")), dt.timedelta(hours=1))


def test_legacy_zone_names_place_clock_times_on_the_right_instant_across_dst() -> None:
    before = only_item(frab_json.read(frab([event()], zone="US/Eastern", day="2025-03-08"), "t.json"))
    after = only_item(frab_json.read(frab([event()], zone="US/Eastern", day="2025-03-10"), "t.json"))
    assert before.start.astimezone(UTC) == dt.datetime(2025, 3, 8, 15, tzinfo=UTC)  # EST, -05:00
    assert after.start.astimezone(UTC) == dt.datetime(2025, 3, 10, 14, tzinfo=UTC)  # EDT, -04:00


def test_clock_times_after_midnight_belong_to_the_next_calendar_day() -> None:
    late = event("late", start="01:30", duration="1:00")
    draft = frab_json.read(frab([event(), late], day_start="2024-12-27T10:00:00+01:00"), "t.json")
    starts = [i.start for s in draft.sessions for i in s.items]
    assert starts == [dt.datetime(2024, 12, 27, 10, tzinfo=ZoneInfo("Europe/Berlin")), dt.datetime(2024, 12, 28, 1, 30, tzinfo=ZoneInfo("Europe/Berlin"))]
    assert draft.sessions[0].date == dt.date(2024, 12, 27)


def test_the_date_field_with_its_offset_wins_over_day_and_start() -> None:
    item = only_item(frab_json.read(frab([event(date="2024-12-28T02:00:00+01:00", start="02:00")]), "t.json"))
    assert item.start.astimezone(UTC) == dt.datetime(2024, 12, 28, 1, tzinfo=UTC)


def test_an_end_field_wins_over_the_duration() -> None:
    item = only_item(frab_json.read(frab([event(date="2024-12-27T10:00:00+01:00", end="2024-12-27T10:45:00+01:00", duration="0:30")]), "t.json"))
    assert item.end - item.start == dt.timedelta(minutes=45)


def test_a_duration_across_the_dst_change_is_elapsed_time() -> None:
    item = only_item(frab_json.read(frab([event(start="01:30", duration="2:00")], day="2024-03-31"), "t.json"))
    assert item.end.astimezone(UTC) - item.start.astimezone(UTC) == dt.timedelta(hours=2)


def test_an_empty_room_name_is_passed_on_and_noted() -> None:
    draft = frab_json.read(frab([event()], room=""), "t.json")
    assert draft.sessions[0].room == ""
    assert any(field == "" and place.path == '$.schedule.conference.days[0].rooms[""]' for place, field, _ in draft.notes)
    schedule, warnings = build(draft)
    assert schedule.sessions[0].room and any("no room name" in w.message for w in warnings)


def test_duplicate_guids_are_both_passed_on() -> None:
    draft = frab_json.read(frab([event("same"), event("same", start="11:00")]), "t.json")
    assert [i.id for i in draft.sessions[0].items] == ["same", "same"]
    schedule, warnings = build(draft)
    assert len(schedule.talks) == 2 and any("duplicate id" in w.message for w in warnings)


def test_subtitle_abstract_and_description_are_read_once_each() -> None:
    item = only_item(frab_json.read(frab([event(subtitle="Why", abstract="<p>Short &amp; sweet.</p>", description="Short & sweet. And **more**.")]), "t.json"))
    assert item.abstract == "Why\n\nShort & sweet. And more."
    item = only_item(frab_json.read(frab([event(abstract="Same text.", description="Same text.")]), "t.json"))
    assert item.abstract == "Same text."


def test_a_missing_guid_falls_back_to_the_id() -> None:
    item = only_item(frab_json.read(frab([{**event(), "guid": None, "id": 4242}]), "t.json"))
    assert item.id == "4242"


def test_speakers_keep_their_order_whatever_the_name_field() -> None:
    people = [{"public_name": "Zoe"}, {"name": "Adam"}, "Mia", {"id": 3}]
    draft = frab_json.read(frab([event(persons=people)]), "t.json")
    assert only_item(draft).authors == ["Zoe", "Adam", "Mia"]
    assert [place.path for place, _, _ in draft.notes] == ['$.schedule.conference.days[0].rooms["Saal 1"][0].persons[3]']


# --------------------------------------------------------------------------- time zones stated nowhere


NO_ZONE_JSON = frab([event()], zone=None)
NO_ZONE_XML = b"""<?xml version="1.0"?>
<schedule><conference><title>T</title></conference>
<day date="2024-12-27"><room name="R"><event guid="x" id="1"><title>T</title><start>10:00</start><duration>0:30</duration></event></room></day>
</schedule>"""


@pytest.mark.parametrize(("reader", "data"), [(frab_json, NO_ZONE_JSON), (frab_xml, NO_ZONE_XML)])
def test_a_file_with_no_zone_and_no_offsets_needs_schedule_timezone(reader, data: bytes) -> None:
    with pytest.raises(ScheduleError) as refused:
        reader.read(data, "nozone")
    (problem,) = refused.value.problems
    assert "SCHEDULE_TIMEZONE" in problem.message and "states no time zone" in problem.message
    assert problem.field in {"$.schedule.conference.time_zone_name", "time_zone_name"}
    item = only_item(reader.read(data, "nozone", ZoneInfo("Asia/Tokyo")))
    assert item.start == dt.datetime(2024, 12, 27, 10, tzinfo=ZoneInfo("Asia/Tokyo"))


def test_an_unknown_zone_name_is_noted_and_schedule_timezone_used() -> None:
    draft = frab_json.read(frab([event()], zone="Mars/Olympus_Mons"), "t.json", ZoneInfo("Europe/Paris"))
    assert draft.sessions[0].timezone == ZoneInfo("Europe/Paris")
    assert any("Mars/Olympus_Mons" in message for _, _, message in draft.notes)


# --------------------------------------------------------------------------- bad and hostile input


def test_truncated_json_is_refused_with_line_and_column() -> None:
    data = (SAMPLES / "good-2025.json").read_bytes()[:5000]
    with pytest.raises(ScheduleError) as refused:
        frab_json.read(data, "good-2025.json")
    (problem,) = refused.value.problems
    assert problem.line == 1 and "column" in problem.message and "Traceback" not in str(refused.value)
    assert str(refused.value).startswith("good-2025.json: schedule refused")


def test_not_utf8_and_deeply_nested_json_are_refused() -> None:
    with pytest.raises(ScheduleError):
        frab_json.read(b'{"a": "\xff"}', "t.json")
    with pytest.raises(ScheduleError, match="nested too deeply"):
        frab_json.read(b"[" * 100_000, "t.json")


@pytest.mark.parametrize(
    ("doc", "path"),
    [
        ([], "$"),
        ({"schedule": []}, "$.schedule"),
        ({"schedule": {"conference": "x"}}, "$.schedule.conference"),
        ({"schedule": {"conference": {"days": {"0": {}}}}}, "$.schedule.conference.days"),
        ({"schedule": {"conference": {"days": [1]}}}, "$.schedule.conference.days[0]"),
        ({"schedule": {"conference": {"days": [{"date": "2024-01-01", "rooms": []}]}}}, "$.schedule.conference.days[0].rooms"),
        ({"schedule": {"conference": {"days": [{"date": "2024-01-01", "rooms": {"Saal 1": {}}}]}}}, '$.schedule.conference.days[0].rooms["Saal 1"]'),
    ],
)
def test_containers_of_the_wrong_type_are_refused_with_their_json_path(doc, path: str) -> None:
    with pytest.raises(ScheduleError) as refused:
        frab_json.read(json.dumps(doc).encode(), "t.json")
    assert [p.field for p in refused.value.problems] == [path]
    assert refused.value.problems[0].line == 0


def test_fields_of_the_wrong_type_are_noted_with_their_json_path() -> None:
    bad = event(title=["not", "text"], duration=30, persons="Ada")
    draft = frab_json.read(frab([bad, 7]), "t.json")
    base = '$.schedule.conference.days[0].rooms["Saal 1"]'
    assert {place.path for place, _, _ in draft.notes} == {f"{base}[0].title", f"{base}[0].duration", f"{base}[0].persons", f"{base}[1]"}
    item = only_item(draft)
    assert (item.title, item.end, item.authors) == ("", None, [])


def test_a_build_loads_the_good_events_and_warns_about_the_broken_ones_with_their_paths() -> None:
    draft = frab_json.read(frab([event("bad", title=["x"]), event("zero", start="11:00", duration="0:00"), event("good", start="12:00")]), "t.json")
    schedule, warnings = build(draft)
    assert [t.id for t in schedule.talks] == ["good"]
    base = '$.schedule.conference.days[0].rooms["Saal 1"]'
    assert {w.field for w in warnings} == {f"{base}[0].title", f"{base}[1].end"}


XXE = b"""<?xml version="1.0"?>
<!DOCTYPE schedule [
  <!ENTITY secret SYSTEM "file:///etc/passwd">
]>
<schedule><conference><title>&secret;</title></conference></schedule>"""

BILLION_LAUGHS = b"""<?xml version="1.0"?>
<!DOCTYPE lolz [
 <!ENTITY lol "lol">
 <!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
 <!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">
 <!ENTITY lol4 "&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;">
 <!ENTITY lol9 "&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;">
]>
<schedule>&lol9;</schedule>"""

EXTERNAL_DTD_ENTITY = b"""<?xml version="1.0"?>
<!DOCTYPE schedule [<!ENTITY % remote SYSTEM "http://127.0.0.1:9/evil.dtd"> %remote;]>
<schedule/>"""


def test_an_external_entity_is_named_with_where_it_points() -> None:
    with pytest.raises(ScheduleError, match=r"external entity 'secret' \(file:///etc/passwd\)"):
        frab_xml.read(XXE, "evil.xml")


@pytest.mark.parametrize(("data", "line"), [(XXE, 3), (BILLION_LAUGHS, 3), (EXTERNAL_DTD_ENTITY, 2)])
def test_xml_with_entities_is_refused_at_their_line_before_expanding_or_fetching(data: bytes, line: int) -> None:
    began = time.perf_counter()
    with pytest.raises(ScheduleError) as refused:
        frab_xml.read(data, "evil.xml")
    assert time.perf_counter() - began < 1
    (problem,) = refused.value.problems
    assert problem.line == line and "nothing was expanded or fetched" in problem.message and "Traceback" not in str(refused.value)


def test_malformed_and_truncated_xml_are_refused_with_the_line() -> None:
    with pytest.raises(ScheduleError) as refused:
        frab_xml.read((SAMPLES / "33c3-2016.xml").read_bytes()[:3000], "33c3-2016.xml")
    (problem,) = refused.value.problems
    assert problem.line > 50 and "column" in problem.message
    with pytest.raises(ScheduleError, match="not a frab/pentabarf schedule"):
        frab_xml.read(b"<html><body/></html>", "page.html")


def test_a_namespaced_xml_export_reads_like_a_plain_one() -> None:
    xml = b"""<schedule xmlns="urn:example:schedule"><conference><time_zone_name>Europe/Berlin</time_zone_name></conference>
<day date="2024-12-27"><room name="R"><event guid="x" id="1"><title>T</title><start>10:00</start><duration>0:30</duration>
<persons><person>Ada</person><person>Grace</person></persons></event></room></day></schedule>"""
    item = only_item(frab_xml.read(xml, "ns.xml"))
    assert (item.id, item.authors, item.start.hour) == ("x", ["Ada", "Grace"], 10)


def test_xml_notes_carry_the_line_of_the_field() -> None:
    xml = b"""<schedule><conference><time_zone_name>Europe/Berlin</time_zone_name></conference>
<day date="2024-12-27"><room name="R">
<event guid="x" id="1"><title>T</title><start>10:00</start>
<duration>half an hour</duration></event></room></day></schedule>"""
    draft = frab_xml.read(xml, "t.xml")
    assert draft.notes == [(Place(line=4), "duration", "unreadable duration 'half an hour'; expected H:MM or HH:MM:SS")]
    assert only_item(draft).places["duration"] == Place(line=4)


# --------------------------------------------------------------------------- orjson


def _json_draft(data: bytes, source: str) -> Draft:
    """What the reader gave before orjson: the standard library's json."""
    return frab_json._draft(frab_json._Reader(source, None), frab_json._load(data, source))


@pytest.mark.parametrize("name", ["33c3-2016.json", "good-2025.json"])
def test_orjson_reads_the_samples_as_json_does(name: str):
    data = (Path(__file__).parent / "data" / "samples" / name).read_bytes()
    assert frab_json.read(data, name) == _json_draft(data, name)
    assert build(frab_json.read(data, name)) == build(_json_draft(data, name))


def test_orjson_reads_a_generated_pretalx_export_as_json_does():
    from bench.generate import generate_pretalx

    data = generate_pretalx(200, seed=2).encode()
    assert build(frab_json.read(data, "p.json")) == build(_json_draft(data, "p.json"))


@pytest.mark.parametrize("number", ["1180591620717411303424", "-9223372036854775809", "18446744073709551616", "1e400"])
def test_a_number_orjson_reads_otherwise_is_read_by_json(number: str):
    """orjson reads an integer past 64 bits as a float (and refuses 1e400): such a file is read by json, as before."""
    doc = {"schedule": {"conference": {"title": "T", "time_zone_name": "Europe/Berlin", "days": [{"date": "2024-01-01", "rooms": {"A": []}}]}}}
    event = {"guid": "g", "title": "x", "date": "2024-01-01T10:00:00+01:00", "start": "10:00", "duration": "00:30", "room": "A"}
    doc["schedule"]["conference"]["days"][0]["rooms"]["A"].append(event)
    data = json.dumps(doc).replace('"guid": "g"', f'"guid": {number}').encode()
    draft = frab_json.read(data, "n.json")
    assert draft == _json_draft(data, "n.json")
    assert draft.sessions[0].items[0].id == str(json.loads(number))


def _spelled_out(data: bytes, source: str, timezone: ZoneInfo | None = None) -> Draft:
    """The Draft as read before events were assembled straight from their objects: every event a RawEvent."""
    reader = frab_json._Reader(source, timezone, quick=True)
    raw = reader.conference(json.loads(data))
    for room in (room for day in raw.days for room in day.rooms):
        room.events = [reader.assembler._spelled(e) for e in room.events]
    return reader.assembler.draft(raw)


PLAIN_VARIANTS = [
    {},
    {"date": "2024-12-27T11:00:00+01:00", "start": "10:00"},  # disagrees: a note
    {"date": "", "start": "11:00"},
    {"date": "not a date"},
    {"start": "25:00"},
    {"start": ""},
    {"guid": "", "id": 7},
    {"guid": "  ", "id": "abc"},
    {"duration": ""},
    {"duration": "1:75"},
    {"end": "2024-12-27T12:00:00+01:00"},
    {"end": "  "},
    {"room": "Saal 2"},
    {"room": "  Saal 1 "},
    {"url": "ftp://x.org/talk"},
    {"url": " HTTPS://x.org/talk "},
    {"title": "  Coffee   Break  ", "type": "Talk"},
    {"title": None, "persons": None},
    {"persons": []},
    {"persons": [{"public_name": " Ada "}, {"public_name": "  "}]},
    {"persons": [{"name": "Ada"}]},
    {"subtitle": "Sub", "abstract": "Sub and more", "description": "<p>more</p>"},
    {"abstract": 12, "track": None},
    {"id": 1.5},
    {"id": True},
]


@pytest.mark.parametrize("zone", ["Europe/Berlin", None])
def test_events_assembled_straight_from_their_objects_read_as_when_spelled_out(zone: str | None) -> None:
    """A plain event is assembled from its JSON object at once; any event with something to note is spelled
    out first. Either way the items, their places and every note are those of the spelled-out reading."""
    base = {"date": "2024-12-27T11:00:00+01:00", "start": "11:00", "duration": "00:30", "title": "A talk", "persons": [{"public_name": "Ada"}]}
    events = [{**event(f"g{n}"), **base, **variant} for n, variant in enumerate(PLAIN_VARIANTS)]
    data = frab(events, zone=zone)
    quick, spelled = frab_json.read(data, "x.json"), _spelled_out(data, "x.json")
    assert quick.sessions == spelled.sessions and quick.notes == spelled.notes
    assert build(quick)[1] == build(spelled)[1]
    assert sum(type(e) is frab_json.PlainEvent for room in frab_json._Reader("x", None).conference(json.loads(data)).days[0].rooms for e in room.events) > 5
