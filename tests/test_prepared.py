"""The bot's own loads seal the prepared copy with the secret kept in the state store."""

from __future__ import annotations

import logging
import shutil

from bot.config import Settings
from bot.core.cache import load_ready
from bot.state.prepared import CACHE_KEY, cache_key, load_prepared
from bot.state.store import Store
from tests.conftest import TRACK28


def test_the_key_is_made_once_and_kept_in_the_state_file(tmp_path):
    store = Store(tmp_path / "bot.sqlite3")
    key = cache_key(store)
    assert len(key) == 32 and cache_key(store) == key
    assert store.get_meta(CACHE_KEY) == key.hex()
    store.close()


def test_a_copy_not_sealed_with_the_state_key_is_never_used(tmp_path, caplog):
    source = tmp_path / "track28.yaml"
    shutil.copy(TRACK28, source)
    settings = Settings(state_path=tmp_path / "state" / "bot.sqlite3")
    # someone who can write the cache folder (but not read the state file) plants a copy sealed without the key
    load_ready(source, tmp_path / "state" / "cache")
    with caplog.at_level(logging.WARNING, logger="bot.core.cache"):
        schedule, _ = load_prepared(settings, source)
    assert any(r.name == "bot.core.cache" for r in caplog.records)  # refused, rebuilt from the file
    assert schedule.talk("shooting-formulation").title == "A shooting formulation of deep learning"
    caplog.clear()
    with caplog.at_level(logging.DEBUG, logger="bot.core.cache"):
        load_prepared(settings, source)  # the bot's own sealed copy is used from now on
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]
