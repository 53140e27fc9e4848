"""The schedule as data: frozen Talk/Session/Schedule objects, and the problems that refuse a file.

Reading files lives in bot.sources (one module per format, one shared validator); this module
knows nothing of formats, so every front-end and the search index depend only on these classes.
"""

from __future__ import annotations

import datetime as dt
import gc
import itertools
import operator
import selectors
import sys
import threading
import time
from bisect import bisect_right
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from enum import StrEnum
from zoneinfo import ZoneInfo

from bot.core.text import plain_text


class Kind(StrEnum):
    """What an item is. Our own data uses oral/spotlight/qa/break; exports map their types to the rest."""

    ORAL = "oral"
    SPOTLIGHT = "spotlight"
    QA = "qa"
    BREAK = "break"
    TALK = "talk"
    KEYNOTE = "keynote"
    WORKSHOP = "workshop"
    LIGHTNING = "lightning"
    PANEL = "panel"
    OTHER = "other"

    @property
    def label(self) -> str:
        return _LABELS[self.value]


_LABELS = {
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

TALK_KINDS = frozenset({Kind.ORAL, Kind.SPOTLIGHT, Kind.TALK, Kind.KEYNOTE, Kind.WORKSHOP, Kind.LIGHTNING, Kind.PANEL})
"""Items presented by their authors; Q&As, breaks and `other` (socials, meetings) are not talks."""


@dataclass(frozen=True, slots=True)
class Talk:
    """One item of a session: a talk of some kind, a joint Q&A or a break."""

    id: str
    session_id: str
    kind: Kind
    start: dt.datetime
    end: dt.datetime
    title: str
    authors: tuple[str, ...] = ()
    abstract: str = ""
    follows: tuple[str, ...] = ()
    url: str = ""  # the item's page, http(s) only
    track: str = ""

    def __hash__(self) -> int:  # ids are unique in a schedule; hashing every field costs microseconds per lookup
        return hash(self.id)

    @property
    def display_title(self) -> str:
        """The title with LaTeX made readable ($L_2$ -> L₂)."""
        return plain_text(self.title)

    @property
    def display_abstract(self) -> str:
        return plain_text(self.abstract)

    @property
    def is_talk(self) -> bool:
        return self.kind in TALK_KINDS


@dataclass(frozen=True, slots=True)
class Session:
    id: str
    name: str
    timezone: ZoneInfo
    date: dt.date
    items: tuple[Talk, ...]
    chairs: tuple[str, ...] = ()
    room: str = ""

    @property
    def start(self) -> dt.datetime:
        return self.items[0].start

    @property
    def end(self) -> dt.datetime:
        return max(t.end for t in self.items)


@dataclass(frozen=True)
class Schedule:
    """All sessions of one file; items are kept sorted by start for bisect-based lookups."""

    sessions: tuple[Session, ...]
    conference: str = ""
    source: str = ""
    talks: tuple[Talk, ...] = field(init=False)
    _by_id: dict[str, Talk] = field(init=False, repr=False)
    _starts: tuple[dt.datetime, ...] = field(init=False, repr=False)
    _sessions_by_id: dict[str, Session] = field(init=False, repr=False)
    longest_item: dt.timedelta = field(init=False, repr=False)
    _by_start: tuple[Session, ...] = field(init=False, repr=False)
    _session_starts: tuple[dt.datetime, ...] = field(init=False, repr=False)
    _running_until: tuple[dt.datetime, ...] = field(init=False, repr=False)
    _by_end: tuple[Session, ...] = field(init=False, repr=False)
    _session_ends: tuple[dt.datetime, ...] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        talks = _by_start(t for s in self.sessions for t in s.items)
        object.__setattr__(self, "talks", talks)
        object.__setattr__(self, "_by_id", {t.id: t for t in talks})
        object.__setattr__(self, "_starts", tuple(t.start for t in talks))
        give_way()
        object.__setattr__(self, "_sessions_by_id", {s.id: s for s in self.sessions})
        object.__setattr__(self, "longest_item", max((t.end - t.start for t in talks), default=dt.timedelta(0)))
        give_way()
        # Sessions by start (with the latest end so far) and by end, for sessions_around.
        ends = [s.end for s in self.sessions]
        by_start = sorted(range(len(self.sessions)), key=lambda i: (self.sessions[i].start, i))
        by_end = sorted(range(len(self.sessions)), key=lambda i: (ends[i], -i))
        object.__setattr__(self, "_by_start", tuple(self.sessions[i] for i in by_start))
        object.__setattr__(self, "_session_starts", tuple(s.start for s in self._by_start))
        object.__setattr__(self, "_running_until", tuple(itertools.accumulate((ends[i] for i in by_start), max)))
        object.__setattr__(self, "_by_end", tuple(self.sessions[i] for i in by_end))
        object.__setattr__(self, "_session_ends", tuple(ends[i] for i in by_end))

    def talk(self, talk_id: str) -> Talk | None:
        return self._by_id.get(talk_id)

    def session_of(self, talk: Talk) -> Session:
        return self._sessions_by_id[talk.session_id]

    def sessions_around(self, now: dt.datetime) -> tuple[bool, Session | None, Session | None]:
        """Whether any session runs at `now`, the one that ended last and the next to start, by bisection.

        Ties go to the session listed first in the file.
        """
        started = bisect_right(self._session_starts, now)
        running = started > 0 and self._running_until[started - 1] > now
        ended = bisect_right(self._session_ends, now)
        last = self._by_end[ended - 1] if ended else None
        nxt = self._by_start[started] if started < len(self._by_start) else None
        return running, last, nxt

    def first_starting_after(self, now: dt.datetime) -> int:
        """Index in `talks` of the first item that starts strictly after `now`."""
        return bisect_right(self._starts, now)

    @property
    def timezone(self) -> ZoneInfo:
        return self.sessions[0].timezone

    @property
    def name(self) -> str:
        if len(self.sessions) == 1:
            return self.sessions[0].name
        return self.conference or f"{len(self.sessions)} sessions"


# --------------------------------------------------------------------------- errors


@dataclass(frozen=True, slots=True)
class Problem:
    """One thing wrong with a file: its line (0 when the format has none, e.g. JSON), the field, why."""

    line: int
    field: str
    message: str

    def located(self, source: str) -> str:
        """`file:line: field 'f': message`, or `file: field 'json.path': message` without a line."""
        where = f"{source}:{self.line}" if self.line else source
        return f"{where}: field '{self.field}': {self.message}"


class ScheduleError(Exception):
    """A schedule file that cannot be used; each problem names its line (or path) and field."""

    def __init__(self, path: str, problems: list[Problem]) -> None:
        self.path = path
        self.problems = problems
        super().__init__(str(self))

    def __str__(self) -> str:
        head = f"{self.path}: schedule refused ({len(self.problems)} problem{'s' * (len(self.problems) != 1)})"
        return "\n".join([head, *(f"  {p.located(self.path)}" for p in self.problems)])


def _by_start(items: Iterable[Talk]) -> tuple[Talk, ...]:
    """Items sorted by (start, id), without one long C sort that holds the GIL.

    Starts written with an offset each have their own tzinfo, and comparing datetimes of different
    tzinfos converts both to UTC each time: sorting 10,000 talks so held the GIL for 60 ms while the
    event loop waited. Unless a local time is ambiguous (a clock turned back, where Python's order is
    not the order of instants), that order is the order of instants, then ids: timestamps (floats)
    sort at once, and the real comparison checks the result a slice at a time.
    """
    items = list(items)
    exact = operator.attrgetter("start", "id")
    if any(map(_ambiguous, items)):
        return tuple(sorted(items, key=exact))
    rough = sorted(items, key=_rough_start)
    keys = list(map(exact, rough))
    for lo in range(0, len(keys), _CHECK_SLICE):
        give_way()
        part = keys[lo : lo + _CHECK_SLICE + 1]
        if any(map(operator.lt, part[1:], part[:-1])):
            return tuple(sorted(items, key=exact))
    return tuple(rough)


def _ambiguous(talk: Talk) -> bool:
    """A start in an hour that a clock turned back lives twice (or one that it skipped, never)."""
    start = talk.start
    if type(start.tzinfo) is dt.timezone:  # a fixed offset: never
        return False
    return start.fold == 1 or start.replace(fold=1).utcoffset() != start.utcoffset()


_CHECK_SLICE = 2048


def _rough_start(talk: Talk) -> tuple[float, str]:
    try:
        return talk.start.timestamp(), talk.id
    except (OverflowError, ValueError, OSError):  # a start near year 1 or 9999: the real sort places it
        return 0.0, talk.id


# --------------------------------------------------------------------------- building off the loop

BUILD_SWITCH_INTERVAL = 0.0002
"""Seconds a thread may keep the GIL while another waits for it, while a schedule is being built.

Python's default (5 ms) is paid again each time the event loop lets the GIL go (every numpy call
on a few thousand numbers does), so a query answered beside a reload took 40 ms instead of 1.5."""

GIVE_WAY_SECONDS = 0.001
"""How long a build in a worker thread sleeps when it finds the event loop at work (see give_way)."""
# Where an idle event loop waits: in its selector's select(), for each kind of selector.
_IDLE = frozenset(kind.select.__code__ for kind in vars(selectors).values() if isinstance(kind, type) and hasattr(getattr(kind, "select", None), "__code__"))
_LOOK_EVERY = 0.0001  # seconds of a build between two looks at the main thread
_seen = threading.local()


def give_way() -> None:
    """Called between the small steps of a build: let the main thread's event loop work undisturbed.

    A query releases the GIL in each numpy call; a build running beside it in a worker thread took
    the GIL each time, and the loop waited to get it back: an answer of 1 ms took 4. So when the
    main thread is running (neither waiting in its selector nor blocked where it was at the last
    step), the build sleeps a moment, at most half of its time. A build in the main thread (a first
    load) never waits.
    """
    now = time.perf_counter()
    if now < getattr(_seen, "next", 0.0):
        return
    _seen.next = now + _LOOK_EVERY
    main = threading.main_thread()
    if threading.current_thread() is main:
        return
    frame = sys._current_frames().get(main.ident)  # what the main thread is doing: the only way to see it
    if frame is None:
        return
    where = (id(frame), frame.f_lasti)
    busy = frame.f_code not in _IDLE and where != getattr(_seen, "where", None)
    _seen.where = where
    if busy:
        time.sleep(GIVE_WAY_SECONDS)
        _seen.next = time.perf_counter() + GIVE_WAY_SECONDS  # then work as long: a busy loop slows a build, never stops it


_builds = threading.Lock()
_active = 0  # builds under way, in any thread
_restore: tuple[bool, float] = (True, 0.005)  # gc enabled, switch interval: as they were before the first


@contextmanager
def gc_paused() -> Iterator[None]:
    """Building a schedule makes millions of objects that live as long as the process.

    The cyclic collector would rescan them again and again while they are made (over half the
    load time at 10,000 talks); pause it, then freeze what was built so later collections skip it.
    While it runs, the GIL also changes hands sooner, so that an event loop answering queries
    beside a build in a worker thread is not kept waiting (see BUILD_SWITCH_INTERVAL).

    Both settings belong to the whole process: builds in several threads count themselves in and
    out, and the last one out restores what the first found.
    """
    global _active, _restore
    with _builds:
        if _active == 0:
            _restore = (gc.isenabled(), sys.getswitchinterval())
            gc.disable()
            sys.setswitchinterval(min(_restore[1], BUILD_SWITCH_INTERVAL))
        _active += 1
    try:
        yield
    finally:
        with _builds:
            gc.freeze()  # O(1): the generations are moved whole; also whatever other threads made meanwhile
            _active -= 1
            if _active == 0:
                enabled, interval = _restore
                sys.setswitchinterval(interval)
                if enabled:
                    gc.enable()
