"""frab and pretalx `schedule.json` (the C3VOC schedule format) read into a Draft.

Real exports do not validate against the format's schema, so nothing here requires it: a container of
the wrong type (days, rooms, a room's events) refuses the file with its JSON path, because events
inside it would be lost; a field of the wrong type is noted with its path and the event is kept.
"""

from __future__ import annotations

import json
from typing import Any
from zoneinfo import ZoneInfo

import orjson

from bot.core.schedule import Problem, ScheduleError
from bot.sources import check_utf8
from bot.sources.draft import Draft, Place
from bot.sources.frab_common import Assembler, PlainEvent, RawConference, RawDay, RawEvent, RawRoom

_TEXT_FIELDS = ("title", "date", "start", "duration", "end", "room", "type", "track", "url", "subtitle", "abstract", "description")
_EVENT_TEXTS = ("guid", "id", *_TEXT_FIELDS)  # in the order of RawEvent's fields
_PLAIN_TEXTS = ("guid", *_TEXT_FIELDS)
_TEXT_TYPES = frozenset({str, type(None)})
_ID_TYPES = frozenset({str, type(None), int})  # an id read as a number is written out, with no note


def read(data: bytes, source: str, timezone: ZoneInfo | None = None) -> Draft:
    """The Draft of a frab/pretalx JSON export; ScheduleError (with the line or JSON path) when it cannot be read."""
    try:
        document = orjson.loads(data)  # in C, several times faster than json; it refuses bytes that are not UTF-8
    except orjson.JSONDecodeError:
        check_utf8(data, source)  # names the line and column of a byte that is not UTF-8
    else:
        try:
            return _draft(_Reader(source, timezone, quick=True), document)
        except _Unsure:
            pass
    return _draft(_Reader(source, timezone), _load(data, source))


def _draft(reader: _Reader, document: Any) -> Draft:
    raw = reader.conference(document)
    if reader.assembler.problems:
        raise ScheduleError(reader.assembler.source, reader.assembler.problems)
    return reader.assembler.draft(raw)


def _load(data: bytes, source: str) -> Any:
    """json's reading of the file: what orjson refuses (NaN, lone surrogates, a number of 400 digits) json may take."""
    try:
        return json.loads(data)
    except json.JSONDecodeError as err:
        raise ScheduleError(source, [Problem(err.lineno, "(syntax)", f"not valid JSON at column {err.colno}: {err.msg}")]) from None
    except UnicodeDecodeError as err:
        raise ScheduleError(source, [Problem(0, "(file)", f"not UTF-8 text (byte {err.start})")]) from None
    except RecursionError:
        raise ScheduleError(source, [Problem(0, "(file)", "nested too deeply to be a schedule")]) from None
    except ValueError as err:  # e.g. an integer of thousands of digits
        raise ScheduleError(source, [Problem(0, "(file)", f"not readable as JSON: {err}")]) from None


def _describe(value: Any) -> str:
    names = {dict: "an object", list: "a list", str: "text", bool: "true/false", type(None): "null", int: "a number", float: "a number"}
    return names.get(type(value), type(value).__name__)


def _key(path: str, key: str) -> str:
    return f"{path}.{key}" if key.isidentifier() else f"{path}[{json.dumps(key, ensure_ascii=False)}]"


class _Unsure(Exception):
    """orjson may have read a number otherwise than json does."""


class _Reader:
    def __init__(self, source: str, timezone: ZoneInfo | None, *, quick: bool = False) -> None:
        self.assembler = Assembler(source, timezone, spell=self._event)
        self.quick = quick  # the document was read by orjson

    def _container(self, value: Any, path: str, kind: type, what: str) -> Any:
        if isinstance(value, kind):
            return value
        expected = "an object" if kind is dict else "a list"
        self.assembler.refuse(Place(path=path), path, f"{what} should be {expected}, not {_describe(value)}")
        return None

    def _text(self, node: dict, key: str, path: str) -> str:
        value = node.get(key)
        if value is None or isinstance(value, str):
            return value or ""
        if isinstance(value, int | float) and not isinstance(value, bool):
            if type(value) is float and self.quick and not abs(value) < 2**63:
                raise _Unsure  # orjson reads an integer past 64 bits as a float: read the file with json
            return str(value)  # an id, or a title like 1984; a number where a time belongs is noted when it is read
        self.assembler.note(Place(path=_key(path, key)), key, f"{key} should be text, not {_describe(value)}; left empty")
        return ""

    def conference(self, doc: Any) -> RawConference:
        top = self._container(doc, "$", dict, "the file")
        schedule = self._container(top.get("schedule"), "$.schedule", dict, "schedule") if top is not None else None
        path = "$.schedule.conference"
        conference = self._container(schedule.get("conference"), path, dict, "conference") if schedule is not None else None
        if conference is None:
            return RawConference(Place(path="$"))
        days = self._container(conference.get("days"), f"{path}.days", list, "days")
        return RawConference(
            place=Place(path=path),
            title=self._text(conference, "title", path) or self._text(conference, "acronym", path),
            time_zone_name=self._text(conference, "time_zone_name", path),
            zone_place=Place(path=f"{path}.time_zone_name"),
            day_change=self._text(conference, "day_change", path),
            days=[day for n, value in enumerate(days or []) if (day := self._day(value, f"{path}.days[{n}]"))],
        )

    def _day(self, value: Any, path: str) -> RawDay | None:
        day = self._container(value, path, dict, "a day")
        if day is None:
            return None
        rooms = self._container(day.get("rooms"), f"{path}.rooms", dict, "a day's rooms")
        return RawDay(
            place=Place(path=path),
            date=self._text(day, "date", path),
            start=self._text(day, "day_start", path),
            rooms=[self._room(name, events, _key(f"{path}.rooms", name)) for name, events in (rooms or {}).items()],
        )

    def _room(self, name: str, value: Any, path: str) -> RawRoom:
        events = self._container(value, path, list, f"room {name!r}")
        room = RawRoom(Place(path=path), name)
        for n, entry in enumerate(events or []):
            if isinstance(entry, dict):
                room.events.append(PlainEvent(f"{path}[{n}]", entry) if _plain(entry) else self._event(entry, f"{path}[{n}]"))
            else:
                self.assembler.note(Place(path=f"{path}[{n}]"), "event", f"an event should be an object, not {_describe(entry)}; skipped")
        return room

    def _event(self, node: dict, path: str) -> RawEvent:
        texts = [value if type(value) is str else self._text(node, name, path) for name, value in zip(_EVENT_TEXTS, map(node.get, _EVENT_TEXTS), strict=True)]
        # Each field's place is its path, which event.at() writes out when a note needs it (a missing field's too).
        return RawEvent(Place(path=path), *texts, persons=self._persons(node.get("persons"), path))

    def _persons(self, value: Any, event_path: str) -> list[str]:
        if value is None:
            return []
        path = _key(event_path, "persons")
        if not isinstance(value, list):
            self.assembler.note(Place(path=path), "persons", f"persons should be a list, not {_describe(value)}; no speakers read")
            return []
        if all(type(person) is dict and type(person.get("public_name")) is str and person["public_name"].strip() for person in value):
            return [person["public_name"] for person in value]  # the usual case
        names = []
        for n, person in enumerate(value):
            name = person if isinstance(person, str) else _person_name(person)
            if name is None:
                self.assembler.note(Place(path=f"{path}[{n}]"), "persons", "a person without a readable name; left out")
            else:
                names.append(name)
        return names


def _plain(node: dict) -> bool:
    """An event that reading notes nothing about: its fields text or absent (its id may be a number), its persons all named."""
    if not set(map(type, map(node.get, _PLAIN_TEXTS))) <= _TEXT_TYPES or type(node.get("id")) not in _ID_TYPES:
        return False
    persons = node.get("persons")
    return persons is None or (
        type(persons) is list and all(type(person) is dict and type(person.get("public_name")) is str and person["public_name"].strip() for person in persons)
    )


def _person_name(person: Any) -> str | None:
    if not isinstance(person, dict):
        return None
    for key in ("public_name", "name", "full_public_name", "full_name"):
        if isinstance(person.get(key), str) and person[key].strip():
            return person[key]
    return None
