"""The state store on both backends (SQLite and PostgreSQL: `store` and `make_store` are parametrized in conftest).

Tests about SQLite files (corrupted, read-only, WAL, old versions, kill -9) open a Store directly.
"""

from __future__ import annotations

import datetime as dt
import shutil
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from bot.state.store import LIVE, NewRow, State, StateError, Store
from bot.state.store import SCHEMA_VERSION as SQLITE_SCHEMA
from tests.standin import subprocess_env

DUE = dt.datetime(2020, 12, 10, 13, 55, tzinfo=dt.UTC)
LEASE = 0.4  # real seconds: short, so that tests can wait for a lease to expire
ROOT = Path(__file__).resolve().parent.parent


def row(rid: str = "t:5:42", *, run: str = LIVE, guild_id: int = 1, due: dt.datetime = DUE) -> NewRow:
    return NewRow(rid, run, guild_id, "t", 5, 42, "rabc", due)


@pytest.fixture
def store(make_store):
    return make_store()


def test_claim_twice_is_refused(store):
    assert store.claim(row())
    assert not store.claim(row())
    got = store.get("t:5:42")
    assert got.state is State.CLAIMED and got.nonce == "rabc" and got.due_at == DUE and got.guild_id == 1 and got.run == LIVE


def test_swap_meta_lets_exactly_one_process_set_a_value(make_store):
    """Several processes starting one rehearsal at once must agree on one anchor: compare and set."""
    a, b = make_store(), make_store()
    assert a.swap_meta("rehearsal", None, "from-a")
    assert not b.swap_meta("rehearsal", None, "from-b")  # someone got there first
    assert b.get_meta("rehearsal") == "from-a"
    assert not b.swap_meta("rehearsal", "stale", "from-b")
    assert b.swap_meta("rehearsal", "from-a", "from-b") and a.get_meta("rehearsal") == "from-b"
    assert not a.swap_meta("rehearsal", "from-a", "again")


def test_an_interaction_is_claimed_by_exactly_one_process(make_store):
    """Two processes on one shard both receive every interaction; one answers it."""
    import concurrent.futures

    stores = [make_store(), make_store()]
    ids = [1_100_000_000_000_000_000 + i for i in range(40)]
    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        won = list(pool.map(lambda job: job[1].claim_interaction(job[0]), [(i, s) for i in ids for s in stores for _ in range(2)]))
    assert sum(won) == len(ids)
    assert not stores[0].claim_interaction(ids[0]) and not stores[1].claim_interaction(ids[-1])


def test_crash_between_claim_and_confirm_is_taken_up_again_with_same_nonce_once_the_lease_expires(make_store):
    first = make_store()
    first.claim(row(), lease=LEASE)
    first.close()  # the process dies before Discord confirms
    second = make_store()
    assert [r.id for r in second.rows(State.CLAIMED)] == ["t:5:42"]
    assert second.retry("t:5:42") is None  # the dead process's lease still runs
    time.sleep(LEASE + 0.1)
    again = second.retry("t:5:42")
    assert again is not None and again.nonce == "rabc" and again.attempts == 2 and again.owner == second.owner
    second.mark_sent("t:5:42", 999)
    assert second.get("t:5:42").state is State.SENT
    assert second.retry("t:5:42") is None  # sent is final


def test_a_lease_keeps_other_owners_out_until_it_expires_but_never_its_owner(make_store):
    a, b = make_store(), make_store()
    assert a.owner != b.owner
    assert a.claim(row(), lease=LEASE)
    claimed = a.get("t:5:42")
    assert claimed.owner == a.owner and claimed.lease_until > dt.datetime.now(dt.UTC)
    assert b.retry("t:5:42") is None
    mine = a.retry("t:5:42", lease=LEASE)  # the owner takes its own row up at once
    assert mine is not None and mine.attempts == 2
    assert b.retry("t:5:42") is None and b.get("t:5:42").attempts == 2
    time.sleep(LEASE + 0.1)
    taken = b.retry("t:5:42")
    assert taken is not None and taken.owner == b.owner and taken.attempts == 3 and taken.nonce == "rabc"
    assert a.retry("t:5:42") is None  # now b's, for b's lease


def test_a_passing_failure_renews_the_owners_lease_and_only_the_owner_records_one(make_store):
    a, b = make_store(), make_store()
    a.claim(row(), lease=LEASE)
    time.sleep(LEASE + 0.1)  # a's lease ran out while its send was in flight ...
    a.mark_failed("t:5:42", "503 Service Unavailable", lease=60)  # ... and its failure renews it: a's backoff retries
    failed = a.get("t:5:42")
    assert failed.state is State.FAILED and failed.owner == a.owner and failed.lease_until > dt.datetime.now(dt.UTC) + dt.timedelta(seconds=50)
    assert b.retry("t:5:42") is None
    b.mark_failed("t:5:42", "not b's row", permanent=True)  # b holds no lease on it: nothing changes
    assert a.get("t:5:42").state is State.FAILED and a.get("t:5:42").error == "503 Service Unavailable"
    assert a.retry("t:5:42").state is State.CLAIMED


def test_sent_refused_and_skipped_end_the_lease(store):
    for rid in ("sent", "refused", "skipped"):
        store.claim(row(rid))
    store.mark_sent("sent", 1)
    store.mark_failed("refused", "403 Missing Permissions", permanent=True)
    store.skip_many([(row("skipped"), "stale"), (row("new-skip"), "stale")])
    for rid, state in (("sent", State.SENT), ("refused", State.REFUSED), ("skipped", State.SKIPPED), ("new-skip", State.SKIPPED)):
        got = store.get(rid)
        assert (got.state, got.lease_until) == (state, None), rid
        assert store.retry(rid) is None


def test_renewing_keeps_a_slow_send_ours(make_store):
    a, b = make_store(), make_store()
    a.claim(row(), lease=LEASE)
    assert a.renew("t:5:42", lease=60)
    time.sleep(LEASE + 0.1)
    assert b.retry("t:5:42") is None
    assert not b.renew("t:5:42", lease=60)  # not b's
    a.mark_sent("t:5:42", 5)
    assert not a.renew("t:5:42", lease=60)  # done: nothing to hold


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
    changes = store._db.total_changes if isinstance(store, Store) else 0
    assert store.skip_many(rows) == 5000
    if isinstance(store, Store):
        assert store._db.total_changes - changes == 5000
    assert len(store.rows(State.SKIPPED)) == 5000


def test_a_failing_skip_stores_none_of_its_rows(store):
    rows = [(row(f"t{i}"), "stale") for i in range(100)] + [(row("bad", guild_id=2**80), "stale")]  # too large for the column
    import psycopg

    with pytest.raises((OverflowError, psycopg.DataError)):
        store.skip_many(rows)
    assert store.rows() == []


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


def test_wal_mode_and_schema_version(tmp_path):
    store = Store(tmp_path / "bot.sqlite3")
    assert store._db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert store._db.execute("PRAGMA user_version").fetchone()[0] == SQLITE_SCHEMA
    store.close()


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


# --- session Q&A ------------------------------------------------------------------------

ASKED = dt.datetime(2020, 12, 10, 14, 5, tzinfo=dt.UTC)


def test_questions_are_stored_and_read_back(store):
    asked = store.add_question(1, "t", 7, "Why?", True, ASKED)
    assert (asked.guild_id, asked.talk_id, asked.user_id, asked.text, asked.anonymous) == (1, "t", 7, "Why?", True)
    assert (asked.created_at, asked.state, asked.votes, asked.channel_id, asked.message_id) == (ASKED, "open", 0, None, None)
    store.set_question_message(asked.id, 55, 987654321098765432)
    store.set_question_state(asked.id, "hidden")
    again = store.question(asked.id)
    assert (again.channel_id, again.message_id, again.state) == (55, 987654321098765432, "hidden")
    assert store.question(asked.id + 1) is None
    with pytest.raises(ValueError, match="open, answered, hidden"):
        store.set_question_state(asked.id, "deleted")


def test_question_counts_for_the_limits(store):
    store.add_question(1, "t", 7, "a", False, ASKED)
    store.add_question(2, "t", 7, "b", False, ASKED + dt.timedelta(seconds=30))
    answered = store.add_question(1, "t", 7, "c", False, ASKED + dt.timedelta(seconds=59))
    store.add_question(1, "u", 8, "d", False, ASKED)
    store.set_question_state(answered.id, "answered")
    assert store.questions_since(7, ASKED) == 3  # at or after; any state, any guild
    assert store.questions_since(7, ASKED + dt.timedelta(seconds=1)) == 2
    assert store.open_questions(7, "t") == 2
    assert store.open_questions(7, "u") == 0


def test_limits_are_checked_as_the_question_is_stored(store):
    from bot.state.store import QuestionLimitReached, QuestionLimits

    limits = QuestionLimits(since=ASKED - dt.timedelta(minutes=1), recent=2, open_per_talk=1)
    store.add_question(1, "t", 7, "a", False, ASKED, limits=limits)
    with pytest.raises(QuestionLimitReached) as reached:
        store.add_question(1, "t", 7, "b", False, ASKED, limits=limits)
    assert reached.value.which == "open_per_talk"
    store.add_question(1, "u", 7, "c", False, ASKED, limits=limits)
    with pytest.raises(QuestionLimitReached) as reached:
        store.add_question(1, "v", 7, "d", False, ASKED, limits=limits)
    assert reached.value.which == "recent"
    assert store.questions_since(7, ASKED) == 2


def test_top_questions_see_one_guild_and_the_given_talks_and_states(store):
    a = store.add_question(1, "t", 7, "a", False, ASKED)
    b = store.add_question(1, "u", 8, "b", False, ASKED + dt.timedelta(seconds=1))
    c = store.add_question(1, "t", 9, "c", False, ASKED - dt.timedelta(seconds=1))  # older than a
    store.add_question(2, "t", 7, "other guild", False, ASKED)
    store.toggle_vote(b.id, 1)
    store.set_question_state(c.id, "answered")
    assert [q.id for q in store.top_questions(1, ["t", "u"])] == [b.id, a.id]
    assert [q.id for q in store.top_questions(1, ("t", "u"), states=("open", "answered"))] == [b.id, c.id, a.id]
    assert [q.id for q in store.top_questions(1, {"t"}, limit=1, states=("answered",))] == [c.id]
    assert store.top_questions(1, []) == []
    assert store.top_questions(3, ["t"]) == []


def test_a_vote_on_an_unknown_question_records_nothing(store):
    assert store.toggle_vote(12345, 1) == (False, 0)
    assert not store.voted(12345, 1)


def test_votes_from_four_connections_at_once_are_counted_exactly(make_store):
    """Each store has its own lock or pool: only the transaction keeps read-count-write from losing votes."""

    stores = [make_store() for _ in range(4)]
    _, counts = _two_hundred_votes_at_once(stores)
    assert counts == [200] * 4


_KILLED_WRITER = """
import datetime as dt, os, sys, time
from bot.state.store import Store
store = Store(sys.argv[1])
asked = store.add_question(1, "t", 7, "survives?", False, dt.datetime(2020, 12, 10, 14, 5, tzinfo=dt.UTC))
for user in range(50):
    store.toggle_vote(asked.id, user)
store.toggle_vote(asked.id, 0)  # taken back
print(asked.id, flush=True)
time.sleep(60)
"""


def test_questions_and_votes_survive_kill_9(tmp_path):
    import os
    import signal

    path = tmp_path / "bot.sqlite3"
    writer = subprocess.Popen([sys.executable, "-c", _KILLED_WRITER, str(path)], cwd=ROOT, stdout=subprocess.PIPE, text=True)
    try:
        qid = int(writer.stdout.readline())
    finally:
        os.kill(writer.pid, signal.SIGKILL)
        writer.wait(timeout=30)
        writer.stdout.close()
    assert writer.returncode == -signal.SIGKILL
    store = Store(path)
    found = store.question(qid)
    assert (found.text, found.votes) == ("survives?", 49)
    assert store.toggle_vote(qid, 0) == (True, 50)
    assert store.toggle_vote(qid, 1) == (False, 49)
    store.close()


def test_a_version_3_file_gets_the_question_tables_and_keeps_its_rows(tmp_path):
    path = tmp_path / "v3.sqlite3"
    old = Store(path)
    old.follow(1, "talk", "t", "T", 5)
    old.claim(row())
    old._db.executescript("DROP TABLE questions; DROP TABLE question_votes; PRAGMA user_version = 3;")
    old.close()
    store = Store(path)
    assert store._db.execute("PRAGMA user_version").fetchone()[0] == SQLITE_SCHEMA
    assert [f.key for f in store.follows_of(1)] == ["t"] and store.get("t:5:42") is not None
    asked = store.add_question(1, "t", 7, "new table?", False, ASKED)
    assert store.toggle_vote(asked.id, 1) == (True, 1)
    store.close()


def test_a_version_4_file_gets_leases_and_its_claims_can_be_taken_up_at_once(tmp_path):
    """Rows from before leases have none (NULL): expired, so a new process takes an unconfirmed claim up at once."""
    path = tmp_path / "v4.sqlite3"
    old = Store(path)
    old.claim(row())
    old.claim(row("sent"))
    old.mark_sent("sent", 7)
    old.follow(1, "talk", "t", "T", 5)
    old._db.executescript("ALTER TABLE ledger DROP COLUMN owner; ALTER TABLE ledger DROP COLUMN lease_until; PRAGMA user_version = 4;")
    old.close()
    store = Store(path)
    assert store._db.execute("PRAGMA user_version").fetchone()[0] == SQLITE_SCHEMA
    assert {r.id: (r.state, r.owner, r.lease_until) for r in store.rows()} == {"t:5:42": (State.CLAIMED, None, None), "sent": (State.SENT, None, None)}
    assert store.get("sent").message_id == "7" and [f.key for f in store.follows_of(1)] == ["t"]
    taken = store.retry("t:5:42")
    assert taken is not None and taken.owner == store.owner and taken.attempts == 2
    store.close()


# --- PostgreSQL: several processes on one database ---------------------------------------------


def _race(work, n: int) -> list[int]:
    """Run work(i) for i in range(n) on n threads released at once; the i whose work returned true."""
    import threading

    start, wins = threading.Barrier(n), []

    def one(i: int) -> None:
        start.wait()
        if work(i):
            wins.append(i)

    threads = [threading.Thread(target=one, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return wins


def test_two_processes_racing_to_claim_one_reminder_one_wins(postgres_stores):
    """Two pools, like two bot processes given the same shard by mistake: the ledger's key lets one claim win."""
    stores = [postgres_stores(), postgres_stores()]
    for attempt in range(20):
        assert len(_race(lambda i, rid=f"t:5:{attempt}": stores[i % 2].claim(row(rid)), 16)) == 1
    assert len(stores[0].rows()) == 20


def test_two_processes_racing_to_take_up_an_expired_lease_one_wins(postgres_stores):
    """The lease check and the new lease are one UPDATE: of processes racing for a dead owner's row, one gets it.

    (The winner's other threads may take it up again: it is theirs. No thread of the loser ever does.)
    """
    dead, *stores = [postgres_stores() for _ in range(3)]
    for attempt in range(10):
        dead.claim(row(f"t:5:{attempt}"), lease=0.05)
    time.sleep(0.2)
    for attempt in range(10):
        wins = _race(lambda i, rid=f"t:5:{attempt}": stores[i % 2].retry(rid) is not None, 16)
        assert len({i % 2 for i in wins}) == 1
        assert stores[0].get(f"t:5:{attempt}").owner == stores[wins[0] % 2].owner


def test_leases_are_on_the_databases_clock(postgres_stores):
    store = postgres_stores()
    store.claim(row(), lease=60)
    with store._pool.connection() as conn:
        lease_until, db_now = conn.execute("SELECT lease_until, now() FROM ledger WHERE id = 't:5:42'").fetchone()
    assert dt.timedelta(seconds=59) < lease_until - db_now <= dt.timedelta(seconds=60)


def test_a_version_1_database_gets_leases_and_keeps_its_rows(postgres_database):
    import psycopg

    from bot.state.postgres import SCHEMA_VERSION, PostgresStore

    old = PostgresStore(postgres_database)
    old.claim(row())
    old.claim(row("sent"))
    old.mark_sent("sent", 7)
    old.close()
    with psycopg.connect(postgres_database, autocommit=True) as conn:
        conn.execute("ALTER TABLE ledger DROP COLUMN owner, DROP COLUMN lease_until")
        conn.execute("DROP TABLE interactions")
        conn.execute("UPDATE schema_version SET version = 1")
    store = PostgresStore(postgres_database)
    assert store.schema_version() == SCHEMA_VERSION == 3
    assert {r.id: (r.state, r.owner, r.lease_until) for r in store.rows()} == {"t:5:42": (State.CLAIMED, None, None), "sent": (State.SENT, None, None)}
    taken = store.retry("t:5:42")  # no lease: taken up at once
    assert taken is not None and taken.owner == store.owner and taken.attempts == 2 and taken.lease_until is not None
    store.close()


def test_two_hundred_votes_on_two_stores_at_once_are_counted_exactly(postgres_stores):

    stores = [postgres_stores(), postgres_stores()]
    qid, counts = _two_hundred_votes_at_once(stores)
    assert counts == [200, 200]
    assert all(stores[1].voted(qid, user) for user in range(200))


def test_limits_hold_when_two_processes_ask_at_once(postgres_stores):
    import threading

    from bot.state.store import QuestionLimitReached, QuestionLimits

    stores = [postgres_stores(), postgres_stores()]
    limits = QuestionLimits(since=ASKED - dt.timedelta(minutes=1), recent=3, open_per_talk=10)
    start = threading.Barrier(12)
    refused = []

    def ask(i: int) -> None:
        start.wait()
        try:
            stores[i % 2].add_question(1, "t", 7, f"q{i}", False, ASKED, limits=limits)
        except QuestionLimitReached as err:
            refused.append(err.which)

    threads = [threading.Thread(target=ask, args=(i,)) for i in range(12)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert refused == ["recent"] * 9
    assert stores[0].questions_since(7, ASKED) == 3


def test_an_empty_database_gets_the_schema_and_a_newer_one_is_refused(postgres_database):
    import psycopg

    from bot.state.postgres import SCHEMA_VERSION, PostgresStore

    store = PostgresStore(postgres_database)
    assert store.schema_version() == SCHEMA_VERSION
    store.claim(row())
    store.close()
    again = PostgresStore(postgres_database)  # a second start migrates nothing and keeps the rows
    assert again.get("t:5:42") is not None
    again.close()
    with psycopg.connect(postgres_database, autocommit=True) as conn:
        conn.execute("UPDATE schema_version SET version = %s", (SCHEMA_VERSION + 1,))
    with pytest.raises(StateError, match="newer than this bot"):
        PostgresStore(postgres_database)


def test_an_unreachable_database_is_refused_naming_it_without_the_password(tmp_path):
    from bot.state.postgres import PostgresStore

    url = f"postgresql://bot:hunter2secret@/conference?host={tmp_path}&port=1"
    with pytest.raises(StateError) as err:
        PostgresStore(url, timeout=2)
    message = str(err.value)
    assert "conference" in message and str(tmp_path) in message and "STATE_URL" in message
    assert "hunter2secret" not in message


def test_a_wrong_password_is_refused_without_showing_it(postgres_database):
    from psycopg.conninfo import conninfo_to_dict, make_conninfo

    from bot.state.postgres import PostgresStore

    info = conninfo_to_dict(postgres_database)
    url = make_conninfo(postgres_database, dbname="no_such_database", password="hunter2secret")
    with pytest.raises(StateError) as err:
        PostgresStore(url, timeout=2)
    assert "no_such_database" in str(err.value) and "hunter2secret" not in str(err.value)
    store = PostgresStore(make_conninfo(postgres_database, password="hunter2secret"))  # trust auth: the password is not needed
    assert "hunter2secret" not in repr(store) and info["dbname"] in repr(store)
    store.close()


def test_state_url_selects_postgresql(postgres_database, tmp_path):
    from psycopg.conninfo import conninfo_to_dict

    from bot.config import settings_from
    from bot.state import open_store
    from bot.state.postgres import PostgresStore

    info = conninfo_to_dict(postgres_database)
    url = f"postgresql:///{info['dbname']}?host={info['host']}&user={info.get('user', 'postgres')}"
    if info.get("port"):
        url += f"&port={info['port']}"
    store = open_store(settings_from({"STATE_URL": url, "STATE_PATH": str(tmp_path / "unused.sqlite3")}))
    assert isinstance(store, PostgresStore)
    store.close()
    sqlite = open_store(settings_from({"STATE_PATH": str(tmp_path / "bot.sqlite3")}))
    assert isinstance(sqlite, Store)
    sqlite.close()


def test_state_url_is_validated_and_its_password_never_shown():
    from bot.config import ConfigError, settings_from

    url = "postgresql://bot:hunter2secret@db.example.org:5432/conference?sslmode=require"
    settings = settings_from({"STATE_URL": url})
    assert settings.state_url.reveal() == url and "hunter2secret" not in repr(settings)
    for bad in ("mysql://bot:hunter2secret@db/conference", "postgresql://bot:hunter2secret@db:port/conference"):
        with pytest.raises(ConfigError, match="STATE_URL") as err:
            settings_from({"STATE_URL": bad})
        assert "hunter2secret" not in str(err.value)


def test_a_server_that_stops_answering_is_noticed_by_the_network_settings(postgres_database):
    """A dead host or a dropped network closes nothing: keepalives and a TCP timeout notice it, unless STATE_URL says otherwise."""
    from bot.state.postgres import NETWORK_DEFAULTS, PostgresStore

    store = PostgresStore(postgres_database)
    chosen = PostgresStore(postgres_database + " keepalives_idle=60")
    try:
        with store._pool.connection() as conn:
            params = conn.info.get_parameters()
        assert {k: params.get(k) for k in NETWORK_DEFAULTS} == {k: str(v) for k, v in NETWORK_DEFAULTS.items()}
        with chosen._pool.connection() as conn:
            assert conn.info.get_parameters()["keepalives_idle"] == "60"
    finally:
        store.close()
        chosen.close()


def _two_hundred_votes_at_once(stores: list) -> tuple[int, list[int]]:
    """200 users vote on one question at the same instant, spread over `stores`; its id and the count each store then reads."""
    import threading

    asked = stores[0].add_question(1, "t", 7, "popular?", False, ASKED)
    start = threading.Barrier(200)

    def vote(user: int) -> None:
        start.wait()
        stores[user % len(stores)].toggle_vote(asked.id, user)

    threads = [threading.Thread(target=vote, args=(user,)) for user in range(200)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return asked.id, [s.question(asked.id).votes for s in stores]
