"""iCalendar (.ics) exports read into a Draft: pretalx, frab and any calendar of timed events.

Instants come only from what the file states: a TZID naming an IANA zone (which wins over the file's
own VTIMEZONE, often a stale or wrong copy), `Z`, or, for floating times, the SCHEDULE_TIMEZONE passed
in; nothing is guessed. pretalx and frab write no speaker property: they append the speakers to
SUMMARY after " - ", so there the last " - " splits the title from its speakers.
"""

from __future__ import annotations

import datetime as dt
import re
import unicodedata
import warnings
from collections import Counter
from pathlib import PurePosixPath
from typing import Any
from urllib.parse import urlparse
from zoneinfo import ZoneInfo

import icalendar
from icalendar.prop import vBroken
from icalendar.timezone.windows_to_olson import WINDOWS_TO_OLSON

from bot.core.schedule import Problem, ScheduleError
from bot.sources import decode_utf8
from bot.sources.draft import Draft, DraftItem, DraftSession, Place
from bot.sources.kinds import TALK, kind_of
from bot.sources.markup import readable

MAX_LINE_CHARS = 1_000_000
"""Longest physical line: exporters fold lines at 75 octets, and even a 100,000-character abstract
written unfolded stays far below this; a longer line is not a calendar."""

_UTC = ZoneInfo("UTC")
_APPENDING_GENERATORS = ("pretalx", "ri_cal", "frab")  # PRODIDs of exporters that write "title - speakers"
_ABBREVIATIONS = {"PST": "America/Los_Angeles", "PDT": "America/Los_Angeles", "MDT": "America/Denver", "CDT": "America/Chicago", "EDT": "America/New_York"}
_GENERIC_NAMES = {"schedule", "calendar", "basic", "export", "events", "index", "feed", "ical", "ics", "all", "program", "programme"}
_PROPERTY = re.compile(r"[A-Z0-9-]+")
_NOT_SLUG = re.compile(r"[^a-z0-9]+")
_QUOTED = re.compile(r"'(.{1,80}?)'")
_ZONE_RULE_PARTS = frozenset({"FREQ", "UNTIL", "COUNT", "INTERVAL", "BYMONTH", "BYDAY", "BYMONTHDAY", "BYSETPOS", "WKST"})


def read(data: bytes, source: str, timezone: ZoneInfo | None = None) -> Draft:
    """The file's timed events as a lenient Draft; ScheduleError when it cannot be read at all."""
    text = decode_utf8(data.removeprefix(b"\xef\xbb\xbf"), source)
    lines = _scan(text, source)
    calendars = _parse(text, source)
    events = [event for calendar in calendars for event in calendar.walk("VEVENT")]
    if not events:
        raise ScheduleError(source, [Problem(1, "VEVENT", "the calendar has no events (no BEGIN:VEVENT), so there is nothing to schedule")])
    if len(lines) != len(events):  # cannot happen for a file icalendar read; then no lines rather than wrong ones
        lines = [{} for _ in events]
    return _Reader(source, calendars, timezone).draft(events, lines)


# --------------------------------------------------------------------------- reading the text


def _scan(text: str, source: str) -> list[dict[str, int]]:
    """Per VEVENT, in file order: the line of its BEGIN and of each property, to place every note.

    A content line never starts with a space (that is a folded continuation), so counting lines that
    read BEGIN:VEVENT finds the events in the order icalendar walks them. Huge lines are refused here.
    """
    events: list[dict[str, int]] = []
    current: dict[str, int] | None = None
    depth = 0  # components inside the current VEVENT (VALARM)
    for number, line in enumerate(text.split("\n"), 1):
        if len(line) > MAX_LINE_CHARS:
            message = f"a line of {len(line):,} characters; calendar lines are folded at 75, so this is not a calendar export"
            raise ScheduleError(source, [Problem(number, "(file)", message)])
        if not line or line[0] in " \t":
            continue
        head = line.rstrip("\r").upper()
        if head == "BEGIN:VEVENT":
            current, depth = {"BEGIN": number}, 0
            events.append(current)
        elif current is None:
            continue
        elif head.startswith("BEGIN:"):
            depth += 1
        elif head.startswith("END:"):
            current, depth = (None, 0) if depth == 0 else (current, depth - 1)
        elif depth == 0 and (name := _PROPERTY.match(head)):
            current.setdefault(name.group(), number)
    return events


def _parse(text: str, source: str) -> list[Any]:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # icalendar warns when it guesses a zone; zones are decided here
            calendars = icalendar.Calendar.from_ical(text, multiple=True)
    except Exception as err:  # icalendar raises ValueError, KeyError, IndexError, RecursionError ... for broken input
        message = f"not a readable iCalendar file: {_short(str(err))}"
        raise ScheduleError(source, [Problem(_line_of(text, str(err)), "(file)", message)]) from None
    if not calendars:
        raise ScheduleError(source, [Problem(1, "(file)", "not an iCalendar file: it has no complete BEGIN:VCALENDAR ... END:VCALENDAR")])
    return calendars


def _line_of(text: str, error: str) -> int:
    """The line icalendar quotes in its error, when it quotes one."""
    quoted = _QUOTED.search(error)
    if quoted is None:
        return 0
    start = quoted.group(1)[:40]
    return next((n for n, line in enumerate(text.split("\n"), 1) if line.startswith(start)), 0)


def _short(text: str, limit: int = 120) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


# --------------------------------------------------------------------------- time zones


class _Zones:
    """TZID to zone: a name the zone database knows wins; the file's own VTIMEZONE only defines other names.

    icalendar caches a file's VTIMEZONE under its TZID for the whole process, so a corrected file would
    still get the old definition; zones are therefore built here from this file's components alone.
    """

    def __init__(self, calendars: list[Any]) -> None:
        self.defined: dict[str, Any] = {}
        for calendar in calendars:
            for component in calendar.walk("VTIMEZONE"):
                self.defined.setdefault(str(component.get("TZID", "")).strip(), component)
        self.resolved: dict[str, tuple[dt.tzinfo | None, str]] = {}
        self.in_utc: dict[tuple[str, dt.datetime], dt.datetime] = {}
        self.used: Counter[str] = Counter()  # IANA keys of the times read, for the display zone

    def resolve(self, tzid: str) -> tuple[dt.tzinfo | None, str]:
        """The zone and, when it is not simply the IANA zone of that name, how it was found (or why not)."""
        if tzid not in self.resolved:
            self.resolved[tzid] = self._resolve(tzid.strip())
        return self.resolved[tzid]

    def _resolve(self, name: str) -> tuple[dt.tzinfo | None, str]:
        if zone := iana_zone(name):
            return zone, ""
        if zone := iana_zone(WINDOWS_TO_OLSON.get(name, "")):
            return zone, f"the Windows zone name {name!r} is read as {zone.key}"
        parts = name.strip("/").split("/")
        if name.startswith("/") and (zone := next(filter(None, (iana_zone("/".join(parts[i:])) for i in range(1, len(parts)))), None)):
            return zone, f"the zone {name!r} is read as {zone.key}"
        if name in self.defined:
            return self._own(name)
        if zone := iana_zone(_ABBREVIATIONS.get(name.upper(), "")):
            return zone, f"the zone abbreviation {name!r} is read as {zone.key}"
        return None, f"TZID {name!r} is no time zone we know and the file does not define it (no VTIMEZONE); name an IANA zone such as Europe/Berlin"

    def _own(self, name: str) -> tuple[dt.tzinfo | None, str]:
        component = self.defined[name]
        problem = _unusable_rules(component)
        if not problem:
            try:
                return component.to_tz(lookup_tzid=False), f"TZID {name!r} is not an IANA zone name; the file's own VTIMEZONE for it is used"
            except Exception as err:  # a VTIMEZONE dateutil cannot build (missing offsets, odd dates)
                problem = f"cannot be read ({_short(str(err), 80)})"
        return None, f"TZID {name!r} is not an IANA zone name and the file's VTIMEZONE for it {problem}; name an IANA zone such as Europe/Berlin"

    def instant(self, wall: dt.datetime, tzid: str, zone: dt.tzinfo) -> dt.datetime:
        """The wall time in the zone; a file's own zone is asked once per time and kept in UTC."""
        if isinstance(zone, ZoneInfo):
            self.used[zone.key] += 1
            return wall.replace(tzinfo=zone)
        key = (tzid, wall)
        if key not in self.in_utc:
            self.in_utc[key] = wall.replace(tzinfo=zone).astimezone(_UTC)
        return self.in_utc[key]

    def disagreement(self, tzid: str, wall: dt.datetime, zone: ZoneInfo) -> str:
        """A note when the file's VTIMEZONE for an IANA name gives another offset than the zone database."""
        component = self.defined.get(tzid.strip())
        if component is None or _unusable_rules(component):
            return ""
        try:
            theirs = wall.replace(tzinfo=component.to_tz(lookup_tzid=False)).utcoffset()
        except Exception:  # an unreadable copy changes nothing: the IANA zone is used anyway
            return ""
        ours = wall.replace(tzinfo=zone).utcoffset()
        if theirs == ours:
            return ""
        said = f"the file's VTIMEZONE for {zone.key} says UTC{_offset(theirs)} at {wall:%Y-%m-%d %H:%M}"
        return f"{said}, the zone database UTC{_offset(ours)}; the zone database is used"


def iana_zone(name: str) -> ZoneInfo | None:
    if not name or len(name) > 100:
        return None
    try:
        return ZoneInfo(name)
    except (KeyError, ValueError, OSError):  # unknown (ZoneInfoNotFoundError is a KeyError), a path, a folder
        return None


def _unusable_rules(component: Any) -> str:
    """Why a VTIMEZONE's rules cannot be a real zone's, or "". Real zones change offset a few times a
    year by yearly rules; a rule firing every second would make each lookup in it run for hours."""
    parts = component.subcomponents
    if not 1 <= len(parts) <= 4:
        return f"has {len(parts)} STANDARD/DAYLIGHT parts, not 1 to 4"
    dates = 0
    for part in parts:
        start = _value(part.get("DTSTART"))
        if not isinstance(start, dt.date) or start.year < 1583:
            return "has a part with no readable DTSTART after 1582"
        for rule in _listed(part.get("RRULE")):
            if not _yearly(rule):
                return "has a rule that is not a yearly change of offset"
        dates += sum(len(getattr(listed, "dts", ())) for listed in _listed(part.get("RDATE")))
    return f"lists {dates:,} RDATEs" if dates > 400 else ""


def _yearly(rule: Any) -> bool:
    try:
        until = rule.get("UNTIL", [])
        return (
            [str(freq).upper() for freq in rule.get("FREQ", [])] == ["YEARLY"]
            and set(rule) <= _ZONE_RULE_PARTS
            and all(len(values) <= 7 for key, values in rule.items() if key.startswith("BY"))
            and all(int(count) <= 1000 for count in rule.get("COUNT", []))
            and all(getattr(value, "year", 0) <= 2100 for value in until)
        )
    except (TypeError, ValueError, AttributeError):
        return False


def _offset(offset: dt.timedelta | None) -> str:
    if offset is None:
        return "?"
    minutes = int(offset.total_seconds() // 60)
    return f"{'+' if minutes >= 0 else '-'}{abs(minutes) // 60:02d}:{abs(minutes) % 60:02d}"


# --------------------------------------------------------------------------- events


class _Reader:
    def __init__(self, source: str, calendars: list[Any], timezone: ZoneInfo | None) -> None:
        self.source = source
        self.fallback = timezone
        self.zones = _Zones(calendars)
        self.notes: list[tuple[Place, str, str]] = []
        self.noted_zones: set[str] = set()
        self.floating: list[tuple[int, str, str]] = []  # (line, property, value) of times with no zone
        self.read_floating = False  # floating times were read in SCHEDULE_TIMEZONE
        first = calendars[0]
        self.prodid = str(first.get("PRODID", ""))
        self.hint = str(first.get("X-WR-TIMEZONE", "")).strip()
        self.conference = _calendar_name(calendars) or _name_from(source)

    def note(self, place: Place, name: str, message: str) -> None:
        self.notes.append((place, name, message))

    def draft(self, events: list[Any], lines: list[dict[str, int]]) -> Draft:
        appends = self._appends_speakers(events, lines)
        owner = self._owner(events, lines)
        entries = [entry for event, where in zip(events, lines, strict=True) if (entry := self._entry(event, where, appends, owner))]
        if self.floating and self.fallback is None:
            raise ScheduleError(self.source, [self._floating_problem()])
        zone = self._display_zone()
        return Draft(source=self.source, sessions=_sessions(entries, zone), conference=self.conference, strict=False, notes=self.notes)

    # -------------------------------------------------------------- one event

    def _entry(self, event: Any, where: dict[str, int], appends: bool, owner: str) -> tuple[dt.datetime, str, DraftItem] | None:
        """The event's start, room and item; None when it is left out (and noted)."""
        place = Place(line=where.get("BEGIN", 0))

        def at(name: str) -> Place:
            return Place(line=where.get(name, place.line))

        for name, error in event.errors:  # the times are reported where they are read
            if name not in _TIMES:
                self.note(at(name) if name else place, name or "VEVENT", f"unreadable {name or 'line'}, ignored: {_short(error)}")
        summary = _text(event, "SUMMARY")
        if _text(event, "STATUS").strip().upper() == "CANCELLED":
            self.note(at("STATUS"), "STATUS", f"{_short(summary, 80)!r} is cancelled (STATUS:CANCELLED); left out")
            return None
        start_prop = _first(event.get("DTSTART"))
        if start_prop is None:
            self.note(place, "DTSTART", f"{_short(summary, 80)!r} has no DTSTART; left out")
            return None
        if type(_value(start_prop)) is dt.date:
            self.note(at("DTSTART"), "DTSTART", f"{_short(summary, 80)!r} is an all-day event (a date with no time), not a talk; left out")
            return None
        if "RRULE" in event or "RDATE" in event:
            self.note(at("RRULE" if "RRULE" in event else "RDATE"), "RRULE", "a repeating event: only its first occurrence is loaded")
        start = self._instant(start_prop, "DTSTART", at("DTSTART"))
        end = self._end(event, start, at)
        if start is None or end is None:
            return None
        title, authors = self._title_and_authors(summary, event, appends, owner)
        kind, track = _kind_and_track(event, title)
        places = {name: at(prop) for name, prop in _PLACES.items() if prop in where}
        item = DraftItem(
            place=place,
            id=_text(event, "UID").strip(),
            title=title,
            start=start,
            end=end,
            kind=kind,
            authors=authors,
            abstract=readable(_text(event, "DESCRIPTION")),
            url=_text(event, "URL").strip(),
            track=track,
            places=places,
        )
        return start, " ".join(_text(event, "LOCATION").split()), item

    def _end(self, event: Any, start: dt.datetime | None, at: Any) -> dt.datetime | None:
        end_prop, duration = _first(event.get("DTEND")), _first(event.get("DURATION"))
        if end_prop is not None:
            if duration is not None:
                self.note(at("DURATION"), "DURATION", "the event has both DTEND and DURATION; DTEND is used")
            return self._instant(end_prop, "DTEND", at("DTEND"))
        if duration is not None:
            length = _value(duration)
            if not isinstance(length, dt.timedelta):
                self.note(at("DURATION"), "DURATION", f"unreadable DURATION {_short(str(duration), 40)!r}; left out")
                return None
            return None if start is None else (start.astimezone(_UTC) + length).astimezone(start.tzinfo)  # elapsed time
        self.note(at("DTSTART"), "DTEND", "the event has neither DTEND nor DURATION, so it ends when it starts")
        return start

    def _instant(self, prop: Any, name: str, place: Place) -> dt.datetime | None:
        value = _value(prop)
        if not isinstance(value, dt.datetime):
            kind = "a date with no time" if isinstance(value, dt.date) else "unreadable"
            self.note(place, name, f"{name} {_short(str(prop), 40)!r} is {kind}; the event is left out")
            return None
        wall, tzid = value.replace(tzinfo=None), str(prop.params.get("TZID", "")).strip()
        if tzid:
            return self._in_zone(wall, tzid, place, name)
        if value.tzinfo is not None:  # a UTC time, written with Z
            return value
        if self.fallback is None:
            self.floating.append((place.line, name, prop.to_ical().decode("utf-8", "replace")))
            return None
        self.read_floating = True
        return wall.replace(tzinfo=self.fallback)

    def _in_zone(self, wall: dt.datetime, tzid: str, place: Place, name: str) -> dt.datetime | None:
        zone, how = self.zones.resolve(tzid)
        if zone is None:
            self.note(place, name, f"{how}; the event is left out")
            return None
        if tzid not in self.noted_zones:
            self.noted_zones.add(tzid)
            disagreement = self.zones.disagreement(tzid, wall, zone) if isinstance(zone, ZoneInfo) else ""
            for message in filter(None, (how, disagreement)):
                self.note(place, name, message)
        return self.zones.instant(wall, tzid, zone)

    def _floating_problem(self) -> Problem:
        line, name, value = self.floating[0]
        others = len(self.floating) - 1
        more = f", like {others} other time{'s' * (others != 1)} in the file," if others else ""
        hint = f" (its X-WR-TIMEZONE {self.hint!r} is only a display hint for calendar apps)" if self.hint else ""
        message = (
            f"{name} {value} has no TZID and no Z (a floating time){more} and the file states no time zone{hint}: "
            "set SCHEDULE_TIMEZONE to the conference's IANA zone (e.g. Europe/Berlin); times are never guessed"
        )
        return Problem(line, name, message)

    def _display_zone(self) -> ZoneInfo:
        """The zone sessions are grouped and shown in: the zone floating times are in, else the file's."""
        hint = iana_zone(self.hint) or iana_zone(WINDOWS_TO_OLSON.get(self.hint, ""))
        if self.hint and hint is None:
            self.note(Place(), "X-WR-TIMEZONE", f"X-WR-TIMEZONE {self.hint!r} is not a time zone name; ignored")
        if self.read_floating and self.fallback is not None:
            return self.fallback
        if hint is not None:
            return hint
        if self.zones.used:
            return ZoneInfo(self.zones.used.most_common(1)[0][0])
        if self.fallback is not None:
            return self.fallback
        self.note(
            Place(), "X-WR-TIMEZONE", "the file names no time zone (its times are UTC): days are UTC days; set SCHEDULE_TIMEZONE to the conference's zone"
        )
        return _UTC

    # -------------------------------------------------------------- speakers

    def _appends_speakers(self, events: list[Any], lines: list[dict[str, int]]) -> bool:
        """Whether SUMMARY is "title - speakers": pretalx and frab always write it, whatever the speakers.

        Another generator counts as writing it only when every one of at least two summaries has " - "."""
        if any(name in self.prodid.lower() for name in _APPENDING_GENERATORS):
            return True
        summaries = [_text(event, "SUMMARY").rstrip() for event in events]
        if len(summaries) < 2 or not all(" - " in s or s.endswith(" -") for s in summaries):
            return False
        where = Place(line=lines[0].get("SUMMARY", 0)) if lines else Place()
        self.note(
            where, "SUMMARY", 'every SUMMARY reads "title - ...", as pretalx and frab write "title - speakers": speakers are taken from after the last " - "'
        )
        return True

    def _owner(self, events: list[Any], lines: list[dict[str, int]]) -> str:
        """An ORGANIZER named on every event is the calendar's owner, not each talk's speaker."""
        names = {_common_name(_first(event.get("ORGANIZER"))) for event in events}
        if len(events) < 2 or len(names) != 1 or not (owner := names.pop()):
            return ""
        self.note(Place(line=lines[0].get("ORGANIZER", 0)), "ORGANIZER", f"ORGANIZER {owner!r} is on every event: taken as the calendar's owner, not a speaker")
        return owner

    def _title_and_authors(self, summary: str, event: Any, appends: bool, owner: str) -> tuple[str, list[str]]:
        people = _people(event, owner)
        if appends:
            title, named = split_summary(summary)
            return title, people or named
        title = " ".join(summary.split())
        suffix = " - " + ", ".join(people)
        if people and title.endswith(suffix):
            title = title[: -len(suffix)].rstrip()
        return title, people


_TIMES = frozenset({"DTSTART", "DTEND", "DURATION"})
_PLACES = {
    "id": "UID",
    "title": "SUMMARY",
    "start": "DTSTART",
    "end": "DTEND",
    "room": "LOCATION",
    "abstract": "DESCRIPTION",
    "url": "URL",
    "kind": "CATEGORIES",
}


def split_summary(summary: str) -> tuple[str, list[str]]:
    """pretalx's and frab's "Title - Speaker A, Speaker B [Org - Lab, City]" split into title and speakers.

    A title may hold " - " and so may an affiliation in brackets, so the split is at the last " - "
    outside brackets, counted from the right so that a title's stray bracket cannot hide it; "Title - " has no speakers.
    """
    text = " ".join(summary.split())
    if text.endswith(" -") or text == "-":
        return text[:-1].rstrip(), []
    depth = 0
    for index in range(len(text) - 1, 1, -1):
        char = text[index]
        depth += (char in ")]}") - (char in "([{" and depth > 0)
        if depth == 0 and text[index - 2 : index + 1] == " - ":
            return text[: index - 2].strip(), split_names(text[index + 1 :])
    title, separator, names = text.rpartition(" - ")  # brackets that never close ("Alice :)"): the plain last " - "
    return (title.strip(), split_names(names)) if separator else (text, [])


def split_names(text: str) -> list[str]:
    """Names separated by commas; a comma inside brackets ("[University of California, Berkeley]") is part of a name."""
    names, current, depth = [], [], 0
    for char in text:
        depth += (char in "([{") - (char in ")]}" and depth > 0)
        if char == "," and depth == 0:
            names.append("".join(current))
            current = []
        else:
            current.append(char)
    names.append("".join(current))
    return [" ".join(name.split()) for name in names if name.strip()]


def _people(event: Any, owner: str) -> list[str]:
    """ORGANIZER (unless it is the calendar's owner) and then ATTENDEEs, by their common names, in order."""
    names = [_common_name(_first(event.get("ORGANIZER")))] + [_common_name(a) for a in _listed(event.get("ATTENDEE"))]
    seen: list[str] = []
    for name in names:
        if name and name != owner and name not in seen:
            seen.append(name)
    return seen


def _common_name(address: Any) -> str:
    params = getattr(address, "params", None)
    return " ".join(str(params.get("CN", "")).split()) if params is not None else ""


def _kind_and_track(event: Any, title: str) -> tuple[str, str]:
    """The first category that names a kind other than a plain talk decides; the categories are the track."""
    categories = [" ".join(str(c).split()) for listed in _listed(event.get("CATEGORIES")) for c in getattr(listed, "cats", [listed])]
    categories = [c for c in categories if c]
    kinds = [kind_of(category, title) for category in categories] or [kind_of("", title)]
    return next((kind for kind in kinds if kind != TALK), kinds[0]), ", ".join(categories)


# --------------------------------------------------------------------------- small helpers


def _listed(value: Any) -> list[Any]:
    if value is None:
        return []
    return list(value) if isinstance(value, list) else [value]


def _value(prop: Any) -> Any:
    """A date, time or duration property's value; None when icalendar could not read it."""
    return None if isinstance(prop, vBroken) else getattr(prop, "dt", None)


def _first(value: Any) -> Any:
    return value[0] if isinstance(value, list) else value


def _text(event: Any, name: str) -> str:
    value = _first(event.get(name))
    return "" if value is None else str(value)


def _calendar_name(calendars: list[Any]) -> str:
    for calendar in calendars:
        for name in ("X-WR-CALNAME", "NAME"):
            text = " ".join(str(_first(calendar.get(name, ""))).split())
            if text:
                return text
    return ""


def _name_from(source: str) -> str:
    """The file's name ("33c3-2016.ics" -> "33c3-2016") when the calendar names itself nowhere; not "schedule"."""
    stem = PurePosixPath(urlparse(source).path if "://" in source else source.replace("\\", "/")).stem
    return "" if stem.lower() in _GENERIC_NAMES else stem


def _slug(text: str) -> str:
    ascii_text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()
    return _NOT_SLUG.sub("-", ascii_text.lower()).strip("-")[:60]


def _sessions(entries: list[tuple[dt.datetime, str, DraftItem]], zone: ZoneInfo) -> list[DraftSession]:
    """One session per (local day, room), days numbered from the first; items by start, in file order on ties."""
    groups: dict[tuple[dt.date, str], list[tuple[dt.datetime, DraftItem]]] = {}
    for start, room, item in sorted(entries, key=lambda entry: entry[0]):
        groups.setdefault((start.astimezone(zone).date(), room), []).append((start, item))
    day_numbers = {day: number for number, day in enumerate(sorted({day for day, _ in groups}), 1)}
    sessions: list[DraftSession] = []
    taken: set[str] = set()
    for (day, room), timed in sorted(groups.items(), key=lambda group: (group[0][0], group[1][0][0], group[0][1])):
        number, items = day_numbers[day], [item for _, item in timed]
        session_id = _unused(f"day{number}-{_slug(room) or 'room'}", taken)
        name = f"{room} · Day {number}" if room else f"Day {number}"
        sessions.append(DraftSession(place=items[0].place, id=session_id, name=name, timezone=zone, date=day, items=items, room=room))
    return sessions


def _unused(wanted: str, taken: set[str]) -> str:
    """`wanted`, or `wanted-2`, `wanted-3`, ...: rooms "Hall 1" and "Hall-1" slug alike."""
    session_id, n = wanted, 1
    while session_id in taken:
        n += 1
        session_id = f"{wanted}-{n}"
    taken.add(session_id)
    return session_id
