"""A ready-to-serve copy of a validated schedule and its search index, for fast restarts.

Parsing and indexing a conference-sized YAML file takes seconds; a restart of the same file
should not. The copy is keyed by the file's bytes and by the code that built it, lives in the
bot's own state folder, and is rebuilt whenever either changes. Validation errors are never
cached: a bad file is refused on every start.
"""

from __future__ import annotations

import hashlib
import logging
import os
import pickle
import tempfile
from pathlib import Path

from bot.config import Settings
from bot.core.schedule import Problem, Schedule, ScheduleError, gc_paused, load_schedule, parse_schedule
from bot.core.search import SearchIndex

log = logging.getLogger(__name__)

_CODE = ("schedule.py", "search.py", "text.py", "cache.py")


def _code_digest() -> str:
    """Changes to the modules whose objects are stored make old copies unusable."""
    digest = hashlib.blake2b(digest_size=8)
    here = Path(__file__).parent
    for name in _CODE:
        digest.update((here / name).read_bytes())
    return digest.hexdigest()


def cache_dir(settings: Settings) -> Path:
    """Prepared copies live beside the bot's other state (STATE_PATH's folder)."""
    return settings.state_path.parent / "cache"


def cache_path(source: Path, data: bytes, cache_dir: Path) -> Path:
    digest = hashlib.blake2b(data, digest_size=12, key=_code_digest().encode()).hexdigest()
    return cache_dir / f"{source.stem}-{digest}.pickle"


def load_ready(path: str | Path, cache_dir: Path | None) -> tuple[Schedule, SearchIndex]:
    """The schedule and its index, from the cache when it matches the file, else built and cached."""
    source = Path(path)
    if cache_dir is None:
        schedule = load_schedule(source)
        return schedule, SearchIndex(schedule)
    try:
        data = source.read_bytes()
    except OSError:
        schedule = load_schedule(source)  # refuses the file with the usual message
        return schedule, SearchIndex(schedule)
    target = cache_path(source, data, cache_dir)
    cached = _read(target)
    if cached is not None:
        log.debug("schedule: using the prepared copy %s", target)
        return cached
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as err:
        raise ScheduleError(str(source), [Problem(1, "(file)", f"not UTF-8 text ({err.reason})")]) from None
    schedule = parse_schedule(text, str(source))
    index = SearchIndex(schedule)
    _write(target, (schedule, index))
    return schedule, index


def _read(target: Path) -> tuple[Schedule, SearchIndex] | None:
    try:
        with target.open("rb") as handle, gc_paused():
            schedule, index = pickle.load(handle)
    except FileNotFoundError:
        return None
    except Exception as err:  # a truncated or foreign file: rebuild
        log.warning("schedule: ignoring unreadable prepared copy %s (%s)", target, err)
        return None
    if not isinstance(schedule, Schedule) or not isinstance(index, SearchIndex):
        return None
    return schedule, index


def _write(target: Path, ready: tuple[Schedule, SearchIndex]) -> None:
    """Write atomically (a killed process leaves no half file) and drop older copies of the file."""
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=target.parent, prefix=".tmp-", delete=False) as handle:
            pickle.dump(ready, handle, protocol=pickle.HIGHEST_PROTOCOL)
        os.replace(handle.name, target)
        for old in target.parent.glob(f"{target.stem.rsplit('-', 1)[0]}-*.pickle"):
            if old != target:
                old.unlink(missing_ok=True)
    except OSError as err:
        log.warning("schedule: could not keep a prepared copy in %s (%s); the next start parses again", target.parent, err)
