"""A ready-to-serve copy of a validated schedule and its search index, for fast restarts.

Parsing and indexing a conference-sized YAML file takes seconds; a restart of the same file
should not. The copy is keyed by the file's bytes and by the code that built it, lives in the
bot's own state folder, and is rebuilt whenever either changes. Validation errors are never
cached: a bad file is refused on every start.

The state folder is untrusted (STYLE 9): nothing in it is unpickled. A copy is one file, sealed
with an HMAC (when the caller holds a key from the state store) or at least a SHA-256 digest,
either checked before a byte of it is parsed. Inside: a JSON document (the schedule, column by
column, and the index's structure), the abstracts as plain UTF-8, and a numpy .npz of the index
arrays (read with allow_pickle=False). Every value is type-checked; only classes defined in
bot.core.search are rebuilt, by name. Any doubt means one warning and a rebuild from the YAML.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import hashlib
import hmac
import io
import itertools
import json
import logging
import math
import os
import queue
import re
import secrets
import stat
import tempfile
import threading
import time
import zipfile
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, BinaryIO
from zoneinfo import ZoneInfo

import numpy as np
import orjson

from bot.config import Settings
from bot.core import search
from bot.core.schedule import Kind, Schedule, Session, Talk, gc_paused
from bot.core.search import SearchIndex
from bot.sources import MAX_BYTES, log_warnings, parse_bytes, read_file

log = logging.getLogger(__name__)

_CODE = ("schedule.py", "search.py", "text.py", "cache.py")  # in bot/core; every module of bot/sources counts too
SUFFIX = ".ready"
_MAGIC = b"TRKREADY\x00\x01"  # format 1
_SEAL = 32  # bytes of HMAC-SHA256 (with a key) or SHA-256 (without) after the magic
_HEAD = len(_MAGIC) + _SEAL + 16  # then the lengths of the JSON document and of the texts; then those; then the .npz
_MIN_KEY = 16


class CacheRefused(Exception):
    """A prepared copy that is damaged, forged or of another format: rebuild instead."""


class CacheUnsupported(Exception):
    """The index holds a value this format cannot store; the schedule is parsed on every start."""


def new_cache_key() -> bytes:
    """A fresh secret for sealing prepared copies; keep it in the state store, never beside the copies."""
    return secrets.token_bytes(32)


def _code_digest() -> bytes:
    """Changes to the modules whose objects are stored make old copies unusable."""
    digest = hashlib.blake2b(digest_size=16)
    here = Path(__file__).parent
    for path in [*(here / name for name in _CODE), *sorted((here.parent / "sources").glob("*.py"))]:
        digest.update(path.name.encode() + b"\0" + path.read_bytes())
    return digest.digest()


def cache_dir(settings: Settings) -> Path:
    """Prepared copies live beside the bot's other state (STATE_PATH's folder)."""
    return settings.state_path.parent / "cache"


def source_id(data: bytes) -> bytes:
    """Names the copy of these bytes made by this code; sealed with it, so no copy passes for another."""
    return _hasher(data).digest()


def _hasher(data: bytes = b"") -> Any:
    return hashlib.blake2b(data, digest_size=16, key=_code_digest())


def cache_path(source: Path, data: bytes, cache_dir: Path) -> Path:
    return _named(source, source_id(data), cache_dir)


def _named(source: Path, ident: bytes, cache_dir: Path) -> Path:
    return cache_dir / f"{source.stem}-{ident.hex()}{SUFFIX}"


def load_ready(
    path: str | Path,
    cache_dir: Path | None,
    key: bytes | None = None,
    *,
    timezone: ZoneInfo | None = None,
    max_bytes: int | None = MAX_BYTES,
    background: bool = False,
) -> tuple[Schedule, SearchIndex]:
    """The schedule (any format) and its index, from the cache when it matches the file, else built and cached.

    With `key` (a secret from the state store), a copy must carry its HMAC; without, a digest
    only catches damage. Either is checked before anything in the copy is parsed. `timezone`
    (SCHEDULE_TIMEZONE) is part of what names the copy: it changes what a zone-less file means.
    `background`: return as soon as the schedule and index are ready, and write the copy in a
    thread (see wait_for_copies); a load of the same copy in this process waits for it.
    """
    if key is not None and len(key) < _MIN_KEY:
        raise ValueError(f"a cache key needs at least {_MIN_KEY} bytes")
    source = Path(path)
    if cache_dir is None:
        return _fresh(source, timezone, max_bytes)
    try:
        with source.open("rb") as handle:  # only its digest: a restart has no use for the bytes themselves
            size = os.fstat(handle.fileno()).st_size
            if max_bytes is not None and size > max_bytes:
                return _fresh(source, timezone, max_bytes)  # refused with the usual message, before reading it
            if not _may_hold_copy(cache_dir, source):  # a first load: its digest is taken beside the parse instead
                return _prepare(source, cache_dir, key, timezone, max_bytes, background=background)
            ident = _with_zone(hashlib.file_digest(handle, _hasher).digest(), timezone)
    except OSError:
        return _fresh(source, timezone, max_bytes)  # refuses the file with the usual message
    target = _named(source, ident, cache_dir)
    _wait_for(target)
    cached = _read(target, ident, key, str(source), limit=16 * size + 2**24)
    if cached is not None:
        log.debug("schedule: using the prepared copy %s", target)
        return cached
    return _prepare(source, cache_dir, key, timezone, max_bytes, background=background)


def _may_hold_copy(cache_dir: Path, source: Path) -> bool:
    """Whether a copy of a file of this name may be there (or is being written here): without one, hashing the file first is wasted."""
    prefix = f"{source.stem}-"
    with _writers_lock:
        if any(name.parent == cache_dir and name.name.startswith(prefix) for name in _writers):
            return True
    try:
        with os.scandir(cache_dir) as entries:
            return any(entry.name.startswith(prefix) and entry.name.endswith(SUFFIX) for entry in entries)
    except FileNotFoundError:
        return False
    except OSError:
        return True  # then the copy's own reading decides, as ever


def _with_zone(ident: bytes, timezone: ZoneInfo | None) -> bytes:
    return ident if timezone is None else _hasher(ident + b"\0tz=" + timezone.key.encode()).digest()


def _fresh(source: Path, timezone: ZoneInfo | None = None, max_bytes: int | None = MAX_BYTES) -> tuple[Schedule, SearchIndex]:
    schedule = _parsed(read_file(source, max_bytes=max_bytes), source, timezone)
    return schedule, SearchIndex(schedule)


def _parsed(data: bytes, source: Path, timezone: ZoneInfo | None) -> Schedule:
    schedule, warnings = parse_bytes(data, str(source), timezone, max_bytes=None)
    log_warnings(str(source), warnings)
    return schedule


def _prepare(
    source: Path,
    cache_dir: Path,
    key: bytes | None,
    timezone: ZoneInfo | None = None,
    max_bytes: int | None = MAX_BYTES,
    *,
    background: bool = False,
) -> tuple[Schedule, SearchIndex]:
    """Parse and index the file, and keep a copy named after the very bytes parsed."""
    data = read_file(source, max_bytes=max_bytes)
    with ThreadPoolExecutor(1, thread_name_prefix="schedule-digest") as pool:
        digest = pool.submit(source_id, data)  # hashing lets the GIL go: it runs beside the parse
        schedule = _parsed(data, source, timezone)
        ident = _with_zone(digest.result(), timezone)
    del data  # the file's bytes are not kept while the index is built and the copy written
    index = SearchIndex(schedule)
    target = _named(source, ident, cache_dir)
    if not background:
        _keep(target, schedule, index, ident, key)
        return schedule, index
    # Not a daemon: a process that ends normally finishes the copy first. One killed meanwhile leaves
    # only a temporary file (see _write), never a copy under the name that is read.
    writer = threading.Thread(target=_keep, args=(target, schedule, index, ident, key), name="schedule-copy")
    with _writers_lock:
        for name in [name for name, other in _writers.items() if not other.is_alive()]:
            del _writers[name]
        _writers[target] = writer
    writer.start()
    return schedule, index


def _keep(target: Path, schedule: Schedule, index: SearchIndex, ident: bytes, key: bytes | None) -> None:
    """Write the sealed copy of a schedule and its index; a failure costs a warning, never the schedule."""
    try:
        parts = _Parts(schedule, index)
    except CacheUnsupported as err:
        log.warning("schedule: cannot keep a prepared copy (%s); every start parses the file again", err)
    except Exception:  # a bug here must not keep a good schedule from being served
        log.exception("schedule: cannot keep a prepared copy; every start parses the file again")
    else:
        try:
            _write(target, parts, lambda handle, parts: parts.write(handle, ident, key))
        except Exception:  # in a background thread, nobody else would hear of it
            log.exception("schedule: could not keep a prepared copy in %s; the next start parses again", target.parent)


_writers: dict[Path, threading.Thread] = {}  # copies being written in the background, by name
_writers_lock = threading.Lock()


def _wait_for(target: Path) -> None:
    """A copy this process is still writing is waited for before it is looked for."""
    with _writers_lock:
        writer = _writers.get(target)
    if writer is not None:
        writer.join()
        with _writers_lock:
            if _writers.get(target) is writer:
                del _writers[target]


def wait_for_copies(timeout: float | None = None) -> bool:
    """Wait until the prepared copies being written in the background are on disk (or failed); False on timeout."""
    deadline = None if timeout is None else time.monotonic() + timeout
    while True:
        with _writers_lock:
            writers = [w for w in _writers.values() if w.is_alive()]
            if not writers:
                _writers.clear()
                return True
        writers[0].join(None if deadline is None else max(0.0, deadline - time.monotonic()))
        if deadline is not None and time.monotonic() >= deadline and writers[0].is_alive():
            return False


def dumps(schedule: Schedule, index: SearchIndex, ident: bytes, key: bytes | None) -> bytes:
    """A sealed copy of a schedule and its index; CacheUnsupported for a value the format cannot hold."""
    out = io.BytesIO()
    _Parts(schedule, index).write(out, ident, key)
    return out.getvalue()


def loads(blob: bytes, ident: bytes, key: bytes | None, source: str) -> tuple[Schedule, SearchIndex]:
    """The schedule and index of a sealed copy; CacheRefused (or another error) for anything else."""
    return _build(*_contents(blob, ident, key), source)


def _contents(blob: bytes, ident: bytes, key: bytes | None) -> tuple[bytes, list[str], dict[str, np.ndarray]]:
    """The document, the abstracts and the arrays, copied out so that the file's bytes can go before the objects come."""
    document, texts, npz = unpack(blob, ident, key)
    arrays = _load_arrays(npz)
    return document, _cut(texts, arrays.get("abstract_ends")), arrays


def _build(document: bytes, abstracts: list[str], arrays: dict[str, np.ndarray], source: str) -> tuple[Schedule, SearchIndex]:
    with gc_paused():
        return decode(_loads(document), abstracts, arrays, source)


def _loads(document: bytes) -> Any:
    """orjson reads what it wrote; json what only it could write (see _json), or anything else orjson refuses."""
    if document[:1] != b" ":
        try:
            return orjson.loads(document)
        except orjson.JSONDecodeError:
            pass
    return json.loads(document)


# --------------------------------------------------------------------------- the file


def _seal(ident: bytes, body: memoryview, key: bytes | None) -> bytes:
    mac = hmac.new(key, digestmod=hashlib.sha256) if key is not None else hashlib.sha256()
    mac.update(_MAGIC)
    mac.update(ident)
    mac.update(body)
    return mac.digest()


def pack(ident: bytes, document: bytes, texts: bytes, arrays: bytes, key: bytes | None) -> bytes:
    """magic | seal over (magic, ident, the rest) | two lengths | JSON document | UTF-8 texts | .npz"""
    body = b"".join([len(document).to_bytes(8, "little"), len(texts).to_bytes(8, "little"), document, texts, arrays])
    return _MAGIC + _seal(ident, memoryview(body), key) + body


class _Parts:
    """A copy's parts, written one after the other as `pack` lays them out, with no copy of the whole.

    Joined in memory, a 10,000-talk copy (32 MB) was made three times over before it was written: most
    of the first load's peak memory. The abstracts are encoded one at a time, as they are written.
    """

    def __init__(self, schedule: Schedule, index: SearchIndex) -> None:
        with gc_paused():  # a document of millions of new containers, and no garbage in it: see gc_paused
            self.document, self.abstracts, arrays = _encode(schedule, index)
        self.texts = int(arrays["abstract_ends"][-1]) if len(self.abstracts) else 0
        # Written into room made beforehand: grown as it is written, the buffer was copied over and over (0.2 s at 100,000 talks).
        self.arrays = io.BytesIO(bytes(sum(a.nbytes for a in arrays.values()) + 512 * len(arrays) + 4096))
        np.savez(self.arrays, **arrays)
        self.arrays.truncate()

    def pieces(self) -> Iterator[bytes | memoryview]:
        """The bytes after the seal, a piece at a time: the lengths, the document, the abstracts, the arrays."""
        yield len(self.document).to_bytes(8, "little") + self.texts.to_bytes(8, "little")
        yield self.document
        for lo in range(0, len(self.abstracts), 1024):
            yield "".join(self.abstracts[lo : lo + 1024]).encode("utf-8", "surrogatepass")  # the same bytes as one by one
        yield self.arrays.getbuffer()

    def write(self, handle: BinaryIO, ident: bytes, key: bytes | None) -> None:
        """Written with a blank seal, then sealed: the seal covers what follows it, known only once written."""
        mac = hmac.new(key, digestmod=hashlib.sha256) if key is not None else hashlib.sha256()
        start = handle.tell()
        handle.write(_MAGIC + bytes(_SEAL))
        mac.update(_MAGIC)
        mac.update(ident)

        with _Sealer(mac) as sealer:
            for part in self.pieces():  # each piece sealed in a thread while it is written: both let the GIL go
                sealer.seal(part)
                handle.write(part)
        end = handle.tell()
        handle.seek(start + len(_MAGIC))
        handle.write(mac.digest())
        handle.seek(end)


class _Sealer:
    """Feeds a MAC one piece at a time in a thread of its own, the previous piece done before the next.

    Not a concurrent.futures pool: a copy written in the background may still be writing while the
    interpreter exits, and such a pool refuses new work from then on.
    """

    def __init__(self, mac: Any) -> None:
        self.mac = mac
        self.todo: queue.SimpleQueue = queue.SimpleQueue()
        self.done: queue.SimpleQueue = queue.SimpleQueue()
        self.pending = False
        self.thread: threading.Thread | None = threading.Thread(target=self._run, name="schedule-seal", daemon=True)
        try:
            self.thread.start()
        except RuntimeError:  # an interpreter that starts no threads while it exits: seal here
            self.thread = None

    def _run(self) -> None:
        while (piece := self.todo.get()) is not None:
            try:
                self.mac.update(piece)
            except BaseException as err:  # handed to the writer
                self.done.put(err)
            else:
                self.done.put(None)

    def _wait(self) -> None:
        if self.pending:
            self.pending = False
            error = self.done.get()
            if error is not None:
                raise error

    def seal(self, piece: bytes | memoryview) -> None:
        if self.thread is None:
            self.mac.update(piece)
            return
        self._wait()
        self.todo.put(piece)
        self.pending = True

    def __enter__(self) -> _Sealer:
        return self

    def __exit__(self, *exc: object) -> None:
        try:
            if exc[0] is None:
                self._wait()
        finally:
            if self.thread is not None:
                self.todo.put(None)
                self.thread.join()


def unpack(blob: bytes, ident: bytes, key: bytes | None) -> tuple[bytes, memoryview, memoryview]:
    """The JSON document, the texts and the .npz, once the seal matches; nothing is parsed before."""
    view = memoryview(blob)
    if len(blob) < _HEAD or view[: len(_MAGIC)] != _MAGIC:
        raise CacheRefused("not a prepared copy of this format")
    start = len(_MAGIC)
    if not hmac.compare_digest(view[start : start + _SEAL], _seal(ident, view[start + _SEAL :], key)):
        raise CacheRefused("its seal does not match" + (" (another key, or altered)" if key else " (altered or damaged)"))
    document = int.from_bytes(view[_HEAD - 16 : _HEAD - 8], "little")
    texts = int.from_bytes(view[_HEAD - 8 : _HEAD], "little") + document
    if texts > len(blob) - _HEAD:
        raise CacheRefused("its parts run past the end")
    return bytes(view[_HEAD : _HEAD + document]), view[_HEAD + document : _HEAD + texts], view[_HEAD + texts :]


def _read(target: Path, ident: bytes, key: bytes | None, source: str, limit: int) -> tuple[Schedule, SearchIndex] | None:
    try:
        return _build(*_contents(_read_regular(target, limit), ident, key), source)
    except FileNotFoundError:
        return None
    except Exception as err:  # damaged, forged or foreign: never trusted, always rebuilt
        log.warning("schedule: ignoring the prepared copy %s (%s); building it again", target, err)
        return None


def _read_regular(target: Path, limit: int) -> bytes:
    """The file's bytes: no following links, no blocking on a planted FIFO, no giant reads."""
    fd = os.open(target, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_NOFOLLOW", 0))
    with os.fdopen(fd, "rb") as handle:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise CacheRefused("not a regular file")
        if info.st_size > limit:
            raise CacheRefused(f"{info.st_size} bytes is more than a copy of this file can need")
        return handle.read(limit + 1)


def _load_arrays(data: memoryview) -> dict[str, np.ndarray]:
    """Plain numeric arrays only: stored (uncompressed) members, no pickles, sizes within the file."""
    stream = io.BytesIO(data)
    with zipfile.ZipFile(stream) as archive:
        if any(i.compress_type != zipfile.ZIP_STORED or i.file_size > len(data) for i in archive.infolist()):
            raise CacheRefused("its arrays are not stored plainly")
    stream.seek(0)
    with np.load(stream, allow_pickle=False) as npz:
        arrays = {name: npz[name] for name in npz.files}
    for name, array in arrays.items():
        if array.dtype.kind not in "biuf":
            raise CacheRefused(f"array {name} holds {array.dtype}")
    return arrays


def _write_all(handle: BinaryIO, blob: bytes) -> None:
    handle.write(blob)


def _write(target: Path, blob: Any, write: Callable[[BinaryIO, Any], object] = _write_all) -> None:
    """Write atomically (a killed process or a full disk leaves no half file), then drop older copies.

    `write` is a seam for tests (a full disk); a failure costs a warning and the next start's parse, never the start.
    """
    temp: str | None = None
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, temp = tempfile.mkstemp(dir=target.parent, prefix=".tmp-")
        with os.fdopen(fd, "wb") as handle:
            write(handle, blob)
        os.replace(temp, target)
        temp = None
        _drop_older(target)
    except OSError as err:
        log.warning("schedule: could not keep a prepared copy in %s (%s); the next start parses again", target.parent, err)
    finally:
        if temp is not None:
            with contextlib.suppress(OSError):
                os.unlink(temp)


STALE_TEMP_S = 600.0
"""A temporary file this old was left by a process stopped while writing a copy (another one writes for far less)."""


def _drop_older(target: Path) -> None:
    """Other copies of the same file, every pickle the cache once held, and stale temporary files: none is ever read again."""
    stem = target.name[: -len(SUFFIX)].rsplit("-", 1)[0]
    ours = re.compile(re.escape(stem) + r"-[0-9a-f]+" + re.escape(SUFFIX))
    stale = time.time() - STALE_TEMP_S
    for old in target.parent.iterdir():
        if old != target and (old.suffix == ".pickle" or ours.fullmatch(old.name)):
            old.unlink(missing_ok=True)
        elif old.name.startswith(".tmp-"):
            with contextlib.suppress(OSError):
                if old.lstat().st_mtime < stale:
                    old.unlink()


# --------------------------------------------------------------------------- the schedule
# Column by column: a column of 10,000 titles is checked in one C-speed pass, and the abstracts
# (most of the bytes) skip the JSON scanner as one UTF-8 text, cut where the .npz says.


# The fields stored below; a field added to one of these classes must be added here too, and until
# then the copy is refused (CacheUnsupported) rather than silently losing it.
_FIELDS = {
    Schedule: ("sessions", "conference", "source"),
    Session: ("id", "name", "timezone", "date", "items", "chairs", "room"),
    Talk: ("id", "session_id", "kind", "start", "end", "title", "authors", "abstract", "follows", "url", "track"),
}


class _Stamps(dict):
    """isoformat() of each time object once: the items of a schedule share a few thousand times.

    Keyed by the object, not its value: equal instants at different offsets are written differently.
    """

    def __getitem__(self, moment: dt.datetime) -> str:
        known = self.get(id(moment))
        if known is None or known[0] is not moment:
            known = self[id(moment)] = (moment, moment.isoformat())
        return known[1]


def _utf8_length(text: str) -> int:
    return len(text) if text.isascii() else len(text.encode("utf-8", "surrogatepass"))


def _schedule_doc(schedule: Schedule, arrays: dict[str, np.ndarray]) -> tuple[dict[str, Any], list[str]]:
    for cls, names in _FIELDS.items():
        if tuple(f.name for f in dataclasses.fields(cls) if f.init) != names:
            raise CacheUnsupported(f"{cls.__name__} has fields this cache does not know")
    sessions, talks = schedule.sessions, [t for s in schedule.sessions for t in s.items]
    if any(s.timezone.key is None for s in sessions) or any(t.session_id != s.id for s in sessions for t in s.items):
        raise CacheUnsupported("a session with an unnamed time zone or a foreign item")
    if any(type(t.start.tzinfo) is not dt.timezone or type(t.end.tzinfo) is not dt.timezone for t in talks):
        raise CacheUnsupported("times that would not read back the same")
    stamps = _Stamps()
    abstracts = [t.abstract for t in talks]
    arrays["abstract_ends"] = np.fromiter(itertools.accumulate(map(_utf8_length, abstracts)), np.int64, len(abstracts))
    return {
        "conference": schedule.conference,
        "sessions": {
            "id": [s.id for s in sessions],
            "name": [s.name for s in sessions],
            "timezone": [s.timezone.key for s in sessions],
            "date": [s.date.isoformat() for s in sessions],
            "chairs": [list(s.chairs) for s in sessions],
            "room": [s.room for s in sessions],
            "items": [len(s.items) for s in sessions],
        },
        "talks": {
            "id": [t.id for t in talks],
            "kind": [t.kind.value for t in talks],
            "start": list(map(stamps.__getitem__, [t.start for t in talks])),
            "end": list(map(stamps.__getitem__, [t.end for t in talks])),
            "title": [t.title for t in talks],
            "authors": [list(t.authors) for t in talks],
            "follows": [list(t.follows) for t in talks],
            "url": [t.url for t in talks],
            "track": [t.track for t in talks],
        },
    }, abstracts


_KINDS = {k.value: k for k in Kind}


def _schedule_from(doc: Any, abstracts: list[str], arrays: dict[str, np.ndarray], source: str) -> Schedule:
    if type(doc) is not dict or type(doc.get("conference")) is not str:
        raise CacheRefused("its schedule is malformed")
    raw_sessions, raw_talks = _mapping(doc.get("sessions")), _mapping(doc.get("talks"))
    count = len(_list(raw_sessions.get("id")))
    counts = _column(raw_sessions, "items", count, int)
    if any(n < 1 for n in counts):
        raise CacheRefused("a session without items")
    size = sum(counts)
    if len(abstracts) != size:
        raise CacheRefused("the abstracts do not match the talks")
    moments = _moments(_column(raw_talks, "start", size, str) + _column(raw_talks, "end", size, str))
    session_ids = _column(raw_sessions, "id", count, str)
    items = map(
        Talk,
        _column(raw_talks, "id", size, str),
        itertools.chain.from_iterable(map(itertools.repeat, session_ids, counts)),
        map(_KINDS.__getitem__, _column(raw_talks, "kind", size, str)),
        map(moments.__getitem__, raw_talks["start"]),
        map(moments.__getitem__, raw_talks["end"]),
        _column(raw_talks, "title", size, str),
        _name_lists(raw_talks, "authors", size),
        abstracts,
        _name_lists(raw_talks, "follows", size),
        _column(raw_talks, "url", size, str),
        _column(raw_talks, "track", size, str),
    )
    talks = list(items)
    zones = {key: ZoneInfo(key) for key in set(_column(raw_sessions, "timezone", count, str))}
    sessions = map(
        Session,
        session_ids,
        _column(raw_sessions, "name", count, str),
        map(zones.__getitem__, raw_sessions["timezone"]),
        map(dt.date.fromisoformat, _column(raw_sessions, "date", count, str)),
        (tuple(talks[end - n : end]) for n, end in zip(counts, itertools.accumulate(counts), strict=True)),
        _name_lists(raw_sessions, "chairs", count),
        _column(raw_sessions, "room", count, str),
    )
    return Schedule(tuple(sessions), doc["conference"], source)


def _moments(texts: list[str]) -> dict[str, dt.datetime]:
    """Each distinct time parsed once; equal offsets share one tzinfo, which keeps comparisons (sorting) fast."""
    zones: dict[dt.tzinfo, dt.tzinfo] = {}
    moments = {}
    for text in set(texts):
        moment = dt.datetime.fromisoformat(text)
        if moment.tzinfo is None:
            raise CacheRefused(f"time {text!r} has no offset")
        moments[text] = moment.replace(tzinfo=zones.setdefault(moment.tzinfo, moment.tzinfo))
    return moments


def _cut(texts: memoryview, ends: np.ndarray | None) -> list[str]:
    """The strings stored back to back as UTF-8, by where each ends (in bytes)."""
    if ends is None or ends.ndim != 1 or (len(ends) and (ends[0] < 0 or ends[-1] != len(texts) or np.any(ends[1:] < ends[:-1]))):
        raise CacheRefused("the abstracts do not add up")
    return [str(texts[a:b], "utf-8", "surrogatepass") for a, b in itertools.pairwise([0, *ends.tolist()])]


def _mapping(raw: Any) -> dict[str, Any]:
    if type(raw) is not dict:
        raise CacheRefused(f"expected a mapping, found {type(raw).__name__}")
    return raw


def _list(raw: Any) -> list[Any]:
    if type(raw) is not list:
        raise CacheRefused(f"expected a list, found {type(raw).__name__}")
    return raw


def _column(table: dict[str, Any], name: str, size: int, kind: type) -> list[Any]:
    column = table.get(name)
    if type(column) is not list or len(column) != size or not set(map(type, column)) <= {kind}:
        raise CacheRefused(f"column {name!r} is malformed")
    return column


def _name_lists(table: dict[str, Any], name: str, size: int) -> list[tuple[str, ...]]:
    column = _column(table, name, size, list)
    if not set(map(type, itertools.chain.from_iterable(column))) <= {str}:
        raise CacheRefused(f"column {name!r} holds more than names")
    return list(map(tuple, column))


# --------------------------------------------------------------------------- the index


def encode(schedule: Schedule, index: SearchIndex) -> tuple[bytes, bytes, bytes]:
    """The JSON document, texts and .npz of a schedule and its index; CacheUnsupported for a value they cannot hold."""
    parts = _Parts(schedule, index)
    return parts.document, "".join(parts.abstracts).encode("utf-8", "surrogatepass"), parts.arrays.getvalue()


def _encode(schedule: Schedule, index: SearchIndex) -> tuple[bytes, list[str], dict[str, np.ndarray]]:
    """The JSON document, the abstracts and the arrays; CacheUnsupported for a value they cannot hold."""
    encoder = _Encoder(schedule)
    plan, abstracts = _schedule_doc(schedule, encoder.arrays)
    walked = encoder.value(index)
    return _json({"schedule": plan, "index": walked}, _odd_numbers(walked)), abstracts, encoder.arrays


def _json(document: Any, odd_numbers: bool = True) -> bytes:
    """The document as compact UTF-8 JSON: by orjson, unless it holds what only the json module writes
    as json.loads reads it back (NaN or infinity, a lone surrogate, an integer past 64 bits).

    `odd_numbers`: whether the document may hold a float that is not finite (orjson writes it as null).
    """
    try:
        if not odd_numbers:
            return orjson.dumps(document)
    except orjson.JSONEncodeError:
        pass
    try:  # a space first tells _loads that orjson would not read it back the same
        return b" " + json.dumps(document, ensure_ascii=False, separators=(",", ":"), allow_nan=True).encode("utf-8", "surrogatepass")
    except (TypeError, ValueError) as err:
        raise CacheUnsupported(str(err)) from None


def _odd_numbers(value: Any) -> bool:
    """Any float that is not finite in a document of dicts and lists (a schedule's columns hold none)."""
    stack = [value]
    while stack:
        item = stack.pop()
        kind = type(item)
        if kind is float:
            if not math.isfinite(item):
                return True
        elif kind is dict:
            stack.extend(item.values())
        elif kind is list:
            kinds = set(map(type, item))
            if float in kinds and not all(map(math.isfinite, (x for x in item if type(x) is float))):
                return True
            if dict in kinds or list in kinds:
                stack.extend(x for x in item if type(x) is dict or type(x) is list)
    return False


def decode(document: Any, abstracts: list[str], arrays: dict[str, np.ndarray], source: str) -> tuple[Schedule, SearchIndex]:
    if type(document) is not dict:
        raise CacheRefused("its document is not a mapping")
    schedule = _schedule_from(document.get("schedule"), abstracts, arrays, source)
    index = _Decoder(schedule, arrays).value(document.get("index"))
    if type(index) is not SearchIndex or index.schedule is not schedule:
        raise CacheRefused("it holds no search index of its schedule")
    return schedule, index


_PLAIN = frozenset({str, int, float, bool, type(None)})
_PARTS = frozenset({Talk, Session})


def _search_class(name: Any) -> type:
    """Only classes defined in bot.core.search are ever rebuilt from a copy, by name."""
    cls = vars(search).get(name) if type(name) is str else None
    if not isinstance(cls, type) or cls.__module__ != search.__name__ or issubclass(cls, BaseException):
        raise CacheRefused(f"unknown class {name!r}")
    if not dataclasses.is_dataclass(cls) and (cls.__new__ is not object.__new__ or "__slots__" in vars(cls)):
        raise CacheRefused(f"class {name} is not plain data")
    return cls


def _check_storable(kind: type) -> None:
    try:
        if _search_class(kind.__name__) is not kind:
            raise CacheRefused(kind.__name__)
    except CacheRefused:
        raise CacheUnsupported(f"a {kind.__module__}.{kind.__qualname__}") from None


class _Encoder:
    """Walks an index generically: JSON for plain values, containers and search-module objects; .npz for arrays.

    Talks and sessions are stored as their place in the schedule; an object seen twice is stored once
    and referred to.
    """

    def __init__(self, schedule: Schedule) -> None:
        self.schedule = schedule
        self.places = {id(x): n for pool in (schedule.talks, schedule.sessions) for n, x in enumerate(pool)}
        self.arrays: dict[str, np.ndarray] = {}
        self.refs: dict[int, int] = {}  # id of an object already stored -> its reference
        self.array_names: dict[int, str] = {}
        self.busy: set[int] = set()

    def value(self, v: Any) -> Any:
        kind = type(v)
        if kind in _PLAIN:
            return v
        if kind is list or kind is tuple:
            return self.sequence(v)
        if kind is dict:
            return {"$": "dict", "k": self.sequence(list(v)), "v": self.sequence(list(v.values()))}
        if kind is set or kind is frozenset:
            return {"$": kind.__name__, "v": self.sequence(list(v))}
        if kind in _PARTS:
            return {"$": "at", "c": kind.__name__, "n": self.place(v)}
        if v is self.schedule:
            return {"$": "schedule"}
        if kind is np.ndarray:
            return self.array(v)
        if isinstance(v, np.generic) and v.dtype.kind in "biuf":
            return {"$": "scalar", "dtype": v.dtype.str, "v": v.item()}
        return self.obj(v)

    def place(self, part: Any) -> int:
        number = self.places.get(id(part))
        if number is None:
            raise CacheUnsupported(f"a {type(part).__name__} that is not in the schedule")
        return number

    def sequence(self, v: list | tuple) -> Any:
        if v is self.schedule.talks or v is self.schedule.sessions:
            return {"$": "schedule." + ("talks" if v is self.schedule.talks else "sessions")}
        kinds = set(map(type, v))
        shape = type(v).__name__
        if kinds <= _PLAIN:
            return v if shape == "list" else {"$": "tuple", "v": list(v)}
        if len(kinds) == 1 and kinds <= _PARTS:
            return {"$": "ats", "c": kinds.pop().__name__, "s": shape, "n": list(map(self.place, v))}
        if len(kinds) == 1 and kinds <= {list, tuple}:
            inner = set().union(*(map(type, x) for x in v))
            if len(inner) <= 1 and inner <= _PARTS:  # rows of talks (or sessions), as the authors' talks
                flat = [self.place(part) for x in v for part in x]
                row, part = kinds.pop().__name__, (inner or {Talk}).pop().__name__
                return {"$": "atrows", "c": part, "s": shape, "row": row, "n": flat, "len": list(map(len, v))}
        if all(id(x) in self.refs for x in v):
            return {"$": "refs", "s": shape, "n": [self.refs[id(x)] for x in v]}
        if len(kinds) == 1 and dataclasses.is_dataclass(next(iter(kinds))) and not any(id(x) in self.refs for x in v):
            return self.columns(v, kinds.pop())
        return {"$": shape, "v": [self.value(x) for x in v]}

    def array(self, v: np.ndarray) -> dict[str, Any]:
        if v.dtype.kind not in "biuf":
            raise CacheUnsupported(f"an array of {v.dtype}")
        name = self.array_names.get(id(v))
        if name is None:
            name = self.array_names[id(v)] = f"a{len(self.arrays)}"
            self.arrays[name] = v
        return {"$": "array", "n": name, "dtype": v.dtype.str, "shape": list(v.shape)}

    def obj(self, v: Any) -> dict[str, Any]:
        cls = type(v)
        _check_storable(cls)
        if id(v) in self.refs:
            return {"$": "ref", "n": self.refs[id(v)]}
        if id(v) in self.busy:
            raise CacheUnsupported(f"a {cls.__name__} that contains itself")
        self.busy.add(id(v))
        if dataclasses.is_dataclass(v):
            out = {"$": "obj", "c": cls.__name__, "f": {f.name: self.value(getattr(v, f.name)) for f in dataclasses.fields(v)}}
        else:
            state = v.__getstate__()
            if type(state) is not dict or not set(map(type, state)) <= {str}:
                raise CacheUnsupported(f"a {cls.__name__} with unusual state")
            out = {"$": "obj", "c": cls.__name__, "d": {name: self.value(x) for name, x in state.items()}}
        self.busy.discard(id(v))
        self.refs[id(v)] = len(self.refs)
        return out

    def columns(self, v: list | tuple, cls: type) -> dict[str, Any]:
        """Many objects of one dataclass (the authors) as one list per field: far less JSON to walk."""
        _check_storable(cls)
        cols = {f.name: self.sequence([getattr(x, f.name) for x in v]) for f in dataclasses.fields(cls)}
        for x in v:
            self.refs[id(x)] = len(self.refs)
        return {"$": "objs", "c": cls.__name__, "s": type(v).__name__, "len": len(v), "cols": cols}


def _make(cls: type, values: dict[str, Any]) -> Any:
    """A dataclass from its fields' values; one with fields __init__ does not take is filled in directly, as pickle would."""
    fields = dataclasses.fields(cls)
    if all(f.init for f in fields):
        return cls(**values)
    made = object.__new__(cls)
    for name, value in values.items():
        object.__setattr__(made, name, value)
    return made


class _Decoder:
    """The reverse of _Encoder, refusing (CacheRefused) anything it would not have written."""

    def __init__(self, schedule: Schedule, arrays: dict[str, np.ndarray]) -> None:
        self.schedule = schedule
        self.talks = schedule.talks
        self.pools: dict[Any, tuple[Any, ...]] = {"Talk": schedule.talks, "Session": schedule.sessions}
        self.arrays = arrays
        self.objects: list[Any] = []
        self.tags: dict[str, Callable[[dict[str, Any]], Any]] = {
            "tuple": lambda raw: tuple(self.items(raw["v"])),
            "list": lambda raw: self.items(raw["v"]),
            "set": lambda raw: set(self.value(raw["v"])),
            "frozenset": lambda raw: frozenset(self.value(raw["v"])),
            "dict": lambda raw: dict(zip(self.value(raw["k"]), self.value(raw["v"]), strict=True)),
            "schedule": lambda raw: self.schedule,
            "schedule.talks": lambda raw: self.talks,
            "schedule.sessions": lambda raw: self.schedule.sessions,
            "at": lambda raw: self.parts(raw, [raw["n"]])[0],
            "ats": lambda raw: self.shaped(raw, self.parts(raw, raw["n"])),
            "atrows": self.part_rows,
            "refs": lambda raw: self.shaped(raw, [self.objects[n] for n in self.numbers(raw["n"], len(self.objects))]),
            "ref": lambda raw: self.objects[self.numbers([raw["n"]], len(self.objects))[0]],
            "array": self.array,
            "scalar": self.scalar,
            "obj": self.obj,
            "objs": self.columns,
        }

    def value(self, raw: Any) -> Any:
        kind = type(raw)
        if kind in _PLAIN:
            return raw
        if kind is list:
            if not set(map(type, raw)) <= _PLAIN:
                raise CacheRefused("a plain list holds more than plain values")
            return raw
        if kind is not dict or type(raw.get("$")) is not str or raw["$"] not in self.tags:
            raise CacheRefused(f"unexpected {kind.__name__} in the index")
        return self.tags[raw["$"]](raw)

    def items(self, raw: Any) -> list[Any]:
        return [self.value(x) for x in _list(raw)]

    @staticmethod
    def numbers(raw: Any, below: int) -> list[int]:
        if type(raw) is not list or not set(map(type, raw)) <= {int} or (raw and (min(raw) < 0 or max(raw) >= below)):
            raise CacheRefused("a reference is out of range")
        return raw

    @staticmethod
    def shaped(raw: dict[str, Any], items: list[Any]) -> list[Any] | tuple[Any, ...]:
        shape = raw.get("s")
        if shape not in ("list", "tuple"):
            raise CacheRefused(f"unknown sequence {shape!r}")
        return items if shape == "list" else tuple(items)

    def parts(self, raw: dict[str, Any], numbers: Any) -> list[Any]:
        """Talks or sessions of the schedule, by their place in it."""
        pool = self.pools.get(raw["c"])
        if pool is None:
            raise CacheRefused(f"unknown part of a schedule {raw['c']!r}")
        return [pool[n] for n in self.numbers(numbers, len(pool))]

    def part_rows(self, raw: dict[str, Any]) -> Any:
        parts = self.parts(raw, raw["n"])
        lengths = self.numbers(raw["len"], len(parts) + 1)
        if sum(lengths) != len(parts) or raw.get("row") not in ("list", "tuple"):
            raise CacheRefused("rows of talks do not add up")
        row = list if raw["row"] == "list" else tuple
        ends = list(itertools.accumulate(lengths))
        return self.shaped(raw, [row(parts[end - size : end]) for size, end in zip(lengths, ends, strict=True)])

    def array(self, raw: dict[str, Any]) -> np.ndarray:
        array = self.arrays.get(raw["n"]) if type(raw["n"]) is str else None
        if array is None or array.dtype.str != raw["dtype"] or list(array.shape) != raw["shape"]:
            raise CacheRefused(f"array {raw['n']!r} is missing or not as described")
        return array

    @staticmethod
    def scalar(raw: dict[str, Any]) -> np.generic:
        dtype = np.dtype(raw["dtype"]) if type(raw["dtype"]) is str else None
        if dtype is None or dtype.kind not in "biuf" or type(raw["v"]) not in _PLAIN:
            raise CacheRefused("a malformed number")
        return dtype.type(raw["v"])

    def obj(self, raw: dict[str, Any]) -> Any:
        cls = _search_class(raw["c"])
        if dataclasses.is_dataclass(cls):
            names = [f.name for f in dataclasses.fields(cls)]
            stored = raw["f"]
            if type(stored) is not dict or list(stored) != names:
                raise CacheRefused(f"the fields of a {cls.__name__} differ")
            made = _make(cls, {name: self.value(stored[name]) for name in names})
        else:
            state = raw["d"]
            if type(state) is not dict or any(not name.isidentifier() or name.startswith("__") for name in state):
                raise CacheRefused(f"the state of a {cls.__name__} is malformed")
            made = object.__new__(cls)
            made.__dict__.update({name: self.value(x) for name, x in state.items()})
        self.objects.append(made)
        return made

    def columns(self, raw: dict[str, Any]) -> Any:
        cls = _search_class(raw["c"])
        names = [f.name for f in dataclasses.fields(cls)] if dataclasses.is_dataclass(cls) else None
        stored, count = raw["cols"], raw["len"]
        if names is None or type(stored) is not dict or list(stored) != names or type(count) is not int:
            raise CacheRefused(f"the columns of {cls.__name__} objects differ")
        cols = [self.value(stored[name]) for name in names]
        if any(type(col) not in (list, tuple) or len(col) != count for col in cols):
            raise CacheRefused(f"the columns of {cls.__name__} objects differ in length")
        if all(f.init for f in dataclasses.fields(cls)):
            made = list(map(cls, *cols))
        else:
            made = [_make(cls, dict(zip(names, values, strict=True))) for values in zip(*cols, strict=True)]
        self.objects.extend(made)
        return self.shaped(raw, made)
