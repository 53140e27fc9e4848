"""The one validator every format shares: a Draft in, the frozen core Schedule and its warnings out.

Each rule is written once here, whatever the format: end after start, a title, unique ids,
`follows` naming items that exist, no overlap in a room, a session's date matching its first item.
A strict draft (our YAML) is refused on any problem. A lenient draft (a foreign export) loads
what a person would call valid and reports the rest as warnings, never dropping anything silently.
"""

from __future__ import annotations

import datetime as dt
import itertools
import re
from dataclasses import dataclass, field
from zoneinfo import ZoneInfo

from bot.core.schedule import Kind, Problem, Schedule, ScheduleError, Session, Talk, give_way
from bot.sources.draft import MAX_TEXT_CHARS, Draft, DraftItem, DraftSession, Place

NO_ROOM = "(no room)"
ID_RE = re.compile(r"^[a-z0-9][a-z0-9._-]{0,99}$")
_NOT_ID = re.compile(r"[^a-z0-9._-]")
_UTC = ZoneInfo("UTC")
_DAY = dt.timedelta(hours=24)
NO_ZONE = (
    "a time with no zone or UTC offset: the file states no time zone, so set SCHEDULE_TIMEZONE "
    "to the conference's IANA zone (e.g. Europe/Berlin); times are never guessed"
)


def normalise_id(raw: str) -> str:
    """A foreign id in our charset: lowercase, other characters as '-', at most 100; the same input gives the same id."""
    return _NOT_ID.sub("-", raw.strip().lower()).lstrip("._-")[:100]


def build(draft: Draft) -> tuple[Schedule, list[Problem]]:
    """The schedule and its warnings; ScheduleError when the draft is strict and has any problem,
    or when nothing in it can be loaded."""
    return _Build(draft).run()


@dataclass(slots=True)
class _Item:
    src: DraftItem
    id: str
    kind: Kind
    start: dt.datetime
    end: dt.datetime
    title: str
    authors: tuple[str, ...]
    abstract: str
    url: str
    track: str
    follows: tuple[str, ...]


@dataclass(slots=True)
class _Block:
    src: DraftSession
    id: str
    name: str
    tz: ZoneInfo
    date: dt.date
    room: str
    chairs: tuple[str, ...]
    items: list[_Item] = field(default_factory=list)

    @property
    def room_key(self) -> str:
        """Items in one room may not overlap; a session without a room is a room of its own."""
        return self.room if self.room and self.room != NO_ROOM else f"session {self.id}"


def _field(place: Place, name: str) -> str:
    return f"{place.path}.{name}" if place.path and name else place.path or name or "(file)"


def _fine(base: Place, places: dict[str, Place], name: str) -> tuple[int, str]:
    """The line and field path of `name`: its own place when the reader noted one, else its item's or session's."""
    fine = places.get(name)
    if fine is None:
        return base.line, _field(base, name)
    return fine.line or base.line, fine.path or _field(base, name)


class _Build:
    def __init__(self, draft: Draft) -> None:
        self.draft = draft
        self.strict = draft.strict
        self.problems: list[Problem] = []  # refuse a strict draft
        self.warnings: list[Problem] = []
        self.fatal: list[Problem] = []  # refuse any draft
        self.fixes: dict[int, tuple[dt.datetime, dt.datetime]] = {}  # id of a time -> (that time, fixed): see fixed

    # -------------------------------------------------------------- reporting

    def report(self, line: int, field_path: str, message: str) -> None:
        (self.problems if self.strict else self.warnings).append(Problem(line, field_path, message))

    def at(self, base: Place, places: dict[str, Place], name: str, message: str) -> None:
        self.report(*_fine(base, places, name), message)

    # -------------------------------------------------------------- the whole draft

    def run(self) -> tuple[Schedule, list[Problem]]:
        for place, name, message in self.draft.notes:
            self.report(place.line, _field(place, name), message)
        blocks = [block for n, session in enumerate(self.draft.sessions) for block in self.session(session, n)]
        self.unique_sessions(blocks)
        items = [item for block in blocks for item in block.items]
        self.unique_items(items)
        self.known_follows(items)
        self.overlaps(blocks)
        if self.fatal or (self.strict and self.problems):
            raise ScheduleError(self.draft.source, self.fatal or self.problems)
        if not items:
            nothing = Problem(0, "(file)", "none of its events can be loaded" if self.warnings else "the file has no events")
            raise ScheduleError(self.draft.source, [*self.warnings, nothing])
        return self.freeze(blocks), self.warnings

    def freeze(self, blocks: list[_Block]) -> Schedule:
        sessions = []
        for b in blocks:
            give_way()
            items = tuple(Talk(t.id, b.id, t.kind, t.start, t.end, t.title, t.authors, t.abstract, t.follows, t.url, t.track) for t in b.items)
            sessions.append(Session(b.id, b.name, b.tz, b.date, items, b.chairs, b.room))
        return Schedule(tuple(sessions), self.draft.conference.strip(), self.draft.source)

    # -------------------------------------------------------------- sessions

    def session(self, s: DraftSession, n: int) -> list[_Block]:
        tz = s.timezone if s.timezone is not None and s.timezone.key else None
        if tz is None:
            self.at(s.place, s.places, "timezone", "the file names no time zone here; times are shown in UTC (set SCHEDULE_TIMEZONE to the conference's)")
            tz = _UTC
        room = s.room.strip()
        session_id = s.id.strip() if self.strict else normalise_id(s.id) or normalise_id(s.name) or f"session-{n + 1}"
        name = s.name.strip() or room or self.draft.conference.strip() or session_id
        block = _Block(s, session_id, name, tz, s.date or dt.date.min, room, _names(s.chairs))
        block.items = [made for item in s.items if (made := self.item(item, block)) is not None]
        if not block.items:
            return []  # every item was reported, or the reader noted why there are none
        if not room and not self.strict:
            block.room = NO_ROOM
            self.at(s.place, s.places, "room", f"session {name!r} has no room name; shown as '{NO_ROOM}'")
        block.items.sort(key=lambda t: t.start)
        self.session_date(block)
        return self.within_a_day(block)

    def session_date(self, block: _Block) -> None:
        """A session's date is the day, in its zone, that its first item starts on."""
        first = block.items[0]
        local = first.start.astimezone(block.tz).date()
        given = block.src.date
        if local == given:
            return
        if self.strict or given is None:
            if given is not None:
                date_place = block.src.places.get("date", block.src.place)
                message = f"the session's first item starts on {local} in {block.tz.key}, but the session's date ({date_place}) is {given}; correct one of them"
                self.at(first.src.place, first.src.places, "start", message)
            block.date = local
            return
        if abs(local - given) > dt.timedelta(days=1):  # a conference day that runs past midnight is the usual case
            self.at(block.src.place, block.src.places, "date", f"the session's date {given} is not the day its first item starts on ({local}); using {local}")
        block.date = local

    def within_a_day(self, block: _Block) -> list[_Block]:
        """A session is one sitting: no item starts 24 hours or more after its first. An item dated a
        day off is a typo in our YAML; a foreign session that long is split by day instead."""
        first = block.items[0]
        late = [t for t in block.items if t.start - first.start >= _DAY]
        if not late:
            return [block]
        if self.strict:
            for t in late:
                message = f"starts {t.start:%Y-%m-%d %H:%M}, a day or more after the session's first item ({first.start:%Y-%m-%d %H:%M}); is its date right?"
                self.at(t.src.place, t.src.places, "start", message)
            return [block]
        parts: list[_Block] = []
        for item in block.items:
            if not parts or item.start - parts[-1].items[0].start >= _DAY:
                suffix = f"-{len(parts) + 1}" if parts else ""
                date = item.start.astimezone(block.tz).date()
                parts.append(_Block(block.src, block.id[: 100 - len(suffix)] + suffix, block.name, block.tz, date, block.room, block.chairs))
            parts[-1].items.append(item)
        self.at(block.src.place, block.src.places, "", f"session {block.name!r} spans more than a day; split into {len(parts)} sessions by day")
        return parts

    def unique_sessions(self, blocks: list[_Block]) -> None:
        taken = {b.id for b in blocks}
        seen: set[str] = set()
        for b in blocks:
            if b.id in seen:
                if self.strict:
                    self.report(b.src.place.line, _field(b.src.place, "id"), f"duplicate session id {b.id!r}")
                    continue
                new = _suffixed(b.id, taken)
                self.report(b.src.place.line, _field(b.src.place, "id"), f"duplicate session id {b.id!r}; this one is now {new!r}")
                b.id = new
            seen.add(b.id)

    # -------------------------------------------------------------- items

    def item(self, it: DraftItem, block: _Block) -> _Item | None:
        give_way()
        start, end = it.start, it.end
        if start is None or end is None:
            return None  # the reader noted why
        if start.utcoffset() is None or end.utcoffset() is None:
            self.fatal.append(Problem(*_fine(it.place, it.places, "start"), NO_ZONE))
            return None
        title = it.title.strip()
        if not title:
            where = f"{start.astimezone(block.tz):%Y-%m-%d %H:%M} in {block.room or NO_ROOM}"
            self.at(it.place, it.places, "title", "must not be empty" if self.strict else f"an event with no title ({where}) is left out")
            return None
        if end <= start:
            message = f"end {end.isoformat()} is not after start {start.isoformat()}"
            self.at(it.place, it.places, "end", message if self.strict else f"{title[:80]!r}: {message} (a zero or negative duration); left out")
            return None
        talk_id = self.item_id(it, title)
        if talk_id is None:
            return None
        kind = self.kind(it)
        title = title if len(title) <= MAX_TEXT_CHARS else self.capped(it, "title", title)
        abstract = it.abstract.strip()
        return _Item(
            it,
            talk_id,
            kind,
            self.fixed(start),
            self.fixed(end),
            title,
            _names(it.authors),
            abstract if len(abstract) <= MAX_TEXT_CHARS else self.capped(it, "abstract", abstract),
            self.url(it),
            it.track.strip(),
            _names(it.follows) if self.strict else tuple(filter(None, map(normalise_id, it.follows))) if it.follows else (),
        )

    def item_id(self, it: DraftItem, title: str) -> str | None:
        if not self.strict:
            return normalise_id(it.id) or normalise_id(title) or "item"
        if not ID_RE.match(it.id):
            self.at(it.place, it.places, "id", f"id {it.id!r} must be lowercase letters, digits, '-', '.' or '_' (at most 100)")
            return None
        return it.id

    def kind(self, it: DraftItem) -> Kind:
        text = it.kind.strip().lower()
        known = _KINDS.get(text)
        if known is not None:
            return known
        try:
            return Kind(text)
        except ValueError:
            if text or self.strict:
                self.at(
                    it.place,
                    it.places,
                    "kind",
                    f"unknown kind {it.kind!r}; use one of: {', '.join(k.value for k in Kind)}" + ("" if self.strict else "; shown as 'other'"),
                )
            return Kind.OTHER

    def url(self, it: DraftItem) -> str:
        url = it.url.strip()
        if not url or (url.lower().startswith(("https://", "http://")) and len(url.split()) == 1):  # stripped: one word is no space inside
            return url
        self.at(it.place, it.places, "url", f"url {url[:80]!r} must be an http:// or https:// address" + ("" if self.strict else "; left out"))
        return ""

    def capped(self, it: DraftItem, name: str, text: str) -> str:
        if len(text) <= MAX_TEXT_CHARS:
            return text
        self.at(
            it.place, it.places, name, f"a text of {len(text):,} characters is longer than the {MAX_TEXT_CHARS:,} allowed" + ("" if self.strict else "; cut")
        )
        return text[:MAX_TEXT_CHARS].rstrip()

    def fixed(self, moment: dt.datetime) -> dt.datetime:
        """The same instant with a shared fixed offset (see _fix), once per time: readers share equal times."""
        done = self.fixes.get(id(moment))
        if done is None or done[0] is not moment:
            done = self.fixes[id(moment)] = (moment, self._fix(moment))
        return done[1]

    def _fix(self, moment: dt.datetime) -> dt.datetime:
        """The same instant with a fixed UTC offset: what our YAML holds, and what the prepared copy stores.

        One tzinfo object per offset, shared by every schedule built: Python compares datetimes of one
        tzinfo object field by field, and those of two by calling utcoffset() on both, several times
        (comparing two versions of a 10,000-talk programme took 60 ms instead of 25, on the event loop).
        """
        tz = moment.tzinfo
        if type(tz) is dt.timezone:
            zone = _fixed_zone(moment.utcoffset())
            return moment if tz is zone or tz.tzname(None) != zone.tzname(None) else moment.replace(tzinfo=zone)  # a named zone keeps its name
        return moment.replace(tzinfo=_fixed_zone(moment.utcoffset()), fold=0)

    def unique_items(self, items: list[_Item]) -> None:
        taken = {t.id for t in items}
        seen: dict[str, _Item] = {}
        for t in items:
            give_way()
            first = seen.get(t.id)
            if first is None:
                seen[t.id] = t
                continue
            if self.strict:
                self.report(t.src.place.line, _field(t.src.place, "id"), f"duplicate id {t.id!r} (first used by {first.title!r})")
                continue
            new = _suffixed(t.id, taken)
            self.report(t.src.place.line, _field(t.src.place, "id"), f"duplicate id {t.id!r} (first used by {first.title[:80]!r}); this one is now {new!r}")
            t.id = new
            seen[new] = t

    def known_follows(self, items: list[_Item]) -> None:
        ids = {t.id for t in items}
        for t in items:
            give_way()
            unknown = [ref for ref in t.follows if ref not in ids]
            for ref in unknown:
                self.report(t.src.place.line, _field(t.src.place, "follows"), f"unknown item id {ref!r}" + ("" if self.strict else "; left out"))
            if unknown and not self.strict:
                t.follows = tuple(ref for ref in t.follows if ref in ids)

    def overlaps(self, blocks: list[_Block]) -> None:
        """In one room, an item starts after the one before it ends; a foreign export may break this (a warning)."""
        rooms: dict[str, list[_Item]] = {}
        for b in blocks:
            rooms.setdefault(b.room_key, []).extend(b.items)
        allowed = self.draft.allow_overlaps and self.strict
        for room, entries in rooms.items():
            entries.sort(key=lambda t: t.start)
            for a, b in itertools.pairwise(entries):
                give_way()
                if b.start < a.end:
                    problem = Problem(
                        b.src.place.line, _field(b.src.place, "start"), f"{b.id!r} starts at {b.start:%H:%M} before {a.id!r} ends at {a.end:%H:%M} in {room}"
                    )
                    (self.warnings if allowed else self.problems if self.strict else self.warnings).append(problem)


_FIXED_ZONES: dict[dt.timedelta, dt.timezone] = {}


def _fixed_zone(offset: dt.timedelta | None) -> dt.timezone:
    """The one tzinfo object of a UTC offset (a few dozen exist; a hostile file with more gets new ones)."""
    offset = offset or dt.timedelta(0)
    zone = _FIXED_ZONES.get(offset)
    if zone is None:
        zone = dt.timezone(offset) if offset else dt.UTC
        if len(_FIXED_ZONES) < 1000:
            zone = _FIXED_ZONES.setdefault(offset, zone)
    return zone


_KINDS = {kind.value: kind for kind in Kind}


def _names(names: list[str]) -> tuple[str, ...]:
    stripped = [name.strip() for name in names]
    return tuple(stripped) if all(stripped) else tuple(filter(None, stripped))


def _suffixed(ident: str, taken: set[str]) -> str:
    """`ident-2`, `ident-3`, ...: the first not taken, cut to fit 100 characters; added to `taken`."""
    for n in itertools.count(2):
        suffix = f"-{n}"
        new = ident[: 100 - len(suffix)] + suffix
        if new not in taken:
            taken.add(new)
            return new
    raise AssertionError("unreachable")
