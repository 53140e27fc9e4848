"""What every source format produces before validation: a Draft, with the place of everything.

Each format module (our YAML, frab/pretalx JSON, frab XML, iCalendar) only reads its format into a
Draft; `build()` applies the rules once for all of them (end after start, titles, unique ids,
known `follows`, rooms) and returns the frozen core Schedule. Our own YAML is `strict`: any problem
refuses the file. A foreign export is lenient, because a bot that refuses a real conference's file
is useless to it: what a person would call valid is loaded, the rest is reported as warnings, and
only what cannot be read at all is refused.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from zoneinfo import ZoneInfo

MAX_TEXT_CHARS = 100_000
"""Longest text value: an abstract is a few thousand characters (the longest of the 100,000-talk
benchmark has 2,432), so this only refuses files that are not schedules."""


@dataclass(frozen=True, slots=True)
class Place:
    """Where something is in the source: a line (YAML, XML, ICS) or a JSON path."""

    line: int = 0
    path: str = ""

    def __str__(self) -> str:
        return f"line {self.line}" if self.line else (self.path or "(file)")


@dataclass
class DraftItem:
    """One event as the source gives it, already in our terms but not yet checked."""

    place: Place
    id: str  # the source's stable key (guid, uid, id); "" when missing
    title: str
    start: dt.datetime | None  # aware; None when unreadable (then a problem was already noted)
    end: dt.datetime | None  # aware; from the source's end, or start + duration
    kind: str  # a bot.core.schedule.Kind value, mapped from the source's type
    authors: list[str] = field(default_factory=list)  # in the source's order
    abstract: str = ""  # plain, Discord-safe text (HTML and Markdown already made readable)
    url: str = ""
    track: str = ""
    follows: list[str] = field(default_factory=list)
    places: dict[str, Place] = field(default_factory=dict)  # finer places by field name, when known


@dataclass
class DraftSession:
    """A block of items in one room on one day (frab/pretalx: one (day, room))."""

    place: Place
    id: str
    name: str
    timezone: ZoneInfo | None
    date: dt.date | None
    items: list[DraftItem] = field(default_factory=list)
    room: str = ""
    chairs: list[str] = field(default_factory=list)
    places: dict[str, Place] = field(default_factory=dict)


@dataclass
class Draft:
    source: str  # the file name or URL, for messages
    sessions: list[DraftSession]
    conference: str = ""
    strict: bool = False  # our YAML: every problem refuses; foreign exports: warn and load
    notes: list[tuple[Place, str, str]] = field(default_factory=list)  # (place, field, message) noted while reading
    allow_overlaps: bool = False  # items in one room may overlap (warned, not refused): set by imported YAML that has them
