"""The SQLite ledger and per-guild overrides."""

from __future__ import annotations

import datetime as dt

import pytest

from bot.state.store import State, Store

DUE = dt.datetime(2020, 12, 10, 13, 55, tzinfo=dt.UTC)
ROW = {"talk_id": "t", "lead": 5, "channel_id": 42, "nonce": "rabc", "due_at": DUE}


@pytest.fixture
def store(tmp_path):
    s = Store(tmp_path / "state" / "bot.sqlite3")
    yield s
    s.close()


def test_claim_twice_is_refused(store):
    assert store.claim("t:5:42", **ROW)
    assert not store.claim("t:5:42", **ROW)
    row = store.get("t:5:42")
    assert row.state is State.CLAIMED and row.nonce == "rabc" and row.due_at == DUE


def test_crash_between_claim_and_confirm_is_taken_up_again_with_same_nonce(tmp_path):
    path = tmp_path / "bot.sqlite3"
    first = Store(path)
    first.claim("t:5:42", **ROW)
    first.close()  # the process dies before Discord confirms
    second = Store(path)
    assert [r.id for r in second.rows(State.CLAIMED)] == ["t:5:42"]
    again = second.retry("t:5:42")
    assert again is not None and again.nonce == "rabc" and again.attempts == 2
    second.mark_sent("t:5:42", 999)
    assert second.get("t:5:42").state is State.SENT
    assert second.retry("t:5:42") is None  # sent is final
    second.close()


def test_failed_keeps_error_and_can_retry(store):
    store.claim("t:5:42", **ROW)
    store.mark_failed("t:5:42", "403 Missing Permissions: Send Messages in channel 42")
    assert store.get("t:5:42").state is State.FAILED
    assert store.retry("t:5:42").state is State.CLAIMED
    store.mark_failed("t:5:42", "again")
    store.skip("t:5:42", "stale", **ROW)
    row = store.get("t:5:42")
    assert row.state is State.SKIPPED and "again" in row.error and "stale" in row.error


def test_skip_never_overrides_sent(store):
    store.claim("t:5:42", **ROW)
    store.mark_sent("t:5:42", 1)
    store.skip("t:5:42", "stale", **ROW)
    assert store.get("t:5:42").state is State.SENT


def test_wal_mode(store):
    assert store._db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_overrides_change_only_given_fields(store):
    assert store.overrides(7).channel_id is None
    store.set_override(7, channel_id=123)
    store.set_override(7, leads=(2, 10))
    o = store.set_override(7, enabled=False)
    assert (o.channel_id, o.leads, o.enabled) == (123, (10, 2), False)
    assert store.set_override(7, enabled=True).enabled is True
    assert [x.guild_id for x in store.all_overrides()] == [7]
