"""Our YAML schedule format, read into a Draft with the line of every field.

Strict: any problem refuses the file. The loader is hardened against hostile YAML (aliases that
expand to billions of values, huge texts, tags that would run code) and names the line and field of
every problem, so an organiser can fix the file without reading a traceback. The rules every format
shares (titles, end after start, unique ids, rooms, dates) are checked by bot.sources.build.
"""

from __future__ import annotations

import datetime as dt
import re
import threading
from typing import Any, ClassVar
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import yaml
from dateutil.parser import isoparse
from rapidfuzz import process

from bot.core.schedule import Kind, Problem, ScheduleError, give_way
from bot.sources.draft import MAX_TEXT_CHARS, Draft, DraftItem, DraftSession, Place

_BaseLoader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


# --------------------------------------------------------------------------- YAML with lines

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
        """yaml's resolver, memoised for short plain scalars: keys and kinds repeat thousands of times.

        libyaml calls it for every node it composes: the one place a build can give way meanwhile.
        """
        self._composed = composed = getattr(self, "_composed", 0) + 1
        if not composed & 63:
            give_way()
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

    def _written(self, node: yaml.Node, value: Any, written_after: int) -> int:
        """Where the text written out so far ends; a node that ends before it is an alias, whose text counts again."""
        end = node.end_mark.index
        if end > written_after:
            return end
        if type(value) is str:  # an alias of a text
            self._repeat(len(value))
        return written_after

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
                written_after = self._written(child, value, written_after)
        except _Refused as err:
            err.line = err.line or result.line
            raise
        self._done(node, count, repeated)
        return result

    def build_map(self, node: yaml.MappingNode) -> _Map:
        if id(node) in self.built:
            return self._reuse(node)
        give_way()
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
                written_after = self._written(value_node, value, written_after)
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


def _load_yaml(stream: str | bytes) -> Any:
    """yaml.load with _SafeLineLoader, through the direct builder above; bytes must be UTF-8."""
    loader = _SafeLineLoader(stream)
    try:
        node = loader.get_single_node()
        if node is None:
            return None
        doc = _Builder(loader).build(node)
        _let_go(node)
        return doc
    finally:
        loader.dispose()


class _NotPlain(Exception):
    """Something the quick reader leaves to the careful one: an alias, a tag, a merge key, a problem."""


_PLAIN_DEPTH = 32  # a schedule nests six deep; anything deeper is read (and refused) the careful way
_EVENTS = yaml.events


def _load_plain(data: bytes) -> Any:
    """The document as plain dicts, lists and scalars, built straight from libyaml's events: no node
    tree and no lines, so about half the time and a third of the memory of `_load_yaml`.

    It is the same data `_load_yaml` builds, or _NotPlain: for anything but written-out mappings,
    lists and scalars of the core schema (aliases, tags, merge keys, keys that are not text, a key
    twice, overlong texts, too many values, several documents) and for every syntax error, so that
    each is reported by the careful reader, with its line.
    """
    loader = _BaseLoader(data)
    next_event, resolve, tags, constructors = loader.get_event, loader.resolve, _SafeLineLoader._plain_tags, loader.yaml_constructors
    scalar, mapping, sequence, mapping_end, sequence_end = (
        _EVENTS.ScalarEvent,
        _EVENTS.MappingStartEvent,
        _EVENTS.SequenceStartEvent,
        _EVENTS.MappingEndEvent,
        _EVENTS.SequenceEndEvent,
    )
    stack: list[tuple[Any, Any, bool]] = []
    container: Any = None
    in_map, key, root, count = False, None, None, 0
    try:
        while True:
            event = next_event()
            kind = type(event)
            if kind is scalar:
                if event.tag is not None:
                    raise _NotPlain
                value = event.value
                if len(value) > MAX_TEXT_CHARS:
                    raise _NotPlain
                if event.implicit[0]:  # plain, not quoted: text, a number, true/false, null or a time
                    tag = tags.get(value)
                    if tag is None:
                        tag = resolve(yaml.ScalarNode, value, (True, False))
                        if len(value) <= 32 and len(tags) < 100_000:
                            tags[value] = tag
                    if tag not in _TEXT_TAGS:
                        if (in_map and key is None) or tag == _MERGE_TAG or tag not in constructors:
                            raise _NotPlain  # a key that is not text, or a merge
                        value = constructors[tag](loader, yaml.ScalarNode(tag, value))
            elif kind is mapping or kind is sequence:
                if event.tag is not None or (in_map and key is None) or len(stack) >= _PLAIN_DEPTH:
                    raise _NotPlain
                stack.append((container, key, in_map))
                in_map = kind is mapping
                container, key = {} if in_map else [], None
                continue
            elif kind is mapping_end or kind is sequence_end:
                value = container
                container, key, in_map = stack.pop()
            elif kind is _EVENTS.StreamEndEvent:
                break
            elif kind is _EVENTS.AliasEvent or (kind is _EVENTS.DocumentStartEvent and root is not None):
                raise _NotPlain
            else:
                continue
            count += 1  # a value is complete: counted as _Builder counts it (and the root once more)
            if not count & 63:
                give_way()
                if count > MAX_VALUES + 1:
                    raise _NotPlain
            if in_map:
                if key is None:
                    if value in container:
                        raise _NotPlain
                    key = value
                else:
                    container[key] = value
                    key = None
            elif container is not None:
                container.append(value)
            else:
                root = value
    except (yaml.YAMLError, ValueError, TypeError, KeyError) as err:
        raise _NotPlain from err
    finally:
        loader.dispose()
    if root is None or count > MAX_VALUES + 1:
        raise _NotPlain
    return root


_BRANCH_DEPTH = 4  # top, the sessions, a session, its items: an item and what it holds go at once


def _let_go(tree: Any) -> None:
    """Empty a loaded document, or yaml's node tree, a small branch at a time.

    Dropped whole, a 10,000-talk tree is freed in one C cascade that holds the GIL for 20 to 50 ms,
    and an event loop answering queries beside a reload in a worker thread waits that long. Only
    what the reader itself built is emptied: no Draft holds a list or mapping of the document.
    In the main thread (a first load, before any event loop runs) nothing waits: the tree goes at
    once, with its last reference.
    """
    if threading.current_thread() is threading.main_thread():
        return
    branches = [(tree, 0)]
    while branches:
        give_way()
        branch, depth = branches.pop()
        if depth >= _BRANCH_DEPTH:
            continue  # freed here, when `branch` is bound to the next one
        if isinstance(branch, dict):
            branches.extend((value, depth + 1) for value in branch.values())
            branch.clear()
        elif isinstance(branch, list):
            branches.extend((value, depth + 1) for value in branch)
            branch.clear()
        elif isinstance(branch, yaml.MappingNode):
            branches.extend((value, depth + 1) for _, value in branch.value)
            branch.value = []
        elif isinstance(branch, yaml.SequenceNode):
            branches.extend((value, depth + 1) for value in branch.value)
            branch.value = []


def _syntax_problem(text: str, err: yaml.YAMLError) -> Problem:
    """Point at the line of the field where the syntax breaks (or where the broken construct began)."""
    if isinstance(err, yaml.reader.ReaderError):
        return _reader_problem(text, err)
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


def _reader_problem(text: str, err: yaml.reader.ReaderError) -> Problem:
    """A character YAML does not allow (a control character), at its line and column.

    libyaml counts the place in bytes of UTF-8, whether it was handed the text or the file's bytes.
    """
    before = text.encode("utf-8", "surrogatepass")[: err.position]
    line_start = before.rfind(b"\n") + 1
    column = len(before[line_start:].decode("utf-8", "replace")) + 1
    what = f"unacceptable character #x{err.character:04x}" if isinstance(err.character, int) else "unacceptable character"
    line = before.count(b"\n") + 1
    lines = text.split("\n")
    field = re.match(r"\s*-?\s*([A-Za-z_][\w-]*)\s*:", lines[line - 1] if line <= len(lines) else "")
    return Problem(line, field.group(1) if field else "(syntax)", f"YAML syntax error, column {column}: {what}: {err.reason}")


# --------------------------------------------------------------------------- fields


class _Spec(dict):
    """The fields of a mapping, each with whether it is required."""

    def __init__(self, fields: dict[str, bool]) -> None:
        super().__init__(fields)
        self.required = frozenset(name for name, required in fields.items() if required)


def _line(node: Any, key: Any = None, *, default: int | None = None) -> int:
    """The line of a key of a mapping (or of the mapping itself); 0 in plain data, read without lines."""
    base = getattr(node, "line", 0) if default is None else default
    lines = getattr(node, "key_lines", None)
    return lines.get(key, base) if lines is not None and key is not None else base


def _item_line(seq: Any, i: int) -> int:
    lines = getattr(seq, "item_lines", None)
    return lines[i] if lines is not None else 0


_SESSION_FIELDS = _Spec({"id": True, "name": True, "timezone": True, "date": True, "items": True, "chairs": False, "room": False})
_ITEM_FIELDS = _Spec(
    {
        "id": True,
        "kind": True,
        "start": True,
        "end": True,
        "title": True,
        "authors": False,
        "abstract": False,
        "follows": False,
        "url": False,
        "track": False,
    }
)
_TOP_FIELDS = _Spec({"sessions": True, "conference": False, "allow_overlaps": False})


class _Checker:
    """Collects problems while walking the loaded document; never raises midway."""

    def __init__(self) -> None:
        self.problems: list[Problem] = []
        self.moments: dict[tuple[str, ZoneInfo | None], dt.datetime] = {}  # times read without a problem

    def add(self, line: int, field_path: str, message: str) -> None:
        self.problems.append(Problem(line, field_path, message))

    def fields(self, node: Any, spec: _Spec, path: str, line: int, what: str) -> _Map | None:
        if not isinstance(node, dict):
            self.add(getattr(node, "line", line), path or "(top level)", f"expected {what} (a mapping of fields), got {_describe(node)}")
            return None
        if node.keys() <= spec.keys() and spec.required <= node.keys():  # the usual case, checked in C
            return node
        for key in node:
            if key not in spec:
                hint = process.extractOne(str(key), list(spec), score_cutoff=60)
                extra = f"; did you mean '{hint[0]}'?" if hint else f"; allowed: {', '.join(spec)}"
                self.add(_line(node, key), _join(path, str(key)), f"unknown field{extra}")
        for key, required in spec.items():
            if required and key not in node:
                self.add(_line(node), _join(path, key), f"missing required field in {what}")
        return node

    def text(self, node: _Map, key: str, path: str, *, required: bool) -> str:
        value = node.get(key)
        if type(value) is str:  # the usual case
            value = value.strip()
        elif value is None:
            if required and key in node:
                self.add(_line(node, key), _join(path, key), "must not be empty")
            return ""
        elif not isinstance(value, str | int | float) or isinstance(value, bool):
            self.add(_line(node, key), _join(path, key), f"expected text, got {_describe(value)}")
            return ""
        else:
            value = str(value).strip()
        if required and not value:
            self.add(_line(node, key), _join(path, key), "must not be empty")
        return value

    def names(self, node: _Map, key: str, path: str) -> list[str]:
        value = node.get(key)
        if value is None:
            return []
        if not isinstance(value, list):
            self.add(_line(node, key), _join(path, key), f"expected a list of names, got {_describe(value)}")
            return []
        out = [item.strip() for item in value if type(item) is str]
        if len(out) == len(value) and all(out):  # the usual case
            return out
        out = []
        for i, item in enumerate(value):
            if not isinstance(item, str) or not item.strip():
                item_line = value.item_lines[i] if isinstance(value, _Seq) else _line(node, key)
                self.add(item_line, f"{_join(path, key)}[{i}]", f"expected a non-empty name, got {_describe(item)}")
            else:
                out.append(item.strip())
        return out

    def flag(self, node: _Map, key: str, path: str) -> bool:
        value = node.get(key)
        if value is None or isinstance(value, bool):
            return bool(value)
        self.add(_line(node, key), _join(path, key), f"expected true or false, got {_describe(value)}")
        return False

    def moment(self, node: _Map, key: str, path: str, tz: ZoneInfo | None) -> dt.datetime | None:
        value = node.get(key)
        if value is None:
            return None
        known = self.moments.get((value, tz)) if type(value) is str else None
        if known is not None:  # items of a session share a few dozen times: each is read once
            return known
        line = _line(node, key)
        where = _join(path, key)
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
        if type(value) is str and len(self.moments) < 100_000:
            self.moments[value, tz] = moment
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
        check.add(_line(node, "timezone"), _join(path, "timezone"), f"unknown time zone {name!r}; use an IANA name such as America/Los_Angeles")
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
        check.add(_line(node, "date"), _join(path, "date"), f"expected a date such as 2020-12-10, got {_describe(value)}")
    return None


# --------------------------------------------------------------------------- into a Draft


def _places(node: _Map, keys: tuple[str, ...]) -> dict[str, Place]:
    lines = getattr(node, "key_lines", None)  # none in plain data, read without lines
    return {key: Place(lines[key]) for key in keys if key in lines} if lines else {}


_ITEM_PLACES = ("id", "title", "start", "end", "follows", "url")
_KINDS = tuple(k.value for k in Kind)


def _item(check: _Checker, node: Any, path: str, tz: ZoneInfo | None, line: int) -> DraftItem | None:
    """One item, or None when a field cannot be read (its problem is noted); titles, ends and ids are build's."""
    give_way()
    item = check.fields(node, _ITEM_FIELDS, path, line, "an item")
    if item is None:
        return None
    before = len(check.problems)
    talk_id = check.text(item, "id", path, required=True)
    kind_text = check.text(item, "kind", path, required=True)
    if kind_text and kind_text.lower() not in _KINDS:
        check.add(_line(item, "kind"), _join(path, "kind"), f"unknown kind {kind_text!r}; use one of: {', '.join(_KINDS)}")
    title = check.text(item, "title", path, required=False)
    start = check.moment(item, "start", path, tz)
    end = check.moment(item, "end", path, tz)
    authors = check.names(item, "authors", path)
    follows = check.names(item, "follows", path)
    abstract = check.text(item, "abstract", path, required=False)
    url = check.text(item, "url", path, required=False)
    track = check.text(item, "track", path, required=False)
    if len(check.problems) > before or start is None or end is None:
        return None
    places = _places(item, _ITEM_PLACES)
    return DraftItem(Place(_line(item), path), talk_id, title, start, end, kind_text.lower(), authors, abstract, url, track, follows, places)


def _session(check: _Checker, node: Any, path: str, line: int) -> DraftSession | None:
    """One session with the items that could be read; None when the session's own fields cannot be."""
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
    broken = len(check.problems) > before or tz is None or date is None
    raw_items = sess.get("items")
    items: list[DraftItem] = []
    if "items" in sess and (not isinstance(raw_items, list) or not raw_items):
        check.add(_line(sess, "items"), _join(path, "items"), "expected a non-empty list of items")
    elif isinstance(raw_items, list):
        for i, raw in enumerate(raw_items):
            made = _item(check, raw, f"{path}.items[{i}]", tz, _item_line(raw_items, i))
            if made:
                items.append(made)
    if broken:
        return None
    return DraftSession(Place(line, path), session_id, name, tz, date, items, room, chairs, _places(sess, ("id", "date")))


def _document(check: _Checker, doc: Any, source: str) -> Draft:
    if doc is None:
        raise ScheduleError(source, [Problem(1, "(document)", "the file is empty; expected a mapping with a 'sessions' list")])
    top = check.fields(doc, _TOP_FIELDS, "", 1, "the top level")
    if top is None:
        raise ScheduleError(source, check.problems)
    conference = check.text(top, "conference", "", required=False)
    allow_overlaps = check.flag(top, "allow_overlaps", "")
    raw_sessions = top.get("sessions")
    sessions: list[DraftSession] = []
    if "sessions" in top and (not isinstance(raw_sessions, list) or not raw_sessions):
        check.add(_line(top, "sessions", default=1), "sessions", "expected a non-empty list of sessions")
    elif isinstance(raw_sessions, list):
        for i, raw in enumerate(raw_sessions):
            made = _session(check, raw, f"sessions[{i}]", _item_line(raw_sessions, i))
            if made:
                sessions.append(made)
    notes = [(Place(p.line), p.field, p.message) for p in check.problems]
    return Draft(source, sessions, conference, strict=True, notes=notes, allow_overlaps=allow_overlaps)


def read_text(text: str, source: str = "<schedule>") -> Draft:
    """Our YAML as text into a strict Draft; a file that cannot be read at all raises ScheduleError."""
    return _read(text, source)


def read(data: bytes, source: str, timezone: ZoneInfo | None = None) -> Draft:
    """The reader interface every format shares. Our YAML names its zones, so `timezone` is unused.

    libyaml reads the UTF-8 bytes as they are: decoding the file to text first, which libyaml then
    encodes back to UTF-8, held the GIL twice for 30 ms at 10,000 talks (and doubled the memory).
    """
    from bot.sources import check_utf8

    check_utf8(data, source)
    if data.startswith(b"\xef\xbb\xbf"):  # a second byte order mark: as text, libyaml counts it as a column
        return read_text(data.decode("utf-8"), source)
    return _read(data, source)


def read_quick(data: bytes, source: str, timezone: ZoneInfo | None = None) -> Draft | None:
    """Our YAML read without lines, from plain data (see _load_plain), or None: then `read` must read it.

    None whenever there is anything to report (a problem the checks find, or one the quick reader
    leaves to the careful one): the careful read reports it with its line. A draft read so names no
    lines, so the caller uses it only when it builds without a problem or warning.
    """
    if data.startswith(b"\xef\xbb\xbf"):
        return None
    try:
        doc = _load_plain(data)  # libyaml refuses bytes that are not UTF-8 (then `read` names the place)
    except _NotPlain:
        return None
    check = _Checker()
    try:
        draft = _document(check, doc, source)
    except ScheduleError:
        return None
    finally:
        _let_go(doc)
    return None if check.problems else draft


def _read(stream: str | bytes, source: str) -> Draft:
    try:
        doc = _load_yaml(stream)
    except _Refused as err:
        raise ScheduleError(source, [Problem(err.line or 1, err.key or "(document)", err.message)]) from None
    except yaml.YAMLError as err:
        text = stream if isinstance(stream, str) else stream.decode("utf-8")
        raise ScheduleError(source, [_syntax_problem(text, err)]) from None
    except (ValueError, TypeError, RecursionError) as err:  # a value the YAML constructors cannot build
        raise ScheduleError(source, [Problem(1, "(document)", f"cannot read the file: {err}")]) from None
    draft = _document(_Checker(), doc, source)
    _let_go(doc)
    return draft
