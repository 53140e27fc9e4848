"""The prepared copy makes restarts fast, never hides a change or an error in the schedule, and never runs code."""

from __future__ import annotations

import errno
import hashlib
import io
import json
import logging
import os
import pickle
import re
from pathlib import Path

import numpy as np
import pytest

from bot.core import answers
from bot.core.cache import (
    CacheRefused,
    CacheUnsupported,
    _write,
    cache_path,
    dumps,
    encode,
    load_ready,
    loads,
    new_cache_key,
    pack,
    source_id,
    unpack,
)
from bot.core.errors import UserError
from bot.core.schedule import ScheduleError
from bot.core.search import SearchIndex
from tests.conftest import TRACK28, pst
from tests.test_schedule import VALID

KEYS = [None, b"k" * 32]


class Planted:
    """Unpickling this makes a folder: proof that code in the cache folder ran."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.mkdir, (str(self.marker),))


def copies(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if not p.name.startswith(".tmp-")) if folder.exists() else []


def cache_warnings(caplog) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == "bot.core.cache" and r.levelno == logging.WARNING]


def used_the_copy(caplog) -> bool:
    return any("using the prepared copy" in r.getMessage() for r in caplog.records if r.name == "bot.core.cache")


@pytest.fixture
def source(tmp_path) -> Path:
    path = tmp_path / "s.yaml"
    path.write_text(VALID, encoding="utf-8")
    return path


@pytest.fixture
def folder(tmp_path) -> Path:
    return tmp_path / "cache"


@pytest.fixture(autouse=True)
def _debug_logs(caplog):
    caplog.set_level(logging.DEBUG, logger="bot.core.cache")


# ------------------------------------------------------------------ restarts


@pytest.mark.parametrize("key", KEYS)
def test_a_restart_uses_the_prepared_copy_and_answers_the_same(source, folder, caplog, key):
    schedule, _ = load_ready(source, folder, key)
    (copy,) = copies(folder)
    again, again_index = load_ready(source, folder, key)
    assert used_the_copy(caplog)
    assert again is not schedule
    assert again == schedule
    assert again_index.find_talks("engines")[0].talk.id == "first"
    assert copies(folder) == [copy]
    assert not cache_warnings(caplog)


def test_an_edited_file_is_read_again_and_the_old_copy_dropped(source, folder):
    load_ready(source, folder)
    source.write_text(VALID.replace("Second talk", "Renamed talk"), encoding="utf-8")
    schedule, _ = load_ready(source, folder)
    assert schedule.talk("second").title == "Renamed talk"
    assert len(copies(folder)) == 1


def test_copies_of_other_files_and_foreign_files_are_left_alone(source, folder, tmp_path):
    other = tmp_path / "s-two.yaml"  # its stem starts like ours
    other.write_text(VALID, encoding="utf-8")
    load_ready(other, folder)
    (folder / "notes.txt").write_text("mine", encoding="utf-8")
    load_ready(source, folder)
    source.write_text(VALID.replace("Second talk", "Renamed talk"), encoding="utf-8")
    load_ready(source, folder)
    names = [p.name for p in copies(folder)]
    assert len(names) == 3
    assert "notes.txt" in names
    assert any(n.startswith("s-two-") for n in names)


def test_a_broken_file_is_refused_even_after_a_good_one_was_prepared(source, folder):
    load_ready(source, folder)
    source.write_text(VALID.replace("kind: oral", "kind: keynoot"), encoding="utf-8")
    with pytest.raises(ScheduleError, match="keynoot"):
        load_ready(source, folder)


def test_the_real_schedule_answers_the_same_from_its_copy(tmp_path, schedule, index, caplog):
    load_ready(TRACK28, tmp_path)
    cached, cached_index = load_ready(TRACK28, tmp_path)
    assert used_the_copy(caplog)
    (copy,) = copies(tmp_path)
    unpack(copy.read_bytes(), source_id(TRACK28.read_bytes()), None)  # the safe format, not a pickle
    assert cached == schedule
    assert [(a.key, a.name, a.talks) for a in cached_index.authors] == [(a.key, a.name, a.talks) for a in index.authors]

    def outcome(ask, query: str):
        try:
            found = ask(query)
        except UserError as err:
            return type(err).__name__, str(err)
        return getattr(found, "id", None) or getattr(found, "key", None) or found

    titles = [t.title for t in schedule.talks]
    queries = [*titles, *(t[: len(t) // 2] for t in titles), "", "hamiltonain", "regularisation", "neural", "xyzzy"]
    queries += [name for t in schedule.talks for name in t.authors] + ["dokmanic", "ivan", "a"]
    for query in queries:
        assert outcome(lambda q: answers.find_talk(cached_index, q), query) == outcome(lambda q: answers.find_talk(index, q), query), query
        assert outcome(lambda q: answers.find_author(cached_index, q), query) == outcome(lambda q: answers.find_author(index, q), query), query
        for now in (pst(5), pst(7, 12), pst(11)):
            assert answers.suggest_talks(cached_index, query, now) == answers.suggest_talks(index, query, now), query
            assert answers.suggest_authors(cached_index, query, now) == answers.suggest_authors(index, query, now), query


def test_new_fields_of_the_index_round_trip_or_are_refused(schedule):
    """Whatever another change adds to the index either reads back equal or stops the copy from being made."""
    index = SearchIndex(schedule)
    index.extra = {
        "numbers": (1, 2.5, True, None, "x"),
        3: {frozenset({"a", "b"}), "c"},
        "array": np.arange(4, dtype=np.int16),
        "scalar": np.float32(1.5),
        "first author twice": [index.authors[0], index.authors[0]],
        "talks by session": [s.items for s in schedule.sessions],
    }
    ident = source_id(b"test")
    _, again = loads(dumps(schedule, index, ident, None), ident, None, schedule.source)
    assert again.extra.keys() == index.extra.keys()
    for name in ("numbers", 3, "scalar", "talks by session"):
        assert again.extra[name] == index.extra[name]
    assert np.array_equal(again.extra["array"], index.extra["array"])
    assert again.extra["array"].dtype == np.int16
    first, second = again.extra["first author twice"]
    assert first is second is again.authors[0]
    index.extra = re.compile("no")
    with pytest.raises(CacheUnsupported, match="Pattern"):
        encode(schedule, index)


# ------------------------------------------------------------------ nothing in the folder is trusted


def test_a_planted_pickle_never_runs_and_the_schedule_is_rebuilt(source, folder, tmp_path, caplog):
    marker = tmp_path / "pwned"
    data = source.read_bytes()
    target = cache_path(source, data, folder)
    folder.mkdir()
    payload = pickle.dumps((Planted(marker), Planted(marker)))
    for name in (target, target.with_suffix(".pickle"), folder / "s-0123abcd.pickle"):
        name.write_bytes(payload)
    schedule, index = load_ready(source, folder)
    assert not marker.exists()
    assert [t.id for t in schedule.talks] == ["first", "second"]
    assert index.find_talks("engines")[0].talk.id == "first"
    assert len(cache_warnings(caplog)) == 1
    assert [p.suffix for p in copies(folder)] == [".ready"]  # the pickles are gone


def _forged_arrays(marker: Path) -> bytes:
    out = io.BytesIO()
    np.savez(out, abstract_ends=np.array([Planted(marker)], dtype=object), a0=np.array([Planted(marker)], dtype=object))
    return out.getvalue()


@pytest.mark.parametrize("key", KEYS)
def test_a_forged_copy_in_the_new_format_never_runs_code(source, folder, tmp_path, caplog, key):
    """With a key the forger cannot seal it; without one the seal matches but nothing in it can run."""
    marker = tmp_path / "pwned"
    data = source.read_bytes()
    schedule, _ = load_ready(source, folder, key)
    (target,) = copies(folder)
    document, texts, _ = unpack(target.read_bytes(), source_id(data), key)
    forger_key = None if key is None else b"f" * 32
    target.write_bytes(pack(source_id(data), bytes(document), bytes(texts), _forged_arrays(marker), forger_key))
    again, _ = load_ready(source, folder, key)
    assert not marker.exists()
    assert again == schedule
    assert len(cache_warnings(caplog)) == 1
    assert loads(target.read_bytes(), source_id(data), key, str(source))[0] == schedule  # rebuilt and resealed


@pytest.mark.parametrize(
    "forged",
    [
        {"$": "obj", "c": "defaultdict", "d": {}},  # imported into bot.core.search, not defined there
        {"$": "obj", "c": "os.system", "d": {}},
        {"$": "obj", "c": "SearchIndex", "d": {"schedule": {"$": "at", "c": "Talk", "n": -1}}},
        {"$": "array", "n": "abstract_ends", "dtype": "<f8", "shape": [2]},
        ["a list", {"$": "schedule"}],
        {"$": "eval", "v": "__import__('os')"},
    ],
)
def test_a_forged_document_is_refused(source, folder, forged):
    data = source.read_bytes()
    load_ready(source, folder)
    (target,) = copies(folder)
    document, texts, arrays = unpack(target.read_bytes(), source_id(data), None)
    doc = json.loads(document)
    doc["index"] = forged
    forged_copy = pack(source_id(data), json.dumps(doc).encode(), bytes(texts), bytes(arrays), None)
    with pytest.raises(CacheRefused):
        loads(forged_copy, source_id(data), None, str(source))


@pytest.mark.parametrize("key", KEYS)
def test_a_tampered_byte_is_noticed_and_the_copy_rebuilt(source, folder, caplog, key):
    schedule, _ = load_ready(source, folder, key)
    (copy,) = copies(folder)
    blob = bytearray(copy.read_bytes())
    at = blob.index(b"Second talk")  # a title: the copy would still load, only wrong
    blob[at] = ord("X")
    copy.write_bytes(bytes(blob))
    again, _ = load_ready(source, folder, key)
    assert again.talk("second").title == "Second talk"
    assert again == schedule
    (warning,) = cache_warnings(caplog)
    assert "seal does not match" in warning
    assert copies(folder)[0].read_bytes() != bytes(blob)  # rebuilt


def test_a_copy_sealed_with_another_key_or_none_is_rebuilt(source, folder, caplog):
    load_ready(source, folder, new_cache_key())
    load_ready(source, folder, new_cache_key())
    load_ready(source, folder)
    assert not used_the_copy(caplog)
    assert len(cache_warnings(caplog)) == 2
    with pytest.raises(ValueError, match="16 bytes"):
        load_ready(source, folder, b"short")


def test_a_copy_of_another_file_cannot_pass_for_this_one(source, folder, tmp_path, caplog):
    """The seal covers the name: an older copy, moved to the name of the current file, is refused."""
    load_ready(source, folder)
    (old,) = copies(folder)
    source.write_text(VALID.replace("Second talk", "Renamed talk"), encoding="utf-8")
    stale = old.read_bytes()
    load_ready(source, folder)
    (new,) = copies(folder)
    new.write_bytes(stale)
    again, _ = load_ready(source, folder)
    assert again.talk("second").title == "Renamed talk"
    assert len(cache_warnings(caplog)) == 1


def test_a_corrupt_copy_is_rebuilt(source, folder, caplog):
    load_ready(source, folder)
    (copy,) = copies(folder)
    copy.write_bytes(b"not a prepared copy")
    schedule, _ = load_ready(source, folder)
    assert len(schedule.talks) == 2
    assert len(cache_warnings(caplog)) == 1


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs FIFOs")
def test_a_fifo_or_link_at_the_copys_name_neither_hangs_nor_is_followed(source, folder, tmp_path, caplog):
    target = cache_path(source, source.read_bytes(), folder)
    folder.mkdir()
    os.mkfifo(target)
    load_ready(source, folder)  # would block forever reading a FIFO
    elsewhere = tmp_path / "elsewhere.ready"
    target.rename(elsewhere)
    target.symlink_to(elsewhere)
    load_ready(source, folder)
    assert len(cache_warnings(caplog)) == 2
    assert not target.is_symlink()


# ------------------------------------------------------------------ a failing write


def test_a_write_that_cannot_finish_leaves_no_temporary_file(source, folder, caplog):
    target = cache_path(source, source.read_bytes(), folder)
    (target / "squatter").mkdir(parents=True)  # a folder where the copy goes: the final rename fails
    schedule, _ = load_ready(source, folder)
    assert len(schedule.talks) == 2
    assert not list(folder.glob(".tmp-*"))
    assert any("could not keep a prepared copy" in w for w in cache_warnings(caplog))


def test_a_full_disk_leaves_no_temporary_file(folder, caplog):
    def full_disk(handle, blob: bytes) -> None:
        handle.write(blob[:10])
        raise OSError(errno.ENOSPC, "No space left on device")

    target = folder / "s-00.ready"
    _write(target, b"x" * 100, write=full_disk)
    assert not folder.exists() or not list(folder.iterdir())
    (warning,) = cache_warnings(caplog)
    assert "No space left" in warning


def test_the_seal_is_checked_before_anything_is_parsed():
    ident = source_id(b"x")
    blob = pack(ident, b"{not json", b"", b"not a zip", None)
    with pytest.raises(CacheRefused, match="not a prepared copy"):
        unpack(b"garbage", ident, None)
    assert unpack(blob, ident, None)[0] == b"{not json"  # a sound seal: parsing comes next, and fails there
    with pytest.raises(CacheRefused, match="seal"):
        unpack(blob, hashlib.blake2b(b"y", digest_size=16).digest(), None)


def test_a_document_that_orjson_cannot_write_as_json_reads_it_is_written_by_json():
    """orjson writes the document; NaN (orjson would write null), a lone surrogate or a huge integer go through json."""
    from bot.core.cache import _json, _loads, _odd_numbers

    for document in ({"a": [1.5, float("nan")]}, {"a": "lone \udc80"}, {"a": [2**70]}, {"a": [{"b": float("inf")}]}):
        text = _json(document, _odd_numbers(document))
        again = _loads(text)
        assert json.dumps(again, allow_nan=True) == json.dumps(document, allow_nan=True)
    assert _json({"a": ["x", 1, 2.5]}, False) == b'{"a":["x",1,2.5]}'


# ------------------------------------------------------------------ the copy written after the bot is ready


@pytest.mark.parametrize("key", KEYS)
def test_a_copy_written_in_the_background_is_used_by_the_next_start(source, folder, caplog, key):
    from bot.core.cache import wait_for_copies

    schedule, index = load_ready(source, folder, key, background=True)
    assert index.find_talks("engines")[0].talk.id == "first"  # ready before its copy is on disk
    assert wait_for_copies(timeout=30)
    (copy,) = copies(folder)
    again, _ = load_ready(source, folder, key)
    assert used_the_copy(caplog) and again == schedule
    assert copies(folder) == [copy] and not cache_warnings(caplog)


def test_a_load_in_the_same_process_waits_for_the_copy_being_written(source, folder, caplog):
    load_ready(source, folder, background=True)
    again, _ = load_ready(source, folder)  # no wait_for_copies(): the copy being written is waited for
    assert used_the_copy(caplog) and len(again.talks) == 2
    assert not cache_warnings(caplog)


_STOPPED_MID_WRITE = """
import sys, time
from pathlib import Path
from bot.core import cache

written = cache._Parts.write

def half_then_hang(self, handle, ident, key):
    handle.write(next(self.pieces()))  # the lengths, then nothing more: the process is stopped here
    handle.flush()
    print("half", flush=True)
    time.sleep(60)

cache._Parts.write = half_then_hang  # stands for a slow disk; the process is killed meanwhile
cache.load_ready(sys.argv[1], Path(sys.argv[2]), background=True)
print("ready", flush=True)
time.sleep(60)
"""


def test_a_process_stopped_while_writing_its_copy_leaves_no_usable_half_copy(source, folder, caplog):
    import signal
    import subprocess
    import sys
    import time

    from bot.core.cache import STALE_TEMP_S, wait_for_copies

    root = Path(__file__).resolve().parent.parent
    child = subprocess.Popen([sys.executable, "-c", _STOPPED_MID_WRITE, str(source), str(folder)], cwd=root, stdout=subprocess.PIPE, text=True)
    try:
        lines = {child.stdout.readline().strip(), child.stdout.readline().strip()}
        assert lines == {"half", "ready"}  # the bot was ready while its copy was half written
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait(timeout=30)
    (half,) = folder.glob(".tmp-*")  # only a temporary file: nothing under a copy's name
    assert not copies(folder)
    schedule, _ = load_ready(source, folder)  # the next start is a first load again
    assert not used_the_copy(caplog) and len(schedule.talks) == 2 and not cache_warnings(caplog)
    assert len(copies(folder)) == 1 and half.exists()  # another process may still be writing it
    old = time.time() - STALE_TEMP_S - 60
    os.utime(half, (old, old))
    source.write_text(VALID.replace("Second talk", "Renamed talk"), encoding="utf-8")
    load_ready(source, folder, background=True)
    assert wait_for_copies(timeout=30)
    assert not half.exists() and len(copies(folder)) == 1  # a temporary file that old is a stopped write: dropped


def test_a_process_that_ends_right_after_its_first_load_still_leaves_its_copy(source, folder, caplog):
    """As `python -m bot check` does: the copy being written in the background is finished before the process ends."""
    import subprocess
    import sys

    script = "import sys; from pathlib import Path; from bot.core.cache import load_ready; load_ready(sys.argv[1], Path(sys.argv[2]), background=True)"
    root = Path(__file__).resolve().parent.parent
    done = subprocess.run([sys.executable, "-c", script, str(source), str(folder)], cwd=root, capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0 and "Traceback" not in done.stderr, done.stderr
    assert len(copies(folder)) == 1 and not list(folder.glob(".tmp-*"))
    load_ready(source, folder)
    assert used_the_copy(caplog) and not cache_warnings(caplog)
