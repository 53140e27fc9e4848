"""What frab JSON and frab XML share: the same conference in two spellings, turned into one Draft.

Each reader only spells its format out into `RawConference` (texts and places, nothing checked); this
module decides the instants, zones, kinds and texts once for both, so a JSON and an XML export of one
conference give the same Draft. The rules every format shares (end after start, unique ids, titles)
are the builder's, not ours: here odd things are only noted.
"""

from __future__ import annotations

import datetime as dt
import functools
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from bot.core.schedule import Problem, ScheduleError
from bot.sources.draft import Draft, DraftItem, DraftSession, Place
from bot.sources.kinds import kind_of
from bot.sources.markup import readable

UTC = dt.UTC
NEEDS_ZONE = (
    "this file states no time zone and its times carry no UTC offset, so its times could be anywhere: "
    "set SCHEDULE_TIMEZONE to the conference's zone (for example Europe/Berlin)"
)
_CLOCK = re.compile(r"^(\d{1,2}):(\d{2})(?::(\d{2}))?$")
_DURATION = re.compile(r"^(\d{1,3}):(\d{2})(?::(\d{2}))?$")
_SLUG = re.compile(r"[^a-z0-9]+")
_FINE = ("title", "date", "start", "duration", "end", "room", "guid")  # the fields whose own place a DraftItem keeps


@dataclass
class RawEvent:
    """One event as its format spells it: texts only, with the place of each field."""

    place: Place
    guid: str = ""
    id: str = ""
    title: str = ""
    date: str = ""  # ISO 8601 instant, normally with its offset
    start: str = ""  # "HH:MM" on the conference day, in the conference zone
    duration: str = ""  # "0:30", "01:00" or "01:00:00"
    end: str = ""  # ISO 8601 instant (newer exports)
    room: str = ""
    type: str = ""
    track: str = ""
    url: str = ""
    subtitle: str = ""
    abstract: str = ""
    description: str = ""
    persons: list[str] = field(default_factory=list)
    places: dict[str, Place] = field(default_factory=dict)

    def at(self, name: str) -> Place:
        """The place of a field: its own when the reader noted one; in JSON, the field's path (written out only when asked for)."""
        place = self.places.get(name)
        if place is not None:
            return place
        return Place(path=f"{self.place.path}.{name}") if self.place.path else self.place


@dataclass(slots=True)
class PlainEvent:
    """A JSON event whose fields are all text, absent, or a number as its id, and whose persons all have a
    name: most events of an export. It is assembled straight from its object; only one that needs a
    note is spelled out as a RawEvent first (by the reader's `spell`), and then assembled as ever."""

    path: str
    node: dict


@dataclass
class RawRoom:
    place: Place
    name: str
    events: list[RawEvent | PlainEvent] = field(default_factory=list)


@dataclass
class RawDay:
    place: Place
    date: str
    start: str = ""  # the day's first instant (day_start / start): where "after midnight" begins
    rooms: list[RawRoom] = field(default_factory=list)


@dataclass
class RawConference:
    place: Place
    title: str = ""
    time_zone_name: str = ""
    zone_place: Place = field(default_factory=Place)
    day_change: str = ""  # "09:00:00": the clock time a conference day starts (FOSDEM)
    days: list[RawDay] = field(default_factory=list)


@functools.lru_cache(maxsize=4096)  # a conference has a few thousand distinct times: each is read once
def parse_instant(text: str) -> dt.datetime | None:
    try:
        return dt.datetime.fromisoformat(text.strip())
    except ValueError:
        return None


@functools.lru_cache(maxsize=4096)
def parse_clock(text: str) -> dt.time | None:
    match = _CLOCK.match(text.strip())
    if not match or int(match[1]) > 23 or int(match[2]) > 59 or int(match[3] or 0) > 59:
        return None
    return dt.time(int(match[1]), int(match[2]), int(match[3] or 0))


@functools.lru_cache(maxsize=4096)
def parse_duration(text: str) -> dt.timedelta | None:
    """'0:30', '01:00' or '01:00:00' (hours may exceed 24); None when it is none of these."""
    match = _DURATION.match(text.strip())
    if not match or int(match[2]) > 59 or int(match[3] or 0) > 59:
        return None
    return dt.timedelta(hours=int(match[1]), minutes=int(match[2]), seconds=int(match[3] or 0))


def offset_zone(moment: dt.datetime | None) -> ZoneInfo | None:
    """The fixed zone (Etc/GMT-1 for +01:00) of an instant's offset, for files that give offsets but no zone name."""
    offset = moment.utcoffset() if moment else None
    if offset is None or offset % dt.timedelta(hours=1) or abs(offset) > dt.timedelta(hours=14):
        return None
    hours = int(offset / dt.timedelta(hours=1))
    return ZoneInfo("Etc/UTC" if hours == 0 else f"Etc/GMT{-hours:+d}")


def load_zone(name: str) -> ZoneInfo | None:
    try:
        return ZoneInfo(name.strip())
    except (ZoneInfoNotFoundError, ValueError, OSError):
        return None


def slug(text: str) -> str:
    return _SLUG.sub("-", text.lower()).strip("-")[:60]


class Assembler:
    """Turns a RawConference into a Draft; collects notes, and the problems that refuse the file."""

    def __init__(
        self,
        source: str,
        timezone: ZoneInfo | None,
        notes: list[tuple[Place, str, str]] | None = None,
        spell: Callable[[dict, str], RawEvent] | None = None,
    ) -> None:
        self.source = source
        self.spell = spell  # a PlainEvent's RawEvent, as its reader spells it out
        self.fallback = timezone
        self.notes: list[tuple[Place, str, str]] = notes if notes is not None else []
        self.problems: list[Problem] = []
        self.zone: ZoneInfo | None = None
        self.zone_place = Place()
        self.day_change: dt.time | None = None
        self.session_ids: set[str] = set()
        self.zoned: dict[tuple[int, ZoneInfo | None], tuple[dt.datetime, dt.datetime | None]] = {}  # see _in_zone
        self.ends: dict[tuple[int, dt.timedelta], tuple[dt.datetime, dt.datetime]] = {}  # (start, duration) -> end

    def note(self, place: Place, name: str, message: str) -> None:
        """A JSON place is already the field's own path, so its field name stays empty (the builder joins the two)."""
        self.notes.append((place, "" if place.path else name, message))

    def refuse(self, place: Place, name: str, message: str) -> None:
        self.problems.append(Problem(place.line, place.path or name, message))

    def draft(self, raw: RawConference) -> Draft:
        self.zone = self._conference_zone(raw)
        self.zone_place = raw.zone_place
        if self.zone is None:  # each day's zone is then told by its events' offsets: spell them all out
            for room in (room for day in raw.days for room in day.rooms):
                room.events = [self._spelled(event) for event in room.events]
        self.day_change = parse_clock(raw.day_change) if raw.day_change else None
        if not raw.days:
            self.note(raw.place, "days", "the file lists no days, so no events")
        sessions = [session for number, day in enumerate(raw.days, 1) for session in self._day(day, number)]
        if self.problems:
            raise ScheduleError(self.source, _unique(self.problems))
        return Draft(source=self.source, sessions=sessions, conference=raw.title.strip(), strict=False, notes=self.notes)

    def _conference_zone(self, raw: RawConference) -> ZoneInfo | None:
        name = raw.time_zone_name.strip()
        if not name:
            return self.fallback
        zone = load_zone(name)
        if zone is None:
            using = f"using SCHEDULE_TIMEZONE ({self.fallback.key})" if self.fallback else "using the offsets of its times"
            self.note(raw.zone_place, "time_zone_name", f"unknown time zone {name!r}; {using}")
            return self.fallback
        if self.fallback and self.fallback.key != zone.key:
            self.note(raw.zone_place, "time_zone_name", f"the file's zone {name} is used, not SCHEDULE_TIMEZONE ({self.fallback.key})")
        return zone

    def _day(self, day: RawDay, number: int) -> list[DraftSession]:
        day_start = parse_instant(day.start) if day.start else None
        date = _date(day.date) or (day_start.date() if day_start else None)
        if date is None:
            self.note(day.place, "date", f"unreadable day date {day.date!r}; its events keep their own dates")
        zone = self.zone or offset_zone(day_start) or next(filter(None, (offset_zone(parse_instant(e.date)) for r in day.rooms for e in r.events)), None)
        if zone is None and any(r.events for r in day.rooms):
            self.refuse(self.zone_place, "time_zone_name", NEEDS_ZONE)
        boundary = day_start.astimezone(zone).time() if day_start and day_start.tzinfo and zone else self.day_change
        return [self._session(room, number, date, zone, boundary) for room in day.rooms]

    def _session(self, room: RawRoom, number: int, date: dt.date | None, zone: ZoneInfo | None, boundary: dt.time | None) -> DraftSession:
        name = room.name.strip()
        if not name:
            self.note(room.place, "room", "a room with an empty name")
        session_id = self._session_id(f"day{number}-{slug(name) or 'room'}")
        items = []
        for event in room.events:
            item = self._plain_item(event, name, zone) if type(event) is PlainEvent else None
            items.append(item if item is not None else self._item(self._spelled(event), name, date, zone, boundary))
        return DraftSession(
            place=room.place,
            id=session_id,
            name=f"{name} · Day {number}" if name else f"Day {number}",
            timezone=zone,
            date=date,
            items=items,
            room=name,
        )

    def _session_id(self, wanted: str) -> str:
        session_id, n = wanted, 1
        while session_id in self.session_ids:
            n += 1
            session_id = f"{wanted}-{n}"
        self.session_ids.add(session_id)
        return session_id

    def _item(self, event: RawEvent, room: str, date: dt.date | None, zone: ZoneInfo | None, boundary: dt.time | None) -> DraftItem:
        if event.room.strip() and event.room.strip() != room:
            self.note(event.at("room"), "room", f"the event names room {event.room.strip()!r} but is listed under {room!r}; kept under {room!r}")
        start = self._start(event, date, zone, boundary)
        event_id = event.guid.strip() or event.id.strip()
        if not event_id:
            self.note(event.at("guid"), "guid", "the event has neither guid nor id")
        return DraftItem(
            place=event.place,
            id=event_id,
            title=" ".join(event.title.split()),
            start=start,
            end=self._end(event, start, zone),
            kind=kind_of(event.type, event.title),
            authors=[name for name in map(str.strip, event.persons) if name],  # as written: "Matt  Bernhard" is how 33C3 spells him everywhere
            abstract=_abstract(event),
            url=self._url(event),
            track=" ".join(event.track.split()),
            places={name: event.places[name] for name in _FINE if name in event.places} if event.places else {},
        )

    def _spelled(self, event: RawEvent | PlainEvent) -> RawEvent:
        if type(event) is not PlainEvent:
            return event
        assert self.spell is not None, "a reader that makes PlainEvents spells them out"
        return self.spell(event.node, event.path)

    def _plain_item(self, event: PlainEvent, room: str, zone: ZoneInfo | None) -> DraftItem | None:
        """What _item makes of the event when it would note nothing (a date, a start that agrees with it, a
        guid, a duration and no end, a web address or none); None for any other: _item reads that one."""
        node = event.node
        get = node.get
        date, start, duration, guid = get("date"), get("start") or "", get("duration"), get("guid")
        if type(date) is not str or type(duration) is not str or type(guid) is not str or get("end"):
            return None
        listed, url = (get("room") or "").strip(), (get("url") or "").strip()
        if (listed and listed != room) or (url and not url.lower().startswith(("http://", "https://"))):
            return None
        moment, length, event_id = parse_instant(date) if date.strip() else None, parse_duration(duration), guid.strip()
        clock = parse_clock(start) if start.strip() else None
        if moment is None or length is None or not event_id or (start.strip() and (clock is None or moment.time() != clock)):
            return None
        begins = self._in_zone(moment, zone)
        title, persons = get("title") or "", get("persons")
        return DraftItem(
            place=Place(path=event.path),
            id=event_id,
            title=" ".join(title.split()),
            start=begins,
            end=self._after(begins, length),
            kind=kind_of(get("type") or "", title),
            authors=[person["public_name"].strip() for person in persons] if persons else [],  # each named: see PlainEvent
            abstract=_abstract_of(get("subtitle") or "", get("abstract") or "", get("description") or ""),
            url=url,
            track=" ".join((get("track") or "").split()),
            places={},
        )

    def _start(self, event: RawEvent, date: dt.date | None, zone: ZoneInfo | None, boundary: dt.time | None) -> dt.datetime | None:
        start, day = event.start.strip(), event.date.strip()
        clock = parse_clock(event.start) if start else None
        if start and clock is None:
            self.note(event.at("start"), "start", f"unreadable start {start!r}; expected HH:MM")
        if day:
            moment = parse_instant(event.date)
            if moment is None:
                self.note(event.at("date"), "date", f"unreadable date {day!r}; expected an ISO 8601 instant")
            else:
                if clock and moment.time() != clock:
                    self.note(event.at("start"), "start", f"start {start} disagrees with date {day}; the date wins")
                return self._in_zone(moment, zone)
        if clock is None:
            if not start:
                self.note(event.at("start"), "start", "the event has no date and no start")
            return None
        if date is None or zone is None:
            return None
        on = date + dt.timedelta(days=1) if boundary and clock < boundary else date  # a conference day runs past midnight
        return dt.datetime.combine(on, clock, tzinfo=zone)

    def _in_zone(self, moment: dt.datetime, zone: ZoneInfo | None) -> dt.datetime | None:
        """The instant in the conference zone, once per time: events share their times, and then their objects."""
        known = self.zoned.get((id(moment), zone))
        if known is None or known[0] is not moment:
            known = self.zoned[id(moment), zone] = (moment, self._zoned(moment, zone))
        return known[1]

    @staticmethod
    def _zoned(moment: dt.datetime, zone: ZoneInfo | None) -> dt.datetime | None:
        if moment.tzinfo is None:  # no offset: the time is in the conference zone
            return moment.replace(tzinfo=zone) if zone else None
        return moment.astimezone(zone) if zone else moment

    def _end(self, event: RawEvent, start: dt.datetime | None, zone: ZoneInfo | None) -> dt.datetime | None:
        end, duration = event.end.strip(), event.duration.strip()
        if end:
            moment = parse_instant(event.end)
            if moment is not None:
                return self._in_zone(moment, zone)
            self.note(event.at("end"), "end", f"unreadable end {end!r}; expected an ISO 8601 instant")
        if not duration:
            if not end:
                self.note(event.at("duration"), "duration", "the event has no duration and no end")
            return None
        length = parse_duration(event.duration)
        if length is None:
            self.note(event.at("duration"), "duration", f"unreadable duration {duration!r}; expected H:MM or HH:MM:SS")
            return None
        return self._after(start, length)

    def _after(self, start: dt.datetime | None, length: dt.timedelta) -> dt.datetime | None:
        if start is None:
            return None
        known = self.ends.get((id(start), length))
        if known is None or known[0] is not start:
            end = (start.astimezone(UTC) + length).astimezone(start.tzinfo)  # elapsed time, right across a DST change
            known = self.ends[id(start), length] = (start, end)
        return known[1]

    def _url(self, event: RawEvent) -> str:
        url = event.url.strip()
        if url and not url.lower().startswith(("http://", "https://")):
            self.note(event.at("url"), "url", f"not a web address, left out: {url[:80]!r}")
            return ""
        return url


def _date(text: str) -> dt.date | None:
    try:
        return dt.date.fromisoformat(text.strip()[:10])
    except ValueError:
        return None


def _abstract(event: RawEvent) -> str:
    return _abstract_of(event.subtitle, event.abstract, event.description)


def _abstract_of(*texts_given: str) -> str:
    """Subtitle, abstract and description as readable paragraphs; a text that another one repeats is said once."""
    texts = [text for text in texts_given if text]
    if len(texts) <= 1:
        return readable(texts[0]) if texts else ""  # as below, with one text or none: what most exports hold
    parts: list[str] = []
    for text in texts:
        plain = readable(text)
        if plain and not any(plain in seen for seen in parts):
            parts = [*(seen for seen in parts if seen not in plain), plain]
    return "\n\n".join(parts)


def _unique(problems: list[Problem]) -> list[Problem]:
    """One refusal per distinct message: a file with no zone says so once, not once per day."""
    seen: set[str] = set()
    kept = []
    for problem in problems:
        if problem.message not in seen:
            seen.add(problem.message)
            kept.append(problem)
    return kept
