"""SQLite state: the reminder ledger and per-guild reminder settings.

The ledger is what makes reminders exactly-once: a row is claimed before a send and marked sent
after Discord confirms, so a restart knows what is done, what to re-send (same nonce) and what to skip.
Connections are short-lived per call pattern (autocommit, WAL), so a killed process leaves nothing half-written.
"""

from __future__ import annotations

import datetime as dt
import logging
import sqlite3
import threading
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

log = logging.getLogger(__name__)

_SCHEMA = """
CREATE TABLE IF NOT EXISTS ledger (
    id          TEXT PRIMARY KEY,
    talk_id     TEXT NOT NULL,
    lead        INTEGER NOT NULL,
    channel_id  INTEGER NOT NULL,
    nonce       TEXT NOT NULL,
    due_at      TEXT NOT NULL,
    state       TEXT NOT NULL,
    attempts    INTEGER NOT NULL DEFAULT 0,
    message_id  TEXT,
    error       TEXT,
    updated_at  TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS meta (
    key         TEXT PRIMARY KEY,
    value       TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS guild_settings (
    guild_id    INTEGER PRIMARY KEY,
    channel_id  INTEGER,
    leads       TEXT,
    enabled     INTEGER
);
"""


class State(StrEnum):
    CLAIMED = "claimed"  # recorded, send in flight or unconfirmed
    SENT = "sent"  # Discord confirmed
    FAILED = "failed"  # last attempt failed; retried with the same nonce while inside the grace window
    SKIPPED = "skipped"  # deliberately not sent (stale, superseded, talk over)


DONE = frozenset({State.SENT, State.SKIPPED})


@dataclass(frozen=True, slots=True)
class LedgerRow:
    id: str
    talk_id: str
    lead: int
    channel_id: int
    nonce: str
    due_at: dt.datetime
    state: State
    attempts: int
    message_id: str | None
    error: str | None
    updated_at: dt.datetime


@dataclass(frozen=True, slots=True)
class GuildOverrides:
    """Per-guild choices that win over the environment; None means "use the default"."""

    guild_id: int
    channel_id: int | None = None
    leads: tuple[int, ...] | None = None
    enabled: bool | None = None


def _utcnow() -> str:
    return dt.datetime.now(dt.UTC).isoformat()


def _row(values: tuple) -> LedgerRow:
    rid, talk_id, lead, channel_id, nonce, due_at, state, attempts, message_id, error, updated_at = values
    return LedgerRow(
        rid,
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
    )


_COLUMNS = "id, talk_id, lead, channel_id, nonce, due_at, state, attempts, message_id, error, updated_at"


class Store:
    """One SQLite file; safe to use from one event loop (calls are short and synchronous)."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        if str(path) != ":memory:":
            self.path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(str(path), isolation_level=None, timeout=10.0, check_same_thread=False)
        self._lock = threading.Lock()
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")  # with WAL: survives a killed process, cheap commits
        self._db.executescript(_SCHEMA)

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def __repr__(self) -> str:
        return f"Store({str(self.path)!r})"

    # --- ledger ---------------------------------------------------------------------
    def claim(self, rid: str, *, talk_id: str, lead: int, channel_id: int, nonce: str, due_at: dt.datetime) -> bool:
        """Record a reminder as about to be sent; False if it is already in the ledger (any state)."""
        with self._lock:
            try:
                self._db.execute(
                    f"INSERT INTO ledger ({_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, 1, NULL, NULL, ?)",
                    (rid, talk_id, lead, channel_id, nonce, due_at.isoformat(), State.CLAIMED.value, _utcnow()),
                )
            except sqlite3.IntegrityError:
                return False
        return True

    def retry(self, rid: str) -> LedgerRow | None:
        """Take up an unconfirmed or failed row again (same nonce); None if it is done or absent."""
        with self._lock:
            cur = self._db.execute(
                "UPDATE ledger SET state = ?, attempts = attempts + 1, updated_at = ? WHERE id = ? AND state IN (?, ?)",
                (State.CLAIMED.value, _utcnow(), rid, State.CLAIMED.value, State.FAILED.value),
            )
        return self.get(rid) if cur.rowcount else None

    def mark_sent(self, rid: str, message_id: str | int | None) -> None:
        self._set(rid, State.SENT, message_id=None if message_id is None else str(message_id), error=None)

    def mark_failed(self, rid: str, error: str) -> None:
        self._set(rid, State.FAILED, error=error[:500])

    def skip(self, rid: str, reason: str, *, talk_id: str, lead: int, channel_id: int, nonce: str, due_at: dt.datetime) -> None:
        """Record a reminder that will never be sent (keeps any earlier error for /reminders status)."""
        with self._lock:
            self._db.execute(
                f"INSERT INTO ledger ({_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, 0, NULL, ?, ?) "
                "ON CONFLICT(id) DO UPDATE SET state = excluded.state, "
                "error = COALESCE(ledger.error || ' / ', '') || excluded.error, updated_at = excluded.updated_at "
                "WHERE ledger.state != 'sent'",
                (rid, talk_id, lead, channel_id, nonce, due_at.isoformat(), State.SKIPPED.value, reason, _utcnow()),
            )

    def _set(self, rid: str, state: State, **fields: str | None) -> None:
        assignments = ", ".join(f"{name} = ?" for name in fields)
        with self._lock:
            self._db.execute(
                f"UPDATE ledger SET state = ?, {assignments}, updated_at = ? WHERE id = ?",
                (state.value, *fields.values(), _utcnow(), rid),
            )

    def get(self, rid: str) -> LedgerRow | None:
        with self._lock:
            found = self._db.execute(f"SELECT {_COLUMNS} FROM ledger WHERE id = ?", (rid,)).fetchone()
        return _row(found) if found else None

    def rows(self, *states: State) -> list[LedgerRow]:
        """Ledger rows (of the given states, or all), oldest due first."""
        query = f"SELECT {_COLUMNS} FROM ledger"
        args: tuple = ()
        if states:
            query += f" WHERE state IN ({', '.join('?' * len(states))})"
            args = tuple(s.value for s in states)
        with self._lock:
            found = self._db.execute(query + " ORDER BY due_at, id", args).fetchall()
        return [_row(r) for r in found]

    def clear_ledger(self) -> int:
        """Forget every reminder (a rehearsal that starts over); returns how many rows went."""
        with self._lock:
            return self._db.execute("DELETE FROM ledger").rowcount

    # --- small named values (the rehearsal's anchor) ------------------------------------
    def get_meta(self, key: str) -> str | None:
        with self._lock:
            found = self._db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return found[0] if found else None

    def set_meta(self, key: str, value: str) -> None:
        with self._lock:
            self._db.execute("INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET value = excluded.value", (key, value))

    # --- per-guild settings ----------------------------------------------------------
    def overrides(self, guild_id: int) -> GuildOverrides:
        with self._lock:
            found = self._db.execute("SELECT channel_id, leads, enabled FROM guild_settings WHERE guild_id = ?", (guild_id,)).fetchone()
        if not found:
            return GuildOverrides(guild_id)
        channel_id, leads, enabled = found
        parsed = tuple(int(x) for x in leads.split(",")) if leads else None
        return GuildOverrides(guild_id, channel_id, parsed, None if enabled is None else bool(enabled))

    def all_overrides(self) -> list[GuildOverrides]:
        with self._lock:
            ids = [r[0] for r in self._db.execute("SELECT guild_id FROM guild_settings ORDER BY guild_id")]
        return [self.overrides(g) for g in ids]

    def set_override(
        self, guild_id: int, *, channel_id: int | None = None, leads: tuple[int, ...] | None = None, enabled: bool | None = None
    ) -> GuildOverrides:
        """Change the given fields only (None leaves a field as it is)."""
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                self._db.execute("INSERT OR IGNORE INTO guild_settings (guild_id) VALUES (?)", (guild_id,))
                if channel_id is not None:
                    self._db.execute("UPDATE guild_settings SET channel_id = ? WHERE guild_id = ?", (channel_id, guild_id))
                if leads is not None:
                    text = ",".join(str(x) for x in sorted(set(leads), reverse=True))
                    self._db.execute("UPDATE guild_settings SET leads = ? WHERE guild_id = ?", (text, guild_id))
                if enabled is not None:
                    self._db.execute("UPDATE guild_settings SET enabled = ? WHERE guild_id = ?", (int(enabled), guild_id))
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
        return self.overrides(guild_id)
