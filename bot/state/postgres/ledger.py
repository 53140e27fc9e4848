"""The PostgreSQL ledger: exactly-once reminders, decided by the database, with leases on its clock (`now()`)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Sequence

import psycopg

from bot.state.base import DEFAULT_LEASE_SECONDS, LIVE, LedgerRow, NewRow, State
from bot.state.postgres.db import Database, in_utc, utcnow

_COLUMNS = "id, run, guild_id, talk_id, lead, channel_id, nonce, due_at, state, attempts, message_id, error, updated_at, owner, lease_until"
_INSERT = f"INSERT INTO ledger ({_COLUMNS}) VALUES ({', '.join(['%s'] * 14)}, now() + make_interval(secs => %s))"
_TAKEN_UP = (State.CLAIMED.value, State.FAILED.value)  # the states a retry (or a failure) applies to


def _row(values: Sequence) -> LedgerRow:
    rid, run, guild_id, talk_id, lead, channel_id, nonce, due_at, state, attempts, message_id, error, updated_at, owner, until = values
    return LedgerRow(
        rid, run, guild_id, talk_id, lead, channel_id, nonce, in_utc(due_at), State(state), attempts, message_id, error, in_utc(updated_at),
        owner, in_utc(until) if until is not None else None,
    )  # fmt: skip


def _values(row: NewRow, state: State, attempts: int, error: str | None, owner: str | None = None, lease: float | None = None) -> tuple:
    """The _INSERT's parameters; `lease` None writes no lease (NULL)."""
    return (
        row.id,
        row.run,
        row.guild_id,
        row.talk_id,
        row.lead,
        row.channel_id,
        row.nonce,
        in_utc(row.due_at),
        state.value,
        attempts,
        None,
        error,
        utcnow(),
        owner,
        lease,
    )


class Ledger(Database):
    """Claims, leases, retries and skips of reminders, and what the status and the planner ask about them."""

    def claim(self, row: NewRow, *, lease: float = DEFAULT_LEASE_SECONDS) -> bool:
        """Record a reminder as about to be sent, ours for `lease` seconds; False if it is already in the ledger (any state), whoever wrote it."""
        return self._execute(_INSERT + " ON CONFLICT (id) DO NOTHING", _values(row, State.CLAIMED, 1, None, self.owner, lease)) == 1

    def retry(self, rid: str, *, lease: float = DEFAULT_LEASE_SECONDS) -> LedgerRow | None:
        """Take up a claimed or failed row again (same nonce) if its lease has expired or it is ours; else None.

        One UPDATE: of two processes racing for an expired lease, the second sees the first's new lease and gets None.
        """
        found = self._one(
            "UPDATE ledger SET state = %(claimed)s, attempts = attempts + 1, updated_at = %(now)s, owner = %(owner)s, "
            "lease_until = now() + make_interval(secs => %(lease)s) "
            "WHERE id = %(id)s AND state = ANY(%(states)s) AND (owner = %(owner)s OR lease_until IS NULL OR lease_until <= now()) "
            f"RETURNING {_COLUMNS}",
            {"claimed": State.CLAIMED.value, "now": utcnow(), "owner": self.owner, "lease": lease, "id": rid, "states": list(_TAKEN_UP)},
        )
        return _row(found) if found else None

    def lease_left(self, rid: str) -> float | None:
        """Measured on the database's clock, like the lease itself."""
        found = self._one("SELECT COALESCE(EXTRACT(EPOCH FROM lease_until - now()), 0) FROM ledger WHERE id = %s AND state = ANY(%s)", (rid, list(_TAKEN_UP)))
        return float(found[0]) if found else None

    def renew(self, rid: str, *, lease: float = DEFAULT_LEASE_SECONDS) -> bool:
        """Extend our lease on a claimed row while its send is in flight; False if it is no longer ours."""
        query = "UPDATE ledger SET lease_until = now() + make_interval(secs => %s) WHERE id = %s AND state = %s AND owner = %s"
        return self._execute(query, (lease, rid, State.CLAIMED.value, self.owner)) == 1

    def mark_sent(self, rid: str, message_id: str | int | None) -> None:
        """Final whoever holds the lease: Discord confirmed the post."""
        self._execute(
            "UPDATE ledger SET state = %s, message_id = %s, error = NULL, updated_at = %s, lease_until = NULL WHERE id = %s",
            (State.SENT.value, None if message_id is None else str(message_id), utcnow(), rid),
        )

    def mark_failed(self, rid: str, error: str, *, permanent: bool = False, lease: float = DEFAULT_LEASE_SECONDS) -> None:
        """Only while the row is ours: a passing failure renews our lease (our backoff retries it), a permanent one ends it."""
        state, until = (State.REFUSED, None) if permanent else (State.FAILED, lease)
        self._execute(
            "UPDATE ledger SET state = %s, error = %s, updated_at = %s, lease_until = now() + make_interval(secs => %s) "
            "WHERE id = %s AND owner = %s AND state = ANY(%s)",
            (state.value, error[:500], utcnow(), until, rid, self.owner, list(_TAKEN_UP)),
        )

    def skip_many(self, rows: Iterable[tuple[NewRow, str]]) -> int:
        """Record reminders that will never be sent, in one transaction; rows already done stay as they are."""
        values = [_values(row, State.SKIPPED, 0, reason) for row, reason in rows]
        if not values:
            return 0
        query = (
            _INSERT + " ON CONFLICT (id) DO UPDATE SET state = excluded.state, "
            "error = COALESCE(ledger.error || ' / ', '') || excluded.error, updated_at = excluded.updated_at, lease_until = NULL "
            "WHERE ledger.state NOT IN ('sent', 'refused', 'skipped')"
        )

        def write(conn: psycopg.Connection) -> None:
            with conn.cursor() as cur:
                cur.executemany(query, values)

        self._run(write, transaction=True)
        return len(values)

    def get(self, rid: str) -> LedgerRow | None:
        found = self._one(f"SELECT {_COLUMNS} FROM ledger WHERE id = %s", (rid,))
        return _row(found) if found else None

    def get_many(self, ids: Iterable[str]) -> dict[str, LedgerRow]:
        wanted = list(dict.fromkeys(ids))
        if not wanted:
            return {}
        return {row.id: row for row in map(_row, self._all(f"SELECT {_COLUMNS} FROM ledger WHERE id = ANY(%s)", (wanted,)))}

    def rows(self, *states: State, run: str | None = None, guild_id: int | None = None) -> list[LedgerRow]:
        clauses, args = [], []
        if states:
            clauses.append("state = ANY(%s)")
            args.append([s.value for s in states])
        if run is not None:
            clauses.append("run = %s")
            args.append(run)
        if guild_id is not None:
            clauses.append("guild_id = %s")
            args.append(guild_id)
        where = " WHERE " + " AND ".join(clauses) if clauses else ""
        return [_row(r) for r in self._all(f"SELECT {_COLUMNS} FROM ledger{where} ORDER BY due_at, id", args)]

    def last_sent(self, run: str, guild_id: int) -> LedgerRow | None:
        found = self._one(
            f"SELECT {_COLUMNS} FROM ledger WHERE run = %s AND guild_id = %s AND state = %s "
            "AND id NOT LIKE '%%|qa-top|%%' AND id NOT LIKE '%%|changes|%%' ORDER BY updated_at DESC LIMIT 1",  # reminders only
            (run, guild_id, State.SENT.value),
        )
        return _row(found) if found else None

    def failures(self, run: str, guild_id: int, limit: int = 5) -> list[LedgerRow]:
        found = self._all(
            f"SELECT {_COLUMNS} FROM ledger WHERE run = %s AND guild_id = %s AND error IS NOT NULL AND state != %s ORDER BY updated_at DESC LIMIT %s",
            (run, guild_id, State.SENT.value, limit),
        )
        return [_row(r) for r in reversed(found)]

    def count_before(self, run: str, instant: dt.datetime, guild_ids: Iterable[int]) -> int:
        guilds = list(guild_ids)
        if not guilds:
            return 0
        found = self._one("SELECT COUNT(*) FROM ledger WHERE run = %s AND due_at < %s AND guild_id = ANY(%s)", (run, in_utc(instant), guilds))
        return found[0] if found else 0

    def earliest_due(self, run: str) -> dt.datetime | None:
        found = self._one("SELECT MIN(due_at) FROM ledger WHERE run = %s", (run,))
        return in_utc(found[0]) if found and found[0] else None

    def forget_run(self, run: str) -> int:
        if run == LIVE:
            raise ValueError("the live ledger is never forgotten")
        return self._execute("DELETE FROM ledger WHERE run = %s", (run,))
