"""The prepared schedule copy, sealed with a secret that lives in the state store.

The copies in `cache/` are untrusted input: each is checked against an HMAC keyed by a random
secret kept in the state store (the SQLite file or PostgreSQL) (not beside the copies) before any of it is read.
"""

from __future__ import annotations

from pathlib import Path

from bot.config import Settings
from bot.core.cache import cache_dir, load_ready, new_cache_key
from bot.core.schedule import Schedule
from bot.core.search import SearchIndex
from bot.state import open_store
from bot.state.base import StateStore

CACHE_KEY = "cache_key"


def cache_key(store: StateStore) -> bytes:
    """The state's secret for sealing prepared copies, made on first use."""
    saved = store.get_meta(CACHE_KEY)
    if saved:
        try:
            key = bytes.fromhex(saved)
            if len(key) >= 16:
                return key
        except ValueError:
            pass
    key = new_cache_key()
    store.set_meta(CACHE_KEY, key.hex())
    return key


def load_prepared(settings: Settings, path: str | Path, *, background: bool = True) -> tuple[Schedule, SearchIndex]:
    """The schedule and its index, from a sealed prepared copy when one matches the file.

    After a first load the bot is ready before its copy is written: that is done in a thread
    (bot.core.cache.wait_for_copies waits for it; a process ending normally finishes it first).
    """
    store = open_store(settings)
    try:
        key = cache_key(store)
    finally:
        store.close()
    return load_ready(path, cache_dir(settings), key, timezone=settings.schedule_timezone, max_bytes=settings.schedule_max_bytes, background=background)
