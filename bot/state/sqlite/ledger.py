"""The SQLite ledger: exactly-once reminders, with leases on this host's UTC clock (see bot.state.base)."""

from __future__ import annotations

import datetime as dt
import sqlite3
from collections.abc import Iterable, Sequence

from bot.state.base import DEFAULT_LEASE_SECONDS, LIVE, LedgerRow, NewRow, State, utc_text
from bot.state.sqlite.db import Database, utcnow


def _lease_text(seconds: float = 0.0) -> str:
    """Now (plus `seconds`) in UTC with a fixed-width fraction, so that comparing the text compares the instants."""
    return (dt.datetime.now(dt.UTC) + dt.timedelta(seconds=seconds)).isoformat(timespec="microseconds")


_COLUMNS = "id, run, guild_id, talk_id, lead, channel_id, nonce, due_at, state, attempts, message_id, error, updated_at, owner, lease_until"
_INSERT = f"INSERT INTO ledger ({_COLUMNS}) VALUES ({', '.join('?' * 15)})"
_TAKEN_UP = (State.CLAIMED.value, State.FAILED.value)  # the states a retry (or a failure) applies to


def _row(values: Sequence) -> LedgerRow:
    rid, run, guild_id, talk_id, lead, channel_id, nonce, due_at, state, attempts, message_id, error, updated_at, owner, lease_until = values
    return LedgerRow(
        rid,
        run,
        guild_id,
        talk_id,
        lead,
        channel_id,
        nonce,
        dt.datetime.fromisoformat(due_at),
        State(state),
        attempts,
        message_id,
        error,
        dt.datetime.fromisoformat(updated_at),
        owner,
        dt.datetime.fromisoformat(lease_until) if lease_until else None,
    )


def _values(row: NewRow, state: State, attempts: int, error: str | None, owner: str | None = None, lease_until: str | None = None) -> tuple:
    return (
        row.id,
        row.run,
        row.guild_id,
        row.talk_id,
        row.lead,
        row.channel_id,
        row.nonce,
        utc_text(row.due_at),
        state.value,
        attempts,
        None,
        error,
        utcnow(),
        owner,
        lease_until,
    )


def _where(states: Sequence[State], run: str | None, guild_id: int | None) -> tuple[str, tuple]:
    clauses, args = [], []
    if states:
        clauses.append(f"state IN ({', '.join('?' * len(states))})")
        args += [s.value for s in states]
    if run is not None:
        clauses.append("run = ?")
        args.append(run)
    if guild_id is not None:
        clauses.append("guild_id = ?")
        args.append(guild_id)
    return (" WHERE " + " AND ".join(clauses) if clauses else ""), tuple(args)


class Ledger(Database):
    """Claims, leases, retries and skips of reminders, and what the status and the planner ask about them."""

    def claim(self, row: NewRow, *, lease: float = DEFAULT_LEASE_SECONDS) -> bool:
        """Record a reminder as about to be sent, ours for `lease` seconds; False if it is already in the ledger (any state)."""
        try:
            self._execute(_INSERT, _values(row, State.CLAIMED, 1, None, self.owner, _lease_text(lease)))
        except sqlite3.IntegrityError:
            return False
        return True

    def retry(self, rid: str, *, lease: float = DEFAULT_LEASE_SECONDS) -> LedgerRow | None:
        """Take up a claimed or failed row again (same nonce) if its lease has expired or it is ours; else None."""
        found = self._all(  # fetch all: a RETURNING statement commits only once it has run to its end
            "UPDATE ledger SET state = ?, attempts = attempts + 1, updated_at = ?, owner = ?, lease_until = ? "
            "WHERE id = ? AND state IN (?, ?) AND (owner = ? OR lease_until IS NULL OR lease_until <= ?) "
            f"RETURNING {_COLUMNS}",
            (State.CLAIMED.value, utcnow(), self.owner, _lease_text(lease), rid, *_TAKEN_UP, self.owner, _lease_text()),
        )
        return _row(found[0]) if found else None

    def lease_left(self, rid: str) -> float | None:
        found = self._one("SELECT lease_until FROM ledger WHERE id = ? AND state IN (?, ?)", (rid, *_TAKEN_UP))
        if found is None:
            return None
        return (dt.datetime.fromisoformat(found[0]) - dt.datetime.now(dt.UTC)).total_seconds() if found[0] else 0.0

    def renew(self, rid: str, *, lease: float = DEFAULT_LEASE_SECONDS) -> bool:
        cur = self._execute(
            "UPDATE ledger SET lease_until = ? WHERE id = ? AND state = ? AND owner = ?", (_lease_text(lease), rid, State.CLAIMED.value, self.owner)
        )
        return cur.rowcount == 1

    def mark_sent(self, rid: str, message_id: str | int | None) -> None:
        """Final whoever holds the lease: Discord confirmed the post."""
        self._execute(
            "UPDATE ledger SET state = ?, message_id = ?, error = NULL, updated_at = ?, lease_until = NULL WHERE id = ?",
            (State.SENT.value, None if message_id is None else str(message_id), utcnow(), rid),
        )

    def mark_failed(self, rid: str, error: str, *, permanent: bool = False, lease: float = DEFAULT_LEASE_SECONDS) -> None:
        """Only while the row is ours: a passing failure renews our lease (our backoff retries it), a permanent one ends it."""
        state, until = (State.REFUSED, None) if permanent else (State.FAILED, _lease_text(lease))
        self._execute(
            "UPDATE ledger SET state = ?, error = ?, updated_at = ?, lease_until = ? WHERE id = ? AND owner = ? AND state IN (?, ?)",
            (state.value, error[:500], utcnow(), until, rid, self.owner, *_TAKEN_UP),
        )

    def skip_many(self, rows: Iterable[tuple[NewRow, str]]) -> int:
        """Record reminders that will never be sent, in one transaction; rows already sent stay sent."""
        values = [_values(row, State.SKIPPED, 0, reason) for row, reason in rows]
        if not values:
            return 0
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                self._db.executemany(
                    _INSERT + " ON CONFLICT(id) DO UPDATE SET state = excluded.state, "
                    "error = COALESCE(ledger.error || ' / ', '') || excluded.error, updated_at = excluded.updated_at, lease_until = NULL "
                    "WHERE ledger.state NOT IN ('sent', 'refused', 'skipped')",
                    values,
                )
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
        return len(values)

    def get(self, rid: str) -> LedgerRow | None:
        found = self._one(f"SELECT {_COLUMNS} FROM ledger WHERE id = ?", (rid,))
        return _row(found) if found else None

    def get_many(self, ids: Iterable[str]) -> dict[str, LedgerRow]:
        """The rows of these ids that exist (one query per 500 ids)."""
        wanted = list(dict.fromkeys(ids))
        found: dict[str, LedgerRow] = {}
        for i in range(0, len(wanted), 500):
            chunk = wanted[i : i + 500]
            for values in self._all(f"SELECT {_COLUMNS} FROM ledger WHERE id IN ({', '.join('?' * len(chunk))})", chunk):
                row = _row(values)
                found[row.id] = row
        return found

    def rows(self, *states: State, run: str | None = None, guild_id: int | None = None) -> list[LedgerRow]:
        """Ledger rows (of the given states, run and guild, or all), oldest due first."""
        where, args = _where(states, run, guild_id)
        found = self._all(f"SELECT {_COLUMNS} FROM ledger{where} ORDER BY due_at, id", args)
        return [_row(r) for r in found]

    def last_sent(self, run: str, guild_id: int) -> LedgerRow | None:
        found = self._one(
            f"SELECT {_COLUMNS} FROM ledger WHERE run = ? AND guild_id = ? AND state = ? "
            "AND id NOT LIKE '%|qa-top|%' AND id NOT LIKE '%|changes|%' ORDER BY updated_at DESC LIMIT 1",  # reminders only
            (run, guild_id, State.SENT.value),
        )
        return _row(found) if found else None

    def failures(self, run: str, guild_id: int, limit: int = 5) -> list[LedgerRow]:
        """The guild's most recent rows with an error, oldest first."""
        found = self._all(
            f"SELECT {_COLUMNS} FROM ledger WHERE run = ? AND guild_id = ? AND error IS NOT NULL AND state != ? ORDER BY updated_at DESC LIMIT ?",
            (run, guild_id, State.SENT.value, limit),
        )
        return [_row(r) for r in reversed(found)]

    def count_before(self, run: str, instant: dt.datetime, guild_ids: Iterable[int]) -> int:
        """How many of these guilds' reminders due before `instant` are already in the ledger."""
        guilds = list(guild_ids)
        if not guilds:
            return 0
        query = f"SELECT COUNT(*) FROM ledger WHERE run = ? AND due_at < ? AND guild_id IN ({', '.join('?' * len(guilds))})"
        return self._one(query, (run, utc_text(instant), *guilds))[0]

    def earliest_due(self, run: str) -> dt.datetime | None:
        found = self._one("SELECT MIN(due_at) FROM ledger WHERE run = ?", (run,))
        return dt.datetime.fromisoformat(found[0]) if found and found[0] else None

    def forget_run(self, run: str) -> int:
        """Drop one run's rows (a rehearsal that starts over); never touches the live run."""
        if run == LIVE:
            raise ValueError("the live ledger is never forgotten")
        return self._execute("DELETE FROM ledger WHERE run = ?", (run,)).rowcount
