"""Schedule sources: one module per format, each reading into a Draft that one builder validates.

The format is told by the content, never by the file name: our YAML, a pretalx/frab schedule.json,
a frab/pentabarf schedule.xml or an iCalendar file. Each reader module has
`read(data: bytes, source: str, timezone: ZoneInfo | None) -> Draft`; `bot.sources.build.build`
turns any Draft into the frozen core Schedule, so a rule such as "end after start" is written once.
"""

from __future__ import annotations

import codecs
import importlib
import logging
import os
import re
from pathlib import Path
from zoneinfo import ZoneInfo

from bot.core.schedule import Problem, Schedule, ScheduleError, gc_paused, give_way
from bot.sources.draft import Draft

log = logging.getLogger(__name__)

MAX_BYTES = 50 * 1024 * 1024
"""Largest schedule file read by default: FOSDEM's 883 events are 2.8 MB of XML, a 10,000-talk YAML
file 23 MB. Only the 100,000-talk benchmark (230 MB) needs more, and asks for it (`max_bytes=None`)."""

READERS = {
    "yaml": "bot.sources.yaml_source",
    "frab-json": "bot.sources.frab_json",
    "frab-xml": "bot.sources.frab_xml",
    "ics": "bot.sources.ics",
}
ACCEPTED = "our YAML, a pretalx/frab schedule.json, a frab/pentabarf schedule.xml or an iCalendar (.ics) file"
_BOM = b"\xef\xbb\xbf"
_HEAD = 65_536  # what detection looks at
_YAML_START = re.compile(rb"(---|\.\.\.|%YAML|%TAG|[-?!&*](\s|$)|[!&*][^\s]|[^\n]*:(\s|$))")  # a document, tag, anchor or key
_XML_ENCODING = re.compile(rb"""^<\?xml[^>]*encoding\s*=\s*["']([A-Za-z0-9._-]+)["']""")


def detect_format(data: bytes) -> str:
    """ "yaml", "frab-json", "frab-xml" or "ics", from the first bytes; ValueError names the accepted formats."""
    head = data[:_HEAD].removeprefix(_BOM).lstrip()
    start = head[:64].lower()
    if start.startswith(b"begin:vcalendar"):
        return "ics"
    if start.startswith((b"<html", b"<!doctype html")):
        raise ValueError(f"this is a web page (HTML), not a schedule; expected {ACCEPTED}")
    if head.startswith(b"<"):
        return "frab-xml"
    if head.startswith((b"{", b"[")):
        return _json_kind(head)
    if b"\x00" not in head and (not _content(head) or _YAML_START.match(_content(head))):
        return "yaml"
    raise ValueError(f"not a schedule format this bot reads; expected {ACCEPTED}")


def _json_kind(head: bytes) -> str:
    """JSON is YAML too: a document with a top-level `sessions` before any `schedule` is ours."""
    ours = re.search(rb'"sessions"\s*:', head)
    frab = re.search(rb'"schedule"\s*:', head)
    return "yaml" if ours and (frab is None or ours.start() < frab.start()) else "frab-json"


def _content(head: bytes) -> bytes:
    """The text from the first line that is neither blank nor a YAML comment."""
    for line in head.splitlines(keepends=True):
        stripped = line.strip()
        if stripped and not stripped.startswith(b"#"):
            return line.lstrip()
    return b""


def decode_utf8(data: bytes, source: str) -> str:
    """The text, or a ScheduleError that names the line and column of the first byte that is not UTF-8."""
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as err:
        line = data.count(b"\n", 0, err.start) + 1
        column = err.start - (data.rfind(b"\n", 0, err.start) + 1) + 1
        message = f"not UTF-8 text: byte 0x{data[err.start]:02x} at line {line}, column {column} ({err.reason}); save the file as UTF-8"
        raise ScheduleError(source, [Problem(line, "(file)", message)]) from None


_UTF8_PIECE = 1 << 19


def check_utf8(data: bytes, source: str, *, piece: int = _UTF8_PIECE) -> None:
    """Refuse bytes that are not UTF-8, as decode_utf8 does, half a megabyte at a time.

    One decode of a 23 MB file holds the GIL for 30 ms, which an event loop answering queries
    beside a reload would wait out; a piece at a time lets it in between.
    """
    decoder = codecs.getincrementaldecoder("utf-8")()
    view = memoryview(data)
    try:
        for lo in range(0, len(data), piece):
            give_way()
            decoder.decode(view[lo : lo + piece])
        decoder.decode(b"", final=True)
    except UnicodeDecodeError:
        decode_utf8(data, source)  # names the line and column
        raise


def _too_big(size: int, limit: int) -> str:
    return f"the file has {size / 2**20:,.1f} MB, more than the {limit / 2**20:g} MB a schedule may have; is it the right file?"


def _reader(fmt: str, source: str):  # -> a module with read(data, source, timezone) -> Draft
    try:
        return importlib.import_module(READERS[fmt])
    except ModuleNotFoundError:
        raise ScheduleError(source, [Problem(0, "(file)", f"looks like {fmt}, which this version cannot read yet; expected {ACCEPTED}")]) from None


def parse_bytes(data: bytes, source: str, timezone: ZoneInfo | None = None, *, max_bytes: int | None = MAX_BYTES) -> tuple[Schedule, list[Problem]]:
    """Any supported format into the Schedule and its warnings; ScheduleError names what refuses it.

    `timezone` (SCHEDULE_TIMEZONE) is used only for times in a file that states no zone or offset.
    """
    from bot.sources.build import build

    if max_bytes is not None and len(data) > max_bytes:
        raise ScheduleError(source, [Problem(0, "(file)", _too_big(len(data), max_bytes))])
    data = data.removeprefix(_BOM)
    try:
        fmt = detect_format(data)
    except ValueError as err:
        raise ScheduleError(source, [Problem(0, "(file)", str(err))]) from None
    if fmt == "ics" or (fmt == "frab-xml" and not _declares_other_encoding(data)):
        check_utf8(data, source)  # the YAML and JSON readers check (and report) themselves
    reader = _reader(fmt, source)
    with gc_paused():
        quick = _built_quick(reader, data, source, timezone)
        if quick is not None:
            return quick
        try:
            draft = reader.read(data, source, timezone)
        except (ArithmeticError, AttributeError, KeyError, IndexError, TypeError, ValueError, RecursionError) as err:
            log.debug("%s: the %s reader failed", source, fmt, exc_info=True)  # a reader's gap; the file is still refused kindly
            raise ScheduleError(source, [Problem(0, "(file)", f"cannot read this {fmt} file ({type(err).__name__}: {str(err)[:200]})")]) from None
        built = build(draft)
        let_go(draft)
        return built


def _built_quick(reader, data: bytes, source: str, timezone: ZoneInfo | None) -> tuple[Schedule, list[Problem]] | None:
    """The schedule from a reader's quick draft (one that names no lines), when it has nothing to report.

    Recording the line of every field costs our YAML half its load time, and a line is only ever
    needed for a message. So a file is read quickly first; a problem or a warning means it is read
    again, carefully, and reported from that read: the messages name the same lines as ever.
    """
    from bot.sources.build import build

    read_quick = getattr(reader, "read_quick", None)
    draft = read_quick(data, source, timezone) if read_quick is not None else None
    if draft is None:
        return None
    try:
        schedule, warnings = build(draft)
    except ScheduleError:
        return None
    finally:
        let_go(draft)
    return (schedule, warnings) if not warnings else None


def let_go(draft: Draft) -> None:
    """Free a Draft a few items at a time once it is built: a 10,000-talk Draft dropped whole is a
    C cascade that holds the GIL for 25 ms, and an event loop answering beside a reload waits that long."""
    for session in draft.sessions:
        while session.items:
            give_way()
            del session.items[-64:]
    draft.sessions.clear()


def _declares_other_encoding(data: bytes) -> bool:
    """An XML declaration naming another encoding than UTF-8: the XML parser decodes it."""
    match = _XML_ENCODING.match(data[:200])
    return bool(match) and match.group(1).lower().replace(b"_", b"-") not in (b"utf-8", b"utf8")


def parse_schedule(text: str, source: str = "<schedule>", timezone: ZoneInfo | None = None) -> Schedule:
    """Text of any format into a Schedule (warnings logged); ScheduleError names every problem found.

    The caller already holds the text, so no size cap applies here (our YAML keeps its own limits).
    """
    from bot.sources import yaml_source
    from bot.sources.build import build

    try:
        fmt = detect_format(text[:_HEAD].encode("utf-8", "replace"))
    except ValueError as err:
        raise ScheduleError(source, [Problem(0, "(file)", str(err))]) from None
    if fmt != "yaml":
        schedule, warnings = parse_bytes(text.encode("utf-8", "surrogatepass"), source, timezone, max_bytes=None)
    else:
        with gc_paused():
            schedule, warnings = build(yaml_source.read_text(text, source))
    log_warnings(source, warnings)
    return schedule


def read_file(path: str | Path, *, max_bytes: int | None = MAX_BYTES) -> bytes:
    """A schedule file's bytes; a missing, unreadable or oversized file is refused before it is read whole."""
    name = str(path)
    try:
        with Path(path).open("rb") as handle:
            size = os.fstat(handle.fileno()).st_size
            if max_bytes is not None and size > max_bytes:
                raise ScheduleError(name, [Problem(0, "(file)", _too_big(size, max_bytes))])
            data = handle.read() if max_bytes is None else handle.read(max_bytes + 1)
    except FileNotFoundError:
        raise ScheduleError(name, [Problem(0, "(file)", "file not found")]) from None
    except OSError as err:
        raise ScheduleError(name, [Problem(0, "(file)", f"cannot read: {err.strerror or err}")]) from None
    if max_bytes is not None and len(data) > max_bytes:  # grew while read, or a device without a size
        raise ScheduleError(name, [Problem(0, "(file)", _too_big(len(data), max_bytes))])
    return data


def load_file(path: str | Path, timezone: ZoneInfo | None = None, *, max_bytes: int | None = MAX_BYTES) -> tuple[Schedule, list[Problem]]:
    """A schedule file of any format and its warnings, nothing logged (for `check` and `import`)."""
    return parse_bytes(read_file(path, max_bytes=max_bytes), str(path), timezone, max_bytes=max_bytes)


def load_schedule(path: str | Path, timezone: ZoneInfo | None = None, *, max_bytes: int | None = MAX_BYTES) -> Schedule:
    """A schedule file of any format; its warnings are logged as one line (each at DEBUG)."""
    schedule, warnings = load_file(path, timezone, max_bytes=max_bytes)
    log_warnings(str(path), warnings)
    return schedule


def log_warnings(source: str, warnings: list[Problem]) -> None:
    """One summary line, so a messy export does not flood the log; the details at DEBUG."""
    if not warnings:
        return
    log.warning("%s: %d warning%s, details at DEBUG", source, len(warnings), "s" * (len(warnings) != 1))
    for problem in warnings:
        log.debug("%s", problem.located(source))
