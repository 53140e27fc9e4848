"""frab/pentabarf `schedule.xml` (frab, pretalx, FOSDEM) read into a Draft, with the line of everything.

Parsed by defusedxml: a file that declares entities (an entity bomb, an external entity) or refers
to anything outside itself is refused at that line before anything is expanded or fetched.
"""

from __future__ import annotations

from xml.etree.ElementTree import Element, TreeBuilder  # building the tree only: parsing is defusedxml's
from zoneinfo import ZoneInfo

from defusedxml import DefusedXmlException
from defusedxml.ElementTree import DefusedXMLParser, ParseError

from bot.core.schedule import Problem, ScheduleError
from bot.sources.draft import Draft, Place
from bot.sources.frab_common import Assembler, RawConference, RawDay, RawEvent, RawRoom

_TEXT_FIELDS = ("title", "date", "start", "duration", "end", "room", "type", "track", "url", "subtitle", "abstract", "description")


def read(data: bytes, source: str, timezone: ZoneInfo | None = None) -> Draft:
    """The Draft of a frab/pentabarf XML export; ScheduleError (with the line) when it cannot be read."""
    root, lines = _parse(data, source)
    reader = _Reader(source, timezone, lines)
    raw = reader.conference(root)
    if reader.assembler.problems:
        raise ScheduleError(source, reader.assembler.problems)
    return reader.assembler.draft(raw)


def _parse(data: bytes, source: str) -> tuple[Element, dict[int, int]]:
    """The root element and the line of each element (by id), from a parser that expands no entities."""
    lines: dict[int, int] = {}

    def element(tag: str, attrs: dict[str, str]) -> Element:
        made = Element(tag.rpartition("}")[2], attrs)  # a namespaced export reads like a plain one
        lines[id(made)] = parser.parser.CurrentLineNumber
        return made

    parser = DefusedXMLParser(target=TreeBuilder(element_factory=element), forbid_dtd=False, forbid_entities=True, forbid_external=True)
    try:
        parser.feed(data)
        return parser.close(), lines
    except ParseError as err:
        line, column = err.position
        raise ScheduleError(source, [Problem(line, "(syntax)", f"not well-formed XML at column {column + 1}: {_reason(err)}")]) from None
    except DefusedXmlException as err:
        line = parser.parser.CurrentLineNumber
        raise ScheduleError(source, [Problem(line, "(document)", f"refused: {_defused(err)}; nothing was expanded or fetched")]) from None
    except (ValueError, LookupError) as err:  # an unknown encoding, for one
        raise ScheduleError(source, [Problem(1, "(document)", f"not readable as XML: {err}")]) from None


def _reason(err: ParseError) -> str:
    return str(err).split(": line", 1)[0]


def _defused(err: DefusedXmlException) -> str:
    name = type(err).__name__
    if name == "EntitiesForbidden" and getattr(err, "sysid", None):
        return f"the file declares the external entity {getattr(err, 'name', '?')!r} ({str(err.sysid)[:80]})"
    if name == "EntitiesForbidden":
        return f"the file declares the entity {getattr(err, 'name', '?')!r} (entities can expand without bound)"
    if name == "ExternalReferenceForbidden":
        return "the file refers to an external resource"
    if name == "DTDForbidden":
        return "the file carries a document type definition"
    return str(err)


class _Reader:
    def __init__(self, source: str, timezone: ZoneInfo | None, lines: dict[int, int]) -> None:
        self.assembler = Assembler(source, timezone)
        self.lines = lines

    def at(self, element: Element) -> Place:
        return Place(line=self.lines.get(id(element), 0))

    def conference(self, root: Element) -> RawConference:
        if root.tag != "schedule":
            self.assembler.refuse(self.at(root), root.tag, f"not a frab/pentabarf schedule: the document is <{root.tag}>, not <schedule>")
            return RawConference(self.at(root))
        conference = root.find("conference")
        if conference is None:
            self.assembler.note(self.at(root), "conference", "no <conference>: no name and no time zone")
            conference = Element("conference")
            self.lines[id(conference)] = self.lines.get(id(root), 0)
        zone = conference.find("time_zone_name")
        return RawConference(
            place=self.at(conference),
            title=_text(conference.find("title")) or _text(conference.find("acronym")),
            time_zone_name=_text(zone),
            zone_place=self.at(zone) if zone is not None else self.at(conference),
            day_change=_text(conference.find("day_change")),
            days=[self._day(day) for day in root.findall("day")],
        )

    def _day(self, day: Element) -> RawDay:
        return RawDay(
            place=self.at(day),
            date=day.get("date", ""),
            start=day.get("start", ""),
            rooms=[self._room(room) for room in day.findall("room")],
        )

    def _room(self, room: Element) -> RawRoom:
        return RawRoom(self.at(room), room.get("name", ""), [self._event(event) for event in room.findall("event")])

    def _event(self, event: Element) -> RawEvent:
        raw = RawEvent(self.at(event), guid=event.get("guid", ""), id=event.get("id", ""))
        for name in _TEXT_FIELDS:
            child = event.find(name)
            if child is not None:
                setattr(raw, name, _text(child))
                raw.places[name] = self.at(child)
        raw.persons = [_text(person) for person in event.iterfind("persons/person")]
        return raw


def _text(element: Element | None) -> str:
    """All the text inside an element, stripped; abstracts may hold markup as elements, not only as text."""
    return "".join(element.itertext()).strip() if element is not None else ""
