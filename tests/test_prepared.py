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


FLOATING = b"""BEGIN:VCALENDAR
VERSION:2.0
PRODID:-//test//floating//EN
BEGIN:VEVENT
UID:floating-1@test
DTSTART:20250601T100000
DTEND:20250601T110000
SUMMARY:A talk on local time
LOCATION:Room 1
END:VEVENT
END:VCALENDAR
"""


def test_a_file_with_no_zone_starts_with_schedule_timezone_and_the_zone_names_the_copy(tmp_path):
    from zoneinfo import ZoneInfo

    import pytest

    from bot.core.schedule import ScheduleError

    source = tmp_path / "floating.ics"
    source.write_bytes(FLOATING)
    with pytest.raises(ScheduleError, match="SCHEDULE_TIMEZONE"):
        load_prepared(Settings(state_path=tmp_path / "state" / "bot.sqlite3"), source)
    berlin = load_prepared(Settings(state_path=tmp_path / "state" / "bot.sqlite3", schedule_timezone=ZoneInfo("Europe/Berlin")), source)[0]
    tokyo = load_prepared(Settings(state_path=tmp_path / "state" / "bot.sqlite3", schedule_timezone=ZoneInfo("Asia/Tokyo")), source)[0]
    assert berlin.talks[0].start.astimezone(ZoneInfo("UTC")).hour == 8
    assert tokyo.talks[0].start.astimezone(ZoneInfo("UTC")).hour == 1  # not Berlin's copy served again


def test_a_file_over_the_size_limit_is_refused_at_start(tmp_path):
    import pytest

    from bot.core.schedule import ScheduleError

    source = tmp_path / "big.yaml"
    source.write_bytes(b"#" * (2 * 1024 * 1024))
    with pytest.raises(ScheduleError, match="MB"):
        load_prepared(Settings(state_path=tmp_path / "state" / "bot.sqlite3", schedule_max_bytes=1024 * 1024), source)
