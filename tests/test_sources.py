"""Any format, told from its content; one validator: strict drafts refused, lenient ones loaded with warnings."""

from __future__ import annotations

import datetime as dt
import logging
import time
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from bot.core.schedule import Kind, Problem, ScheduleError
from bot.sources import MAX_BYTES, check_utf8, decode_utf8, detect_format, let_go, load_schedule, parse_bytes, parse_schedule, read_file, yaml_source
from bot.sources.build import NO_ROOM, build, normalise_id
from bot.sources.draft import MAX_TEXT_CHARS, Draft, DraftItem, DraftSession, Place
from tests.conftest import TRACK28
from tests.test_schedule import VALID

BERLIN = ZoneInfo("Europe/Berlin")


def at(hour: int, minute: int = 0, day: int = 27) -> dt.datetime:
    return dt.datetime(2016, 12, day, hour, minute, tzinfo=BERLIN)


def item(ident: str, start: dt.datetime, minutes: int = 30, title: str = "", kind: str = "talk", **fields) -> DraftItem:
    end = start + dt.timedelta(minutes=minutes)
    return DraftItem(Place(path=f"events.{ident}"), ident, title or f"Talk {ident}", start, end, kind, **fields)


def session(*items: DraftItem, room: str = "Saal 1", ident: str = "day1-saal-1", date: dt.date | None = dt.date(2016, 12, 27), zone=BERLIN) -> DraftSession:
    return DraftSession(Place(path=f"rooms.{room}"), ident, f"{room} · Day 1", zone, date, list(items), room)


def lenient(*sessions: DraftSession, **fields) -> tuple:
    return build(Draft("export.json", list(sessions), "33C3", **fields))


def messages(warnings: list[Problem]) -> str:
    return "\n".join(w.message for w in warnings)


# ------------------------------------------------------------------ the format, from the content


@pytest.mark.parametrize(
    ("head", "fmt"),
    [
        (b"conference: X\nsessions: []\n", "yaml"),
        (b"# a comment\n\nsessions:\n", "yaml"),
        (b"", "yaml"),
        (b"---\nsessions: []\n", "yaml"),
        (b'{"conference": "X", "sessions": []}', "yaml"),  # JSON is YAML: ours has `sessions` at the top
        (b'{"$schema": "https://c3voc.de/schedule/schema.json", "schedule": {"conference": {}}}', "frab-json"),
        (b'{"schedule": {"conference": {"days": [', "frab-json"),  # truncated: still the JSON reader's to refuse
        (b'\xef\xbb\xbf<?xml version="1.0"?>\n<schedule>', "frab-xml"),
        (b"  \n<schedule><conference/></schedule>", "frab-xml"),
        (b"BEGIN:VCALENDAR\r\nVERSION:2.0\r\n", "ics"),
        (b"\xef\xbb\xbfbegin:vcalendar\n", "ics"),
    ],
)
def test_the_format_is_told_by_the_content(head: bytes, fmt: str):
    assert detect_format(head) == fmt


@pytest.mark.parametrize("data", [b"id,title,start\n1,Opening,10:00\n", b"%PDF-1.7\n\x00\x01\x02", b"<!DOCTYPE html><html><body>Log in</body></html>"])
def test_an_unknown_format_is_refused_naming_the_accepted_ones(data: bytes):
    with pytest.raises(ScheduleError) as info:
        parse_bytes(data, "programme.txt")
    text = str(info.value)
    assert "programme.txt: field '(file)':" in text
    assert all(name in text for name in ("YAML", "schedule.json", "schedule.xml", "iCalendar"))


def test_the_extension_does_not_matter(tmp_path: Path):
    disguised = tmp_path / "schedule.json"
    disguised.write_text(VALID, encoding="utf-8")
    assert [t.id for t in load_schedule(disguised).talks] == ["first", "second"]


# ------------------------------------------------------------------ refused before parsing


def test_a_200_mb_file_is_refused_at_once_with_its_name_and_the_limit(tmp_path: Path):
    huge = tmp_path / "huge.json"
    with huge.open("wb") as handle:
        handle.truncate(200 * 2**20)
    started = time.perf_counter()
    with pytest.raises(ScheduleError) as info:
        load_schedule(huge)
    assert time.perf_counter() - started < 0.5
    assert f"{huge}: field '(file)': the file has 200.0 MB, more than the {MAX_BYTES // 2**20} MB" in str(info.value)


def test_bytes_over_the_limit_are_refused_and_the_limit_can_be_raised():
    with pytest.raises(ScheduleError, match=r"more than the [0-9.e-]+ MB a schedule may have"):
        parse_bytes(VALID.encode(), "big.yaml", max_bytes=100)
    assert parse_bytes(VALID.encode(), "big.yaml", max_bytes=None)[0].talks


def test_text_that_is_not_utf8_is_refused_with_its_place():
    latin1 = VALID.replace("Ada Lovelace", "Ada Lovelacé").encode("latin-1")
    for data, name in ((latin1, "s.yaml"), (b'{"schedule": {"conference": {"title": "Caf\xe9"}}}', "s.json")):
        with pytest.raises(ScheduleError) as info:
            parse_bytes(data, name)
        problem = info.value.problems[0]
        assert "not UTF-8 text: byte 0xe9" in problem.message
        assert problem.line == (13 if name == "s.yaml" else 1)


@pytest.mark.parametrize("piece", [1, 2, 3, 1 << 20])
def test_utf8_checked_in_pieces_refuses_what_decoding_whole_refuses(piece: int):
    """Checked a piece at a time (one decode of a big file holds the GIL): a character cut between two
    pieces is fine, a bad byte is named at the same line and column as before."""
    text = VALID.replace("Ada Lovelace", "Ada Lövelace 山田 🎉")
    check_utf8(text.encode(), "s.yaml", piece=piece)
    for bad in (text.encode().replace("山".encode(), b"\xe5\xb1"), text.encode() + b"\xf0\x9f", b"\xff" + text.encode()):
        with pytest.raises(ScheduleError) as whole:
            decode_utf8(bad, "s.yaml")
        with pytest.raises(ScheduleError) as pieces:
            check_utf8(bad, "s.yaml", piece=piece)
        assert pieces.value.problems == whole.value.problems


def test_our_yaml_read_from_bytes_is_what_the_text_gives():
    """libyaml reads the file's bytes: no decoding to text and back to UTF-8 (twice 30 ms of GIL at 10,000 talks)."""
    for data in (TRACK28.read_bytes(), VALID.replace("Ada Lovelace", "Ada Lövelace").encode(), b"\xef\xbb\xbf" + VALID.encode()):
        assert yaml_source.read(data, "s.yaml") == yaml_source.read_text(data.decode(), "s.yaml")
    broken = VALID.replace("title: First talk", "title: [First talk").encode()
    refusals = []
    for read in (lambda: yaml_source.read(broken, "s.yaml"), lambda: yaml_source.read_text(broken.decode(), "s.yaml")):
        with pytest.raises(ScheduleError) as info:
            read()
        refusals.append(info.value.problems)
    assert refusals[0] == refusals[1]


def test_a_control_character_is_refused_at_its_line_and_column():
    data = VALID.replace("title: Second talk", "title: Sécond\x07 talk").encode()
    for read in (lambda: yaml_source.read(data, "s.yaml"), lambda: yaml_source.read_text(data.decode(), "s.yaml")):
        with pytest.raises(ScheduleError) as info:
            read()
        assert info.value.problems == [Problem(19, "title", "YAML syntax error, column 22: unacceptable character #x0007: control characters are not allowed")]


def test_a_draft_is_let_go_once_built():
    """Dropped whole, a big Draft is one long C cascade; emptied a few items at a time, it is not."""
    draft = yaml_source.read(VALID.encode(), "s.yaml")
    schedule, _ = build(draft)
    let_go(draft)
    assert draft.sessions == [] and [t.id for t in schedule.talks] == ["first", "second"]


def test_a_missing_file_names_no_line(tmp_path: Path):
    with pytest.raises(ScheduleError) as info:
        read_file(tmp_path / "gone.xml")
    assert str(info.value).splitlines()[1] == f"  {tmp_path / 'gone.xml'}: field '(file)': file not found"


def test_a_problem_without_a_line_names_its_json_path():
    err = ScheduleError("s.json", [Problem(0, "schedule.conference.days[0].date", "expected a date"), Problem(7, "title", "must not be empty")])
    assert str(err).splitlines()[1:] == ["  s.json: field 'schedule.conference.days[0].date': expected a date", "  s.json:7: field 'title': must not be empty"]


# ------------------------------------------------------------------ lenient: what a person would call valid


def test_a_clean_export_loads_without_warnings():
    schedule, warnings = lenient(session(item("a", at(11)), item("b", at(11, 30), kind="keynote", url="https://x.org/b", track="CCC")))
    assert warnings == []
    assert [t.id for t in schedule.talks] == ["a", "b"]
    b = schedule.talk("b")
    assert (b.kind, b.url, b.track) == (Kind.KEYNOTE, "https://x.org/b", "CCC")
    assert schedule.conference == "33C3"
    assert schedule.sessions[0].room == "Saal 1"


def test_an_event_without_a_title_or_with_no_duration_is_reported_and_left_out():
    schedule, warnings = lenient(session(item("a", at(11)), item("b", at(12), title="  "), item("c", at(13), minutes=0), item("d", at(14), minutes=-15)))
    assert [t.id for t in schedule.talks] == ["a"]
    assert len(warnings) == 3
    assert "an event with no title (2016-12-27 12:00 in Saal 1) is left out" in warnings[0].message
    assert warnings[0].field == "events.b.title"
    assert "'Talk c': end 2016-12-27T13:00:00+01:00 is not after start" in warnings[1].message
    assert "left out" in warnings[2].message


def test_duplicate_ids_get_a_suffix_and_a_warning():
    schedule, warnings = lenient(session(item("x", at(11)), item("x", at(12)), item("x-2", at(13)), item("x", at(14))))
    assert [t.id for t in schedule.talks] == ["x", "x-3", "x-2", "x-4"]  # the file's own x-2 keeps its id
    assert messages(warnings).count("duplicate id 'x'") == 2


def test_foreign_ids_are_normalised_to_our_charset_the_same_way_every_time():
    guid = "B8E0EB47-4832-4726-BC9B-9015BD96BECF"
    assert normalise_id(guid) == "b8e0eb47-4832-4726-bc9b-9015bd96becf"
    assert normalise_id("pretalx-2025-RXCFVB@cfp.openondemand.org") == "pretalx-2025-rxcfvb-cfp.openondemand.org"
    assert normalise_id("  _Talk #12 (Saal 1)") == "talk--12--saal-1-"
    assert len(normalise_id("x" * 300)) == 100
    schedule, _ = lenient(session(item(guid, at(11)), item("", at(12), title="Lightning Talks!")))
    assert [t.id for t in schedule.talks] == ["b8e0eb47-4832-4726-bc9b-9015bd96becf", "lightning-talks-"]


def test_overlaps_in_a_room_are_only_a_warning():
    schedule, warnings = lenient(session(item("a", at(11), minutes=60), item("b", at(11, 30))))
    assert len(schedule.talks) == 2
    assert "'b' starts at 11:30 before 'a' ends at 12:00 in Saal 1" in messages(warnings)


def test_an_empty_room_becomes_no_room_with_a_warning():
    schedule, warnings = lenient(session(item("a", at(11)), room="", ident="day1"))
    assert schedule.sessions[0].room == NO_ROOM
    assert "has no room name" in messages(warnings)


def test_what_readers_noted_is_among_the_warnings():
    notes = [(Place(path="schedule.conference"), "time_zone_name", "unknown zone 'Mars/Olympus'; using the offsets")]
    _, warnings = lenient(session(item("a", at(11))), notes=notes)
    assert warnings == [Problem(0, "schedule.conference.time_zone_name", "unknown zone 'Mars/Olympus'; using the offsets")]


def test_a_draft_without_events_is_refused():
    with pytest.raises(ScheduleError, match="the file has no events"):
        lenient()
    with pytest.raises(ScheduleError) as info:
        lenient(session(item("a", at(11), minutes=0)))
    assert "none of its events can be loaded" in str(info.value)
    assert "not after start" in str(info.value)


def test_a_time_without_a_zone_is_refused_never_guessed():
    naive = item("a", dt.datetime(2016, 12, 27, 11, 0))
    with pytest.raises(ScheduleError, match="set SCHEDULE_TIMEZONE"):
        lenient(session(naive))


def test_unknown_kinds_unsafe_urls_and_huge_texts_are_mended_with_a_warning():
    odd = item("a", at(11), kind="séance", url="javascript:alert(1)", abstract="x" * (MAX_TEXT_CHARS + 5))
    schedule, warnings = lenient(session(odd))
    talk = schedule.talk("a")
    assert (talk.kind, talk.url, len(talk.abstract)) == (Kind.OTHER, "", MAX_TEXT_CHARS)
    assert len(warnings) == 3


def test_a_session_past_midnight_takes_its_first_items_date_and_zoneinfo_times_keep_their_instant():
    late = session(item("a", at(0, 30, day=28)), date=dt.date(2016, 12, 27))
    schedule, warnings = lenient(late)
    assert warnings == []
    assert schedule.sessions[0].date == dt.date(2016, 12, 28)
    start = schedule.talk("a").start
    assert type(start.tzinfo) is dt.timezone  # what the prepared copy stores
    assert start == at(0, 30, day=28)
    assert start.utcoffset() == dt.timedelta(hours=1)


def test_a_session_longer_than_a_day_is_split_by_day():
    schedule, warnings = lenient(session(item("a", at(11)), item("b", at(11, day=28))))
    assert [(s.id, s.date) for s in schedule.sessions] == [("day1-saal-1", dt.date(2016, 12, 27)), ("day1-saal-1-2", dt.date(2016, 12, 28))]
    assert "split into 2 sessions" in messages(warnings)


def test_a_session_without_a_zone_is_shown_in_utc_with_a_warning():
    schedule, warnings = lenient(session(item("a", at(11)), zone=None))
    assert schedule.sessions[0].timezone.key == "UTC"
    assert "SCHEDULE_TIMEZONE" in messages(warnings)


def test_follows_that_name_nothing_are_dropped():
    schedule, warnings = lenient(session(item("a", at(11)), item("b", at(12), follows=["A", "nowhere"])))
    assert schedule.talk("b").follows == ("a",)
    assert "unknown item id 'nowhere'" in messages(warnings)


# ------------------------------------------------------------------ strict: the same rules refuse


@pytest.mark.parametrize(
    ("items", "expected"),
    [
        ((item("a", at(11), title=" "),), "must not be empty"),
        ((item("a", at(11), minutes=0),), "is not after start"),
        ((item("a", at(11)), item("a", at(12))), "duplicate id 'a'"),
        ((item("a", at(11), minutes=60), item("b", at(11, 30))), "before 'a' ends"),
        ((item("a", at(11), follows=["z"]),), "unknown item id 'z'"),
        ((item("Big", at(11)),), "must be lowercase letters"),
        ((item("a", at(11), url="ftp://x"),), "http:// or https://"),
    ],
)
def test_a_strict_draft_is_refused_by_the_same_rules(items, expected):
    with pytest.raises(ScheduleError, match=expected):
        build(Draft("ours.yaml", [session(*items)], strict=True))
    schedule, warnings = lenient(session(item("ok", at(9)), *items))  # the same events, lenient: loaded
    assert schedule.talk("ok")
    assert warnings or expected.startswith("must be lowercase")  # a foreign id is normalised, not warned about


def test_our_yaml_may_allow_overlaps_which_are_then_warnings():
    overlapping = VALID.replace("start: 2020-12-10T06:15:00-08:00", "start: 2020-12-10T06:10:00-08:00")
    with pytest.raises(ScheduleError, match="before 'first' ends"):
        parse_schedule(overlapping)
    schedule, warnings = parse_bytes(("allow_overlaps: true\n" + overlapping).encode(), "ours.yaml")
    assert len(schedule.talks) == 2
    assert "before 'first' ends" in warnings[0].message


def test_our_yaml_takes_every_kind_and_optional_url_and_track():
    text = VALID.replace("kind: spotlight", "kind: lightning").replace(
        "        abstract: About engines.\n", "        abstract: About engines.\n        url: https://example.org/first\n        track: Engines\n"
    )
    schedule = parse_schedule(text, "test.yaml")
    first, second = schedule.talks
    assert (first.url, first.track, second.kind.label) == ("https://example.org/first", "Engines", "Lightning talk")
    with pytest.raises(ScheduleError) as info:
        parse_schedule(text.replace("https://example", "file://example"), "test.yaml")
    assert (info.value.problems[0].line, info.value.problems[0].field) == (15, "sessions[0].items[0].url")


def test_kinds_cover_real_conferences_and_keep_ours():
    assert {k.value: k.label for k in Kind} == {
        "oral": "Oral",
        "spotlight": "Spotlight",
        "qa": "Q&A",
        "break": "Break",
        "talk": "Talk",
        "keynote": "Keynote",
        "workshop": "Workshop",
        "lightning": "Lightning talk",
        "panel": "Panel",
        "other": "Other",
    }


# ------------------------------------------------------------------ the log: one line, details at DEBUG


def test_warnings_are_logged_as_one_line_with_details_at_debug(tmp_path: Path, caplog: pytest.LogCaptureFixture):
    path = tmp_path / "ours.yaml"
    third = "      - {id: third, kind: talk, start: 2020-12-10T06:20:00-08:00, end: 2020-12-10T06:30:00-08:00, title: Third}\n"
    path.write_text("allow_overlaps: true\n" + VALID.replace("start: 2020-12-10T06:15:00-08:00", "start: 2020-12-10T06:10:00-08:00") + third)
    with caplog.at_level(logging.DEBUG, logger="bot.sources"):
        load_schedule(path)
    records = [r for r in caplog.records if r.name == "bot.sources"]
    assert [r.getMessage() for r in records if r.levelno == logging.WARNING] == [f"{path}: 2 warnings, details at DEBUG"]
    details = [r.getMessage() for r in records if r.levelno == logging.DEBUG]
    assert details[0] == f"{path}:16: field 'sessions[0].items[1].start': 'second' starts at 06:10 before 'first' ends at 06:15 in session s1"
    assert len(details) == 2


def test_builds_share_one_tzinfo_per_offset_so_versions_compare_fast():
    """Comparing datetimes of two tzinfo objects calls utcoffset() on both; of one, it compares fields."""
    first, second = (parse_bytes(VALID.encode(), "s.yaml")[0] for _ in range(2))
    zones = {id(t.start.tzinfo) for s in (first, second) for t in s.talks} | {id(t.end.tzinfo) for s in (first, second) for t in s.talks}
    assert len(zones) == 1
    assert [(t.start, t.end) for t in first.talks] == [(t.start, t.end) for t in second.talks]
    named = dt.datetime(2020, 12, 10, 6, tzinfo=dt.timezone(dt.timedelta(hours=-8), "PST"))
    item = DraftItem(Place(1), "a", "A", named, named + dt.timedelta(minutes=5), "talk")
    talk = build(Draft("x.json", [DraftSession(Place(1), "s", "S", None, named.date(), [item])]))[0].talks[0]
    assert talk.start.tzname() == "PST" and talk.start == named
