"""The prepared copy makes restarts fast and never hides a change or an error in the schedule."""

from __future__ import annotations

import pytest

from bot.core.cache import load_ready
from bot.core.schedule import ScheduleError
from tests.test_schedule import VALID


def test_a_restart_uses_the_prepared_copy_and_answers_the_same(tmp_path):
    source = tmp_path / "s.yaml"
    source.write_text(VALID, encoding="utf-8")
    schedule, _ = load_ready(source, tmp_path / "cache")
    (copy,) = (tmp_path / "cache").glob("s-*.pickle")
    again, again_index = load_ready(source, tmp_path / "cache")
    assert again is not schedule
    assert [t.id for t in again.talks] == [t.id for t in schedule.talks]
    assert again_index.find_talks("engines")[0].talk.id == "first"
    assert list((tmp_path / "cache").glob("s-*.pickle")) == [copy]


def test_an_edited_file_is_read_again_and_the_old_copy_dropped(tmp_path):
    source = tmp_path / "s.yaml"
    source.write_text(VALID, encoding="utf-8")
    load_ready(source, tmp_path / "cache")
    source.write_text(VALID.replace("Second talk", "Renamed talk"), encoding="utf-8")
    schedule, _ = load_ready(source, tmp_path / "cache")
    assert schedule.talk("second").title == "Renamed talk"
    assert len(list((tmp_path / "cache").glob("s-*.pickle"))) == 1


def test_a_broken_file_is_refused_even_after_a_good_one_was_prepared(tmp_path):
    source = tmp_path / "s.yaml"
    source.write_text(VALID, encoding="utf-8")
    load_ready(source, tmp_path / "cache")
    source.write_text(VALID.replace("kind: oral", "kind: keynote"), encoding="utf-8")
    with pytest.raises(ScheduleError, match="keynote"):
        load_ready(source, tmp_path / "cache")


def test_a_corrupt_copy_is_rebuilt(tmp_path):
    source = tmp_path / "s.yaml"
    source.write_text(VALID, encoding="utf-8")
    load_ready(source, tmp_path / "cache")
    (copy,) = (tmp_path / "cache").glob("s-*.pickle")
    copy.write_bytes(b"not a pickle")
    schedule, _ = load_ready(source, tmp_path / "cache")
    assert len(schedule.talks) == 2
