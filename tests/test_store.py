"""The SQLite ledger and per-guild overrides; a state file that cannot be used is refused, never deleted."""

from __future__ import annotations

import datetime as dt
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from bot.state.store import LIVE, NewRow, State, StateError, Store
from tests.standin import subprocess_env

DUE = dt.datetime(2020, 12, 10, 13, 55, tzinfo=dt.UTC)
ROOT = Path(__file__).resolve().parent.parent


def row(rid: str = "t:5:42", *, run: str = LIVE, guild_id: int = 1, due: dt.datetime = DUE) -> NewRow:
    return NewRow(rid, run, guild_id, "t", 5, 42, "rabc", due)


@pytest.fixture
def store(tmp_path):
    s = Store(tmp_path / "state" / "bot.sqlite3")
    yield s
    s.close()


def test_claim_twice_is_refused(store):
    assert store.claim(row())
    assert not store.claim(row())
    got = store.get("t:5:42")
    assert got.state is State.CLAIMED and got.nonce == "rabc" and got.due_at == DUE and got.guild_id == 1 and got.run == LIVE


def test_crash_between_claim_and_confirm_is_taken_up_again_with_same_nonce(tmp_path):
    path = tmp_path / "bot.sqlite3"
    first = Store(path)
    first.claim(row())
    first.close()  # the process dies before Discord confirms
    second = Store(path)
    assert [r.id for r in second.rows(State.CLAIMED)] == ["t:5:42"]
    again = second.retry("t:5:42")
    assert again is not None and again.nonce == "rabc" and again.attempts == 2
    second.mark_sent("t:5:42", 999)
    assert second.get("t:5:42").state is State.SENT
    assert second.retry("t:5:42") is None  # sent is final
    second.close()


def test_failed_keeps_error_and_can_retry_but_refused_is_final(store):
    store.claim(row())
    store.mark_failed("t:5:42", "503 Service Unavailable")
    assert store.get("t:5:42").state is State.FAILED
    assert store.retry("t:5:42").state is State.CLAIMED
    store.mark_failed("t:5:42", "again")
    store.skip_many([(row(), "stale")])
    got = store.get("t:5:42")
    assert got.state is State.SKIPPED and "again" in got.error and "stale" in got.error
    store.claim(row("other"))
    store.mark_failed("other", "403 Missing Permissions", permanent=True)
    assert store.get("other").state is State.REFUSED
    assert store.retry("other") is None


def test_skip_never_overrides_sent(store):
    store.claim(row())
    store.mark_sent("t:5:42", 1)
    store.skip_many([(row(), "stale")])
    assert store.get("t:5:42").state is State.SENT


def test_skips_are_written_in_one_transaction(store):
    rows = [(row(f"t{i}"), "stale") for i in range(5000)]
    changes = store._db.total_changes
    assert store.skip_many(rows) == 5000
    assert store._db.total_changes - changes == 5000
    assert len(store.rows(State.SKIPPED)) == 5000


def test_status_queries_see_one_guild_and_one_run(store):
    store.claim(row("a", guild_id=1))
    store.mark_sent("a", 10)
    store.claim(row("b", guild_id=2))
    store.mark_failed("b", "403 in channel 42", permanent=True)
    store.claim(row("c", guild_id=1, run="rehearsal-x"))
    store.mark_sent("c", 11)
    assert store.last_sent(LIVE, 1).id == "a"
    assert store.last_sent(LIVE, 2) is None
    assert store.failures(LIVE, 1) == []
    assert [r.id for r in store.failures(LIVE, 2)] == ["b"]
    assert store.last_sent("rehearsal-x", 1).id == "c"


def test_forgetting_a_rehearsal_never_touches_the_live_ledger(store):
    store.claim(row("live-row"))
    store.claim(row("rehearsal-row", run="rehearsal-x"))
    assert store.forget_run("rehearsal-x") == 1
    assert store.get("live-row") is not None
    with pytest.raises(ValueError):
        store.forget_run(LIVE)


def test_wal_mode_and_schema_version(store):
    assert store._db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert store._db.execute("PRAGMA user_version").fetchone()[0] == 4


def test_overrides_change_only_given_fields(store):
    assert store.overrides(7).channel_id is None
    store.set_override(7, channel_id=123)
    store.set_override(7, leads=(2, 10))
    store.set_override(7, role_id=55)
    o = store.set_override(7, enabled=False)
    assert (o.channel_id, o.leads, o.enabled, o.role_id) == (123, (10, 2), False, 55)
    assert store.set_override(7, enabled=True).enabled is True
    assert list(store.all_overrides()) == [7]


def test_a_version_1_file_is_migrated_and_its_rows_silence_nothing(tmp_path):
    path = tmp_path / "old.sqlite3"
    db = sqlite3.connect(path)
    db.executescript(
        """
        CREATE TABLE ledger (id TEXT PRIMARY KEY, talk_id TEXT NOT NULL, lead INTEGER NOT NULL, channel_id INTEGER NOT NULL,
            nonce TEXT NOT NULL, due_at TEXT NOT NULL, state TEXT NOT NULL, attempts INTEGER NOT NULL DEFAULT 0,
            message_id TEXT, error TEXT, updated_at TEXT NOT NULL);
        CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
        CREATE TABLE guild_settings (guild_id INTEGER PRIMARY KEY, channel_id INTEGER, leads TEXT, enabled INTEGER);
        INSERT INTO ledger VALUES ('t:5:42', 't', 5, 42, 'rold', '2020-12-10T13:55:00+00:00', 'sent', 1, '9', NULL, '2020-12-10T13:55:00+00:00');
        INSERT INTO guild_settings VALUES (7, 123, '10,2', 1);
        """
    )
    db.close()
    store = Store(path)
    (old,) = store.rows()
    assert old.run == "legacy" and old.state is State.SENT
    assert store.rows(run=LIVE) == []
    assert store.overrides(7).leads == (10, 2) and store.overrides(7).role_id is None
    store.close()


def test_a_corrupted_file_is_refused_with_a_message_and_kept(tmp_path):
    path = tmp_path / "bot.sqlite3"
    path.write_bytes(b"this is not a database, it was a ledger once" * 100)
    before = path.read_bytes()
    with pytest.raises(StateError) as err:
        Store(path)
    assert str(path) in str(err.value) and "move it aside" in str(err.value)
    assert path.read_bytes() == before


def test_a_damaged_page_is_refused(tmp_path):
    path = tmp_path / "bot.sqlite3"
    s = Store(path)
    s.skip_many([(row(f"t{i}"), "stale") for i in range(2000)])
    s.close()
    for extra in ("-wal", "-shm"):
        Path(str(path) + extra).unlink(missing_ok=True)
    data = bytearray(path.read_bytes())
    data[len(data) // 2 : len(data) // 2 + 4096] = b"\xff" * 4096
    path.write_bytes(bytes(data))
    with pytest.raises(StateError, match="not a usable SQLite database"):
        Store(path)


def _read_only_view(folder: Path, code: str) -> subprocess.CompletedProcess | None:
    """Run `code` where `folder` is mounted read-only (a private mount namespace; root ignores file modes)."""
    if shutil.which("unshare") is None:
        return None
    script = f'mount --bind {folder} {folder} && mount -o remount,ro,bind {folder} && exec {sys.executable} -c "$0"'
    done = subprocess.run(["unshare", "-rm", "sh", "-c", script, code], cwd=ROOT, capture_output=True, text=True, timeout=60, check=False)
    return None if "mount" in done.stderr and "Traceback" not in done.stderr else done


def test_a_read_only_folder_is_refused_with_a_message(tmp_path):
    folder = tmp_path / "state"
    Store(folder / "bot.sqlite3").close()
    code = f"from bot.state.store import Store, StateError\ntry:\n    Store({str(folder / 'bot.sqlite3')!r})\nexcept StateError as e:\n    print(e)"
    done = _read_only_view(folder, code)
    if done is None:
        pytest.skip("this machine cannot mount a read-only view of a folder (unshare -rm)")
    assert "cannot be written" in done.stdout and str(folder) in done.stdout, done.stdout + done.stderr
    assert "Traceback" not in done.stderr


def test_the_command_line_refuses_a_corrupted_state_file_without_a_traceback(tmp_path):
    state = tmp_path / "bot.sqlite3"
    state.write_bytes(b"garbage" * 1000)
    env = {**subprocess_env("http://127.0.0.1:9"), "STATE_PATH": str(state)}  # were it to connect, it would reach nothing
    for name in ("DISCORD_GUILD_ID", "BOT_REPLAY_FROM", "BOT_CLOCK_SPEED"):
        env.pop(name, None)
    done = subprocess.run(
        [sys.executable, "-m", "bot", "run"],
        cwd=ROOT,
        env={**env, "DISCORD_TOKEN": "Tk9UQVJFQUxUT0tFTg.fake.token-for-tests"},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 2, done.stderr
    assert "Traceback" not in done.stderr
    assert str(state) in done.stderr and "move it aside" in done.stderr


def test_follows_and_dm_channels(store):
    assert store.follow(1, "talk", "t", "T", 5)
    assert not store.follow(1, "talk", "t", "T", 10)  # following again changes the lead only
    assert store.follow(1, "author", "jane doe", "Jane Doe", 5)
    assert [(f.what, f.key, f.lead) for f in store.follows_of(1)] == [("talk", "t", 10), ("author", "jane doe", 5)]
    assert store.follows_of(2) == []
    assert store.dm_channel(1) is None
    assert store.set_dm_channel(1, channel_id=55).channel_id == 55
    closed = store.set_dm_channel(1, closed=True)
    assert closed.closed and closed.channel_id == 55 and not closed.welcomed
    assert store.unfollow(1, "talk", "t") == 1
    assert store.unfollow(1) == 1 and store.follows_of(1) == []
