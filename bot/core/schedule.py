"""The schedule as data: frozen Talk/Session/Schedule objects and a validating YAML loader.

Every refusal names the file, the line and the field, so an organiser can fix the file
without reading a traceback.
"""

from __future__ import annotations

import datetime as dt
import gc
import itertools
import re
from bisect import bisect_right
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any, ClassVar
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import yaml
from dateutil.parser import isoparse
from rapidfuzz import process

from bot.core.text import plain_text

_BaseLoader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
_ID_RE = re.compile(r"^[a-z0-9][a-z0-9._-]{0,99}$")


class Kind(StrEnum):
    ORAL = "oral"
    SPOTLIGHT = "spotlight"
    QA = "qa"
    BREAK = "break"

    @property
    def label(self) -> str:
        return {"oral": "Oral", "spotlight": "Spotlight", "qa": "Q&A", "break": "Break"}[self.value]


TALK_KINDS = frozenset({Kind.ORAL, Kind.SPOTLIGHT})


@dataclass(frozen=True, slots=True)
class Talk:
    """One item of a session: an oral, a spotlight, a joint Q&A or a break."""

    id: str
    session_id: str
    kind: Kind
    start: dt.datetime
    end: dt.datetime
    title: str
    authors: tuple[str, ...] = ()
    abstract: str = ""
    follows: tuple[str, ...] = ()

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
        talks = tuple(sorted((t for s in self.sessions for t in s.items), key=lambda t: (t.start, t.id)))
        object.__setattr__(self, "talks", talks)
        object.__setattr__(self, "_by_id", {t.id: t for t in talks})
        object.__setattr__(self, "_starts", tuple(t.start for t in talks))
        object.__setattr__(self, "_sessions_by_id", {s.id: s for s in self.sessions})
        object.__setattr__(self, "longest_item", max((t.end - t.start for t in talks), default=dt.timedelta(0)))
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
    line: int
    field: str
    message: str


class ScheduleError(Exception):
    """A schedule file that cannot be used; each problem names its line and field."""

    def __init__(self, path: str, problems: list[Problem]) -> None:
        self.path = path
        self.problems = problems
        super().__init__(str(self))

    def __str__(self) -> str:
        head = f"{self.path}: schedule refused ({len(self.problems)} problem{'s' * (len(self.problems) != 1)})"
        lines = [f"  {self.path}:{p.line}: field '{p.field}': {p.message}" for p in self.problems]
        return "\n".join([head, *lines])


# --------------------------------------------------------------------------- YAML with lines

MAX_TEXT_CHARS = 100_000
"""Longest text value: an abstract is a few thousand characters (the longest of the 100,000-talk
benchmark has 2,432), so this only refuses files that are not schedules."""

MAX_VALUES = 10_000_000
"""Most values (keys, texts, lists, mappings) a file may expand to, each alias counted as the whole
of what it names every time it is used. A 100,000-talk conference from bench/generate.py has
2.56 million; a 460-byte billion-laughs file would have about a billion."""

MAX_REPEATED_TEXT = 100_000_000
"""Most characters of the file that aliases may repeat in all (a list or mapping counts as the
text it spans). Counting values alone misses `abstract: *long` used a million times: a small file
that the validator and the search index would read as a hundred gigabytes."""


class _Map(dict):
    line: int = 1
    key_lines: dict[Any, int]


class _Seq(list):
    line: int = 1
    item_lines: list[int]


class _SafeLineLoader(_BaseLoader):  # type: ignore[misc, valid-type]
    """yaml's safe loader (C-accelerated when available) that remembers each key's line."""

    _plain_tags: ClassVar[dict[str, str]] = {}

    def resolve(self, kind: type, value: str, implicit: tuple[bool, bool]) -> str:
        """yaml's resolver, memoised for short plain scalars: keys and kinds repeat thousands of times."""
        if kind is yaml.ScalarNode and not self.yaml_path_resolvers:
            if not implicit[0]:
                return _STR_TAG  # quoted: always text
            if len(value) <= 32:
                tag = self._plain_tags.get(value)
                if tag is None:
                    tag = super().resolve(kind, value, implicit)
                    if len(self._plain_tags) < 100_000:
                        self._plain_tags[value] = tag
                return tag
        return super().resolve(kind, value, implicit)


class _Refused(Exception):
    """A file the loader will not build; the innermost mapping fills in the line and key if unknown."""

    def __init__(self, line: int | None, key: str | None, message: str) -> None:
        self.line, self.key, self.message = line, key, message


def _construct_timestamp_text(loader: Any, node: yaml.ScalarNode) -> str:
    """Keep times as text so that a bad one ("25:00") is reported with its line, not raised."""
    return loader.construct_scalar(node)


_SafeLineLoader.add_constructor("tag:yaml.org,2002:timestamp", _construct_timestamp_text)

_STR_TAG, _MAP_TAG, _SEQ_TAG = "tag:yaml.org,2002:str", "tag:yaml.org,2002:map", "tag:yaml.org,2002:seq"
_MERGE_TAG, _TEXT_TAGS = "tag:yaml.org,2002:merge", frozenset({_STR_TAG, "tag:yaml.org,2002:timestamp"})
_TOO_MANY = (
    f"the file expands to more than {MAX_VALUES:,} values, counting each use of an alias (*name) as "
    "everything it names; a 100,000-talk conference needs about 2.6 million. Write the values out "
    "instead of nesting aliases, or split the file"
)
_TOO_MUCH_TEXT = (
    f"aliases (*name) repeat more than {MAX_REPEATED_TEXT:,} characters of the file in all, counting "
    "each use as all the text it names; write the text out where it is needed, or use fewer aliases"
)


class _Builder:
    """The same data as yaml's constructors give, built in one direct walk of the node tree.

    yaml's generic construct_object (generators, per-node bookkeeping) is most of the load time
    of a large schedule; strings, maps and lists are built here, scalars of rarer tags go through
    yaml. An alias shares the object it names, so memory stays the size of the file; but each use
    counts as everything it names, so a billion-laughs file is refused at MAX_VALUES (or
    MAX_REPEATED_TEXT) long before anything downstream could expand it.

    yaml's nodes do not mark aliases: an alias is the node it names, met again. A node met where
    nothing written earlier can be, before the end of the previous key or value, is an alias.
    """

    def __init__(self, loader: Any) -> None:
        self.loader = loader
        self.built: dict[int, Any] = {}  # id(node) -> object, so an alias shares what it names
        self.sizes: dict[int, tuple[int, int]] = {}  # id(node) -> values below it, text its aliases repeat
        self.count = 0  # values so far, aliases expanded
        self.repeated = 0  # characters of text that aliases repeated so far

    def build(self, node: yaml.Node) -> Any:
        tag = node.tag
        if tag in _TEXT_TAGS and isinstance(node, yaml.ScalarNode):
            if len(node.value) > MAX_TEXT_CHARS:
                raise self._too_long(node)
            return node.value  # times stay text, as _construct_timestamp_text keeps them
        if tag == _MAP_TAG and isinstance(node, yaml.MappingNode):
            return self.build_map(node)
        if tag == _SEQ_TAG and isinstance(node, yaml.SequenceNode):
            return self.build_seq(node)
        if isinstance(node, yaml.ScalarNode):
            if len(node.value) > MAX_TEXT_CHARS:
                raise self._too_long(node)
            return self.loader.construct_object(node, deep=True)
        shown = tag.replace("tag:yaml.org,2002:", "!!", 1)
        raise _Refused(node.start_mark.line + 1, None, f"the YAML tag {shown} is not used in schedules; write a plain mapping or list")

    @staticmethod
    def _too_long(node: yaml.ScalarNode) -> _Refused:
        message = f"a text of {len(node.value):,} characters is longer than the {MAX_TEXT_CHARS:,} allowed; shorten it"
        return _Refused(node.start_mark.line + 1, None, message)

    def _reuse(self, node: yaml.Node) -> Any:
        """An alias of a list or mapping: the object already built, counted again as all it holds."""
        size = self.sizes.get(id(node))
        if size is None:
            raise _Refused(None, None, "an alias (*name) is used inside what it names, which never ends; write the value out")
        values, repeated = size
        self._grow(values)
        self._repeat(node.end_mark.index - node.start_mark.index + repeated)
        return self.built[id(node)]

    def _grow(self, values: int) -> None:
        self.count += values
        if self.count > MAX_VALUES:
            raise _Refused(None, None, _TOO_MANY)

    def _repeat(self, chars: int) -> None:
        self.repeated += chars
        if self.repeated > MAX_REPEATED_TEXT:
            raise _Refused(None, None, _TOO_MUCH_TEXT)

    def _done(self, node: yaml.Node, count: int, repeated: int) -> None:
        self.sizes[id(node)] = (self.count - count, self.repeated - repeated)

    def build_seq(self, node: yaml.SequenceNode) -> _Seq:
        if id(node) in self.built:
            return self._reuse(node)
        result = self.built[id(node)] = _Seq()
        result.line = node.start_mark.line + 1
        result.item_lines = lines = []
        count, repeated = self.count, self.repeated
        self._grow(len(node.value))
        written_after = node.start_mark.index  # an item written out ends after this
        try:
            for child in node.value:
                value = self.build(child)
                result.append(value)
                lines.append(child.start_mark.line + 1)
                end = child.end_mark.index
                if end > written_after:
                    written_after = end
                elif type(value) is str:  # an alias of a text
                    self._repeat(len(value))
        except _Refused as err:
            err.line = err.line or result.line
            raise
        self._done(node, count, repeated)
        return result

    def build_map(self, node: yaml.MappingNode) -> _Map:
        if id(node) in self.built:
            return self._reuse(node)
        result = self.built[id(node)] = _Map()
        result.line = node.start_mark.line + 1
        result.key_lines = key_lines = {}
        count, repeated = self.count, self.repeated
        self._grow(2 * len(node.value))
        merged: list[tuple[int, Any]] = []
        written_after = node.start_mark.index  # a key or value written out ends after this
        for key_node, value_node in node.value:
            mark = key_node.start_mark
            line = mark.line + 1
            if mark.index >= written_after and key_node.tag in _TEXT_TAGS and isinstance(key_node, yaml.ScalarNode):
                key = self.build(key_node)  # the usual case: a word
            else:
                key = self._odd_key(key_node, value_node, written_after)
            try:
                value = self.build(value_node)
                end = value_node.end_mark.index
                if end > written_after:
                    written_after = end
                elif type(value) is str:  # an alias of a text
                    self._repeat(len(value))
            except _Refused as err:
                err.line, err.key = err.line or line, err.key or str(key)
                raise
            if key_node.tag == _MERGE_TAG:
                merged.append((line, value))
            elif key in result:
                raise _Refused(line, str(key), f"'{key}' appears twice in this mapping")
            else:
                result[key] = value
                key_lines[key] = line
        for line, value in merged:
            _merge_into(result, line, value)
        self._done(node, count, repeated)
        return result

    def _odd_key(self, key_node: yaml.Node, value_node: yaml.Node, written_after: int) -> Any:
        """A key other than a word: a number or a merge (`<<`); never a list or mapping (its text
        could be huge) and never an alias (whose node was written before this mapping's last value)."""
        line = key_node.start_mark.line + 1
        if key_node.start_mark.index < written_after:  # its line is the anchor's: point at the value's
            raise _Refused(value_node.start_mark.line + 1, "(key)", "a key must be written out, not an alias (*name)")
        if not isinstance(key_node, yaml.ScalarNode):
            raise _Refused(line, "(key)", "a key must be a plain word, not a list or mapping")
        if key_node.tag == _MERGE_TAG:
            return "<<"
        key = self.build(key_node)
        if not isinstance(key, str | int | float | bool) and key is not None:
            raise _Refused(line, str(key), "a key must be a plain word")
        return key


def _merge_into(result: _Map, line: int, value: Any) -> None:
    """YAML's merge key (`<<: *defaults`): keys written in the mapping win, then earlier merges."""
    sources = value if isinstance(value, list) else [value]
    for source in sources:
        if not isinstance(source, _Map):
            raise _Refused(line, "<<", "'<<' merges a mapping (an alias such as *defaults) or a list of them")
        for key, item in source.items():
            if key not in result:
                result[key] = item
                result.key_lines[key] = source.key_lines.get(key, line)


def _load_yaml(text: str) -> Any:
    """yaml.load with _SafeLineLoader, through the direct builder above."""
    loader = _SafeLineLoader(text)
    try:
        node = loader.get_single_node()
        return None if node is None else _Builder(loader).build(node)
    finally:
        loader.dispose()


@contextmanager
def gc_paused() -> Iterator[None]:
    """Building a schedule makes millions of objects that live as long as the process.

    The cyclic collector would rescan them again and again while they are made (over half the
    load time at 10,000 talks); pause it, then freeze what was built so later collections skip it.
    """
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        gc.freeze()
        if enabled:
            gc.enable()


def _syntax_problem(text: str, err: yaml.YAMLError) -> Problem:
    """Point at the line of the field where the syntax breaks (or where the broken construct began)."""
    lines = text.splitlines()

    def field_on(mark: yaml.Mark | None) -> str | None:
        source = lines[mark.line] if mark is not None and 0 <= mark.line < len(lines) else ""
        match = re.match(r"\s*-?\s*([A-Za-z_][\w-]*)\s*:", source)
        return match.group(1) if match else None

    problem_mark = getattr(err, "problem_mark", None)
    context_mark = getattr(err, "context_mark", None)
    mark, name = problem_mark, field_on(problem_mark)
    if name is None and field_on(context_mark):
        mark, name = context_mark, field_on(context_mark)
    what = " ".join(str(p) for p in (getattr(err, "context", None), getattr(err, "problem", None)) if p) or str(err)
    if mark is not problem_mark and problem_mark is not None:
        what += f" (noticed at line {problem_mark.line + 1})"
    line = mark.line + 1 if mark is not None else 1
    col = f", column {mark.column + 1}" if mark is not None else ""
    return Problem(line, name or "(syntax)", f"YAML syntax error{col}: {what}")


# --------------------------------------------------------------------------- validation

_SESSION_FIELDS = {"id": True, "name": True, "timezone": True, "date": True, "items": True, "chairs": False, "room": False}
_ITEM_FIELDS = {
    "id": True,
    "kind": True,
    "start": True,
    "end": True,
    "title": True,
    "authors": False,
    "abstract": False,
    "follows": False,
}
_TOP_FIELDS = {"sessions": True, "conference": False}


class _Checker:
    """Collects problems while walking the loaded document; never raises midway."""

    def __init__(self) -> None:
        self.problems: list[Problem] = []

    def add(self, line: int, field_path: str, message: str) -> None:
        self.problems.append(Problem(line, field_path, message))

    def fields(self, node: Any, spec: dict[str, bool], path: str, line: int, what: str) -> _Map | None:
        if not isinstance(node, dict):
            self.add(getattr(node, "line", line), path or "(top level)", f"expected {what} (a mapping of fields), got {_describe(node)}")
            return None
        for key in node:
            if key not in spec:
                hint = process.extractOne(str(key), list(spec), score_cutoff=60)
                extra = f"; did you mean '{hint[0]}'?" if hint else f"; allowed: {', '.join(spec)}"
                self.add(node.key_lines.get(key, node.line), _join(path, str(key)), f"unknown field{extra}")
        for key, required in spec.items():
            if required and key not in node:
                self.add(node.line, _join(path, key), f"missing required field in {what}")
        return node

    def text(self, node: _Map, key: str, path: str, *, required: bool) -> str:
        value = node.get(key)
        line = node.key_lines.get(key, node.line)
        if value is None:
            if required and key in node:
                self.add(line, _join(path, key), "must not be empty")
            return ""
        if not isinstance(value, str | int | float) or isinstance(value, bool):
            self.add(line, _join(path, key), f"expected text, got {_describe(value)}")
            return ""
        value = str(value).strip()
        if required and not value:
            self.add(line, _join(path, key), "must not be empty")
        return value

    def names(self, node: _Map, key: str, path: str) -> tuple[str, ...]:
        value = node.get(key)
        if value is None:
            return ()
        line = node.key_lines.get(key, node.line)
        if not isinstance(value, list):
            self.add(line, _join(path, key), f"expected a list of names, got {_describe(value)}")
            return ()
        out = []
        for i, item in enumerate(value):
            item_line = value.item_lines[i] if isinstance(value, _Seq) else line
            if not isinstance(item, str) or not item.strip():
                self.add(item_line, f"{_join(path, key)}[{i}]", f"expected a non-empty name, got {_describe(item)}")
            else:
                out.append(item.strip())
        return tuple(out)

    def moment(self, node: _Map, key: str, path: str, tz: ZoneInfo | None) -> dt.datetime | None:
        value = node.get(key)
        line = node.key_lines.get(key, node.line)
        where = _join(path, key)
        if value is None:
            return None
        if isinstance(value, dt.datetime):
            moment = value
        elif isinstance(value, str):
            try:
                moment = _parse_time(value.strip())
            except (ValueError, OverflowError):
                self.add(line, where, f"cannot read {value!r} as a time; write e.g. 2020-12-10T06:00:00-08:00")
                return None
        else:
            self.add(line, where, f"expected a time such as 2020-12-10T06:00:00-08:00, got {_describe(value)}")
            return None
        if moment.tzinfo is None or moment.utcoffset() is None:
            self.add(line, where, f"time {value} has no UTC offset; add one, e.g. {moment.isoformat()}-08:00")
            return None
        if tz is not None:
            expected = moment.astimezone(tz).utcoffset()
            if expected != moment.utcoffset():
                self.add(line, where, f"offset {_fmt_offset(moment.utcoffset())} does not match {tz.key}, which is {_fmt_offset(expected)} at that time")
        return moment


def _parse_time(text: str) -> dt.datetime:
    """ISO 8601 time: the standard library's C parser when it can, dateutil for the rarer forms."""
    try:
        return dt.datetime.fromisoformat(text)
    except ValueError:
        return isoparse(text)


def _join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def _describe(value: Any) -> str:
    if value is None:
        return "nothing"
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    return f"{type(value).__name__} {value!r}"[:80]


def _fmt_offset(offset: dt.timedelta | None) -> str:
    total = int(offset.total_seconds()) if offset else 0
    sign = "-" if total < 0 else "+"
    hours, minutes = divmod(abs(total) // 60, 60)
    return f"UTC{sign}{hours:02d}:{minutes:02d}"


def _zone(check: _Checker, node: _Map, path: str) -> ZoneInfo | None:
    name = check.text(node, "timezone", path, required=True)
    if not name:
        return None
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        check.add(
            node.key_lines.get("timezone", node.line), _join(path, "timezone"), f"unknown time zone {name!r}; use an IANA name such as America/Los_Angeles"
        )
        return None


def _session_date(check: _Checker, node: _Map, path: str) -> dt.date | None:
    value = node.get("date")
    if isinstance(value, dt.datetime):
        return value.date()
    if isinstance(value, dt.date):
        return value
    if isinstance(value, str):
        try:
            return dt.date.fromisoformat(value.strip())
        except ValueError:
            pass
    if "date" in node:
        check.add(node.key_lines.get("date", node.line), _join(path, "date"), f"expected a date such as 2020-12-10, got {_describe(value)}")
    return None


@dataclass(frozen=True, slots=True)
class _Where:
    line: int
    path: str
    start_line: int = 0  # an item's `start`


def _item(check: _Checker, node: Any, path: str, session_id: str, tz: ZoneInfo | None, line: int) -> tuple[Talk, _Where] | None:
    item = check.fields(node, _ITEM_FIELDS, path, line, "an item")
    if item is None:
        return None
    before = len(check.problems)
    talk_id = check.text(item, "id", path, required=True)
    if talk_id and not _ID_RE.match(talk_id):
        check.add(item.key_lines["id"], _join(path, "id"), f"id {talk_id!r} must be lowercase letters, digits, '-', '.' or '_' (at most 100)")
    kind_text = check.text(item, "kind", path, required=True)
    kind = None
    if kind_text:
        try:
            kind = Kind(kind_text.lower())
        except ValueError:
            check.add(item.key_lines["kind"], _join(path, "kind"), f"unknown kind {kind_text!r}; use one of: {', '.join(k.value for k in Kind)}")
    title = check.text(item, "title", path, required=True)
    start = check.moment(item, "start", path, tz)
    end = check.moment(item, "end", path, tz)
    if start and end and end <= start:
        check.add(item.key_lines["end"], _join(path, "end"), f"end {end.isoformat()} is not after start {start.isoformat()}")
    authors = check.names(item, "authors", path)
    follows = check.names(item, "follows", path)
    abstract = check.text(item, "abstract", path, required=False)
    if len(check.problems) > before or kind is None or start is None or end is None:
        return None
    talk = Talk(talk_id, session_id, kind, start, end, title, authors, abstract, follows)
    return talk, _Where(item.line, path, item.key_lines["start"])


def _session(check: _Checker, node: Any, path: str, line: int) -> tuple[Session, list[tuple[Talk, _Where]]] | None:
    sess = check.fields(node, _SESSION_FIELDS, path, line, "a session")
    if sess is None:
        return None
    before = len(check.problems)
    session_id = check.text(sess, "id", path, required=True)
    name = check.text(sess, "name", path, required=True)
    tz = _zone(check, sess, path)
    date = _session_date(check, sess, path)
    chairs = check.names(sess, "chairs", path)
    room = check.text(sess, "room", path, required=False)
    raw_items = sess.get("items")
    items: list[Talk] = []
    where: list[tuple[Talk, _Where]] = []
    if "items" in sess and (not isinstance(raw_items, list) or not raw_items):
        check.add(sess.key_lines.get("items", sess.line), _join(path, "items"), "expected a non-empty list of items")
    elif isinstance(raw_items, list):
        for i, raw in enumerate(raw_items):
            made = _item(check, raw, f"{path}.items[{i}]", session_id, tz, raw_items.item_lines[i])
            if made:
                items.append(made[0])
                where.append(made)
    if tz is not None and date is not None:
        _days(check, sess, tz, date, where)
    if len(check.problems) > before or tz is None or date is None:
        return None
    items.sort(key=lambda t: t.start)
    return Session(session_id, name, tz, date, tuple(items), chairs, room), where


def _days(check: _Checker, sess: _Map, tz: ZoneInfo, date: dt.date, items: list[tuple[Talk, _Where]]) -> None:
    """A session's `date` is the day, in its zone, that its first item starts on. It may run past
    midnight, but no item starts 24 hours or more after the first: a session is one sitting, so an
    item dated a day off is a typo, caught whichever way it points."""
    if not items:
        return
    first, first_where = min(items, key=lambda entry: entry[0].start)
    local = first.start.astimezone(tz).date()
    if local != date:
        date_line = sess.key_lines.get("date", sess.line)
        check.add(
            first_where.start_line,
            f"{first_where.path}.start",
            f"the session's first item starts on {local} in {tz.key}, but the session's date (line {date_line}) is {date}; correct one of them",
        )
    for talk, where in items:
        if talk.start - first.start >= dt.timedelta(hours=24):
            check.add(
                where.start_line,
                f"{where.path}.start",
                f"starts {talk.start:%Y-%m-%d %H:%M}, a day or more after the session's first item ({first.start:%Y-%m-%d %H:%M}); is its date right?",
            )


def _cross_checks(check: _Checker, sessions: list[tuple[Session, _Where]], items: list[tuple[Talk, _Where]]) -> None:
    seen_sessions: set[str] = set()
    for s, where in sessions:
        if s.id in seen_sessions:
            check.add(where.line, f"{where.path}.id", f"duplicate session id {s.id!r}")
        seen_sessions.add(s.id)
    seen: dict[str, Talk] = {}
    for t, where in items:
        if t.id in seen:
            check.add(where.line, f"{where.path}.id", f"duplicate id {t.id!r} (first used by {seen[t.id].title!r})")
        seen.setdefault(t.id, t)
    for t, where in items:
        for ref in t.follows:
            if ref not in seen:
                check.add(where.line, f"{where.path}.follows", f"unknown item id {ref!r}")
    room_of = {s.id: s.room or f"session {s.id}" for s, _ in sessions}
    rooms: dict[str, list[tuple[Talk, _Where]]] = {}
    for t, where in items:
        rooms.setdefault(room_of[t.session_id], []).append((t, where))
    for room, entries in rooms.items():
        entries.sort(key=lambda e: e[0].start)
        for (a, _), (b, where) in itertools.pairwise(entries):
            if b.start < a.end:
                check.add(where.line, f"{where.path}.start", f"{b.id!r} starts at {b.start:%H:%M} before {a.id!r} ends at {a.end:%H:%M} in {room}")


def parse_schedule(text: str, source: str = "<schedule>") -> Schedule:
    """Validate YAML text into a Schedule, or raise ScheduleError naming every problem found."""
    with gc_paused():
        return _parse(text, source)


def _parse(text: str, source: str) -> Schedule:
    try:
        doc = _load_yaml(text)
    except _Refused as err:
        raise ScheduleError(source, [Problem(err.line or 1, err.key or "(document)", err.message)]) from None
    except yaml.YAMLError as err:
        raise ScheduleError(source, [_syntax_problem(text, err)]) from None
    except (ValueError, TypeError, RecursionError) as err:  # a value the YAML constructors cannot build
        raise ScheduleError(source, [Problem(1, "(document)", f"cannot read the file: {err}")]) from None
    check = _Checker()
    if doc is None:
        raise ScheduleError(source, [Problem(1, "(document)", "the file is empty; expected a mapping with a 'sessions' list")])
    top = check.fields(doc, _TOP_FIELDS, "", 1, "the top level")
    if top is None:
        raise ScheduleError(source, check.problems)
    conference = check.text(top, "conference", "", required=False)
    raw_sessions = top.get("sessions")
    sessions: list[tuple[Session, _Where]] = []
    items: list[tuple[Talk, _Where]] = []
    if "sessions" in top and (not isinstance(raw_sessions, list) or not raw_sessions):
        check.add(top.key_lines.get("sessions", 1), "sessions", "expected a non-empty list of sessions")
    elif isinstance(raw_sessions, list):
        for i, raw in enumerate(raw_sessions):
            made = _session(check, raw, f"sessions[{i}]", raw_sessions.item_lines[i])
            if made:
                sessions.append((made[0], _Where(raw_sessions.item_lines[i], f"sessions[{i}]")))
                items.extend(made[1])
    _cross_checks(check, sessions, items)
    if check.problems:
        raise ScheduleError(source, check.problems)
    return Schedule(tuple(s for s, _ in sessions), conference, source)


def load_schedule(path: str | Path) -> Schedule:
    """Read and validate a schedule file; unreadable files are refused like malformed ones."""
    name = str(path)
    try:
        text = Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ScheduleError(name, [Problem(1, "(file)", "file not found")]) from None
    except UnicodeDecodeError as err:
        raise ScheduleError(name, [Problem(1, "(file)", f"not UTF-8 text ({err.reason})")]) from None
    except OSError as err:
        raise ScheduleError(name, [Problem(1, "(file)", f"cannot read: {err.strerror}")]) from None
    return parse_schedule(text, name)
