"""SQLite state: the reminder ledger, per-guild settings, small named values, and session Q&A.

The ledger is what makes reminders exactly-once: a row is claimed before a send and marked sent
after Discord confirms, so a restart knows what is done, what to re-send (same nonce) and what to
skip. Every row carries its run ("live", or one rehearsal's key) and its guild, so a rehearsal never
silences the real day and one guild never sees another's rows. Autocommit and WAL: a killed process
leaves nothing half-written. The file is the operator's data: it is never deleted or rewritten
behind their back; a file that cannot be used stops the bot with a StateError that says what to do.
Leases (see bot.state.base) are on this host's UTC clock: every process sharing the file is on it.
"""

from __future__ import annotations

import datetime as dt
import logging
import sqlite3
import threading
from collections.abc import Callable, Collection, Iterable, Sequence
from pathlib import Path
from typing import TypeVar

from bot.state.base import (
    DEFAULT_LEASE_SECONDS,
    DONE,
    INTERACTIONS_KEPT,
    LIVE,
    QUESTION_STATES,
    DmChannel,
    Follow,
    GuildOverrides,
    LedgerRow,
    NewRow,
    Question,
    QuestionLimitReached,
    QuestionLimits,
    State,
    StateError,
    StateStore,
    leads_text,
    new_owner,
    overrides_from_row,
    utc_text,
)

log = logging.getLogger(__name__)

# The dataclasses and errors live in bot.state.base (shared with PostgreSQL); many modules import them from here.
__all__ = [
    "DONE",
    "LIVE",
    "QUESTION_STATES",
    "DmChannel",
    "Follow",
    "GuildOverrides",
    "LedgerRow",
    "NewRow",
    "Question",
    "QuestionLimitReached",
    "QuestionLimits",
    "State",
    "StateError",
    "StateStore",
    "Store",
    "utc_text",
]

SCHEMA_VERSION = 6  # 4: questions and question_votes (session Q&A); 5: the ledger's owner and lease_until; 6: interactions
T = TypeVar("T")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS ledger (
    id          TEXT PRIMARY KEY,
    run         TEXT NOT NULL DEFAULT 'live',
    guild_id    INTEGER NOT NULL DEFAULT 0,
    talk_id     TEXT NOT NULL,
    lead        INTEGER NOT NULL,
    channel_id  INTEGER NOT NULL,
    nonce       TEXT NOT NULL,
    due_at      TEXT NOT NULL,
    state       TEXT NOT NULL,
    attempts    INTEGER NOT NULL DEFAULT 0,
    message_id  TEXT,
    error       TEXT,
    updated_at  TEXT NOT NULL,
    owner       TEXT,          -- the process that claimed or last took it up
    lease_until TEXT           -- UTC, NULL (no lease) once done and on rows from before version 5
);
CREATE TABLE IF NOT EXISTS meta (
    key         TEXT PRIMARY KEY,
    value       TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS follows (
    user_id     INTEGER NOT NULL,
    what        TEXT NOT NULL,     -- 'talk' or 'author'
    key         TEXT NOT NULL,     -- the talk id, or the author's folded name
    label       TEXT NOT NULL,     -- what the user picked, for their list
    lead        INTEGER NOT NULL,
    created_at  TEXT NOT NULL,
    PRIMARY KEY (user_id, what, key)
);
CREATE TABLE IF NOT EXISTS dm_channels (
    user_id     INTEGER PRIMARY KEY,
    channel_id  INTEGER,
    closed      INTEGER NOT NULL DEFAULT 0,   -- Discord answered 50007: the user does not accept DMs from us
    welcomed    INTEGER NOT NULL DEFAULT 0,   -- the first "reminders will come here" DM went out
    updated_at  TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS guild_settings (
    guild_id    INTEGER PRIMARY KEY,
    channel_id  INTEGER,
    leads       TEXT,
    enabled     INTEGER,
    role_id     INTEGER
);
CREATE TABLE IF NOT EXISTS questions (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,   -- never reused: a button's custom_id names one question forever
    guild_id    INTEGER NOT NULL,
    talk_id     TEXT NOT NULL,
    user_id     INTEGER NOT NULL,                    -- kept for anonymous questions too, for moderation only
    text        TEXT NOT NULL,
    anonymous   INTEGER NOT NULL DEFAULT 0,
    created_at  TEXT NOT NULL,
    state       TEXT NOT NULL DEFAULT 'open',        -- 'open', 'answered' or 'hidden'
    votes       INTEGER NOT NULL DEFAULT 0,          -- always COUNT(question_votes), kept in the same transaction
    channel_id  INTEGER,
    message_id  INTEGER
);
CREATE TABLE IF NOT EXISTS interactions (
    id          INTEGER PRIMARY KEY,   -- a Discord interaction answered by this state's processes
    handled_at  TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS question_votes (
    question_id INTEGER NOT NULL,
    user_id     INTEGER NOT NULL,
    PRIMARY KEY (question_id, user_id)
) WITHOUT ROWID;
"""

# Version 1 (no user_version) had no run, guild or role columns. Its rows cannot tell a rehearsal
# from the live day, so they move to the run 'legacy', which nothing reads: they silence nothing.
_MIGRATE_1_TO_2 = (
    "ALTER TABLE ledger ADD COLUMN run TEXT NOT NULL DEFAULT 'legacy'",
    "ALTER TABLE ledger ADD COLUMN guild_id INTEGER NOT NULL DEFAULT 0",
    "ALTER TABLE guild_settings ADD COLUMN role_id INTEGER",
)
# Version 5 adds the lease. Earlier rows have none: a NULL lease counts as expired, so any process may take them up.
_MIGRATE_TO_5 = (
    "ALTER TABLE ledger ADD COLUMN owner TEXT",
    "ALTER TABLE ledger ADD COLUMN lease_until TEXT",
)
_INDEXES = """
CREATE INDEX IF NOT EXISTS ledger_by_guild ON ledger (run, guild_id, updated_at);
CREATE INDEX IF NOT EXISTS ledger_by_due ON ledger (run, due_at);
CREATE INDEX IF NOT EXISTS questions_by_talk ON questions (guild_id, talk_id, state, votes DESC, created_at);
CREATE INDEX IF NOT EXISTS questions_by_user ON questions (user_id, created_at);
CREATE INDEX IF NOT EXISTS questions_by_user_talk ON questions (user_id, talk_id, state);
"""


def _utcnow() -> str:
    return dt.datetime.now(dt.UTC).isoformat()


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
        _utcnow(),
        owner,
        lease_until,
    )


class Store:
    """One SQLite file; safe to use from one event loop and helper threads (one lock, short calls).

    `owner` names this process in the ledger's leases (a fresh one per store unless given).
    """

    def __init__(self, path: str | Path, *, owner: str | None = None) -> None:
        self.path = Path(path)
        self.owner = owner or new_owner()
        self._lock = threading.Lock()
        try:
            if str(path) != ":memory:":
                self.path.parent.mkdir(parents=True, exist_ok=True)
            self._db = sqlite3.connect(str(path), isolation_level=None, timeout=10.0, check_same_thread=False)
        except (OSError, sqlite3.Error) as err:
            raise StateError(_explain(self.path, err)) from None
        try:
            self._open()
        except sqlite3.Error as err:
            self._db.close()
            raise StateError(_explain(self.path, err)) from None

    def _open(self) -> None:
        db = self._db
        problem = db.execute("PRAGMA quick_check").fetchone()[0]
        if problem != "ok":
            raise sqlite3.DatabaseError(f"database disk image is malformed ({problem})")
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("PRAGMA synchronous=NORMAL")  # with WAL: survives a killed process, cheap commits
        version = db.execute("PRAGMA user_version").fetchone()[0]
        if version > SCHEMA_VERSION:
            raise sqlite3.DatabaseError(f"schema version {version} is newer than this bot's ({SCHEMA_VERSION}); update the bot")
        db.execute("BEGIN IMMEDIATE")
        try:
            had_ledger = db.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'ledger'").fetchone() is not None
            if had_ledger and version < 2:
                _add_columns(db, _MIGRATE_1_TO_2)
                log.info("state: %s migrated to schema version %d (earlier reminders kept as run 'legacy')", self.path, SCHEMA_VERSION)
            if had_ledger and version < 5:
                _add_columns(db, _MIGRATE_TO_5)
                log.info("state: %s migrated from schema version %d to %d (reminder leases)", self.path, version, SCHEMA_VERSION)
            for statement in (_SCHEMA + _INDEXES).split(";"):
                if statement.strip():
                    db.execute(statement)
            db.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def __repr__(self) -> str:
        return f"Store({str(self.path)!r})"

    def _execute(self, query: str, args: Sequence | dict = ()) -> sqlite3.Cursor:
        """For writes (read `rowcount`); reads go through `_one` and `_all`, which fetch under the lock too."""
        with self._lock:
            return self._locked(query, args)

    def _one(self, query: str, args: Sequence | dict = ()) -> tuple | None:
        with self._lock:
            return self._locked(query, args).fetchone()

    def _all(self, query: str, args: Sequence | dict = ()) -> list[tuple]:
        with self._lock:
            return self._locked(query, args).fetchall()

    def _locked(self, query: str, args: Sequence | dict) -> sqlite3.Cursor:
        try:
            return self._db.execute(query, args)
        except sqlite3.OperationalError as err:
            if "readonly" in str(err) or "disk" in str(err) or "full" in str(err):
                raise StateError(_explain(self.path, err)) from None
            raise

    # --- ledger ---------------------------------------------------------------------
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
            (State.CLAIMED.value, _utcnow(), self.owner, _lease_text(lease), rid, *_TAKEN_UP, self.owner, _lease_text()),
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
            (State.SENT.value, None if message_id is None else str(message_id), _utcnow(), rid),
        )

    def mark_failed(self, rid: str, error: str, *, permanent: bool = False, lease: float = DEFAULT_LEASE_SECONDS) -> None:
        """Only while the row is ours: a passing failure renews our lease (our backoff retries it), a permanent one ends it."""
        state, until = (State.REFUSED, None) if permanent else (State.FAILED, _lease_text(lease))
        self._execute(
            "UPDATE ledger SET state = ?, error = ?, updated_at = ?, lease_until = ? WHERE id = ? AND owner = ? AND state IN (?, ?)",
            (state.value, error[:500], _utcnow(), until, rid, self.owner, *_TAKEN_UP),
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
            f"SELECT {_COLUMNS} FROM ledger WHERE run = ? AND guild_id = ? AND state = ? AND id NOT LIKE '%|qa-top|%' ORDER BY updated_at DESC LIMIT 1",
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

    # --- small named values (the rehearsal's anchor) ------------------------------------
    def get_meta(self, key: str) -> str | None:
        found = self._one("SELECT value FROM meta WHERE key = ?", (key,))
        return found[0] if found else None

    def set_meta(self, key: str, value: str) -> None:
        self._execute("INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET value = excluded.value", (key, value))

    def swap_meta(self, key: str, expected: str | None, value: str) -> bool:
        """Set `key` to `value` only if it still holds `expected` (None: only if absent); False if another process got there first."""
        if expected is None:
            return self._execute("INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT(key) DO NOTHING", (key, value)).rowcount == 1
        return self._execute("UPDATE meta SET value = ? WHERE key = ? AND value = ?", (value, key, expected)).rowcount == 1

    def claim_interaction(self, interaction_id: int) -> bool:
        """True for the first process to ask about this interaction; rows older than a day are let go now and then."""
        if interaction_id % 256 == 0:
            self._execute("DELETE FROM interactions WHERE handled_at < ?", (utc_text(dt.datetime.now(dt.UTC) - INTERACTIONS_KEPT),))
        return self._execute("INSERT INTO interactions (id, handled_at) VALUES (?, ?) ON CONFLICT(id) DO NOTHING", (interaction_id, _utcnow())).rowcount == 1

    # --- personal reminders (DMs) -----------------------------------------------------
    def follow(self, user_id: int, what: str, key: str, label: str, lead: int) -> bool:
        """Follow a talk or an author (again: the lead is updated); True when it is new."""
        existed = self._one("SELECT 1 FROM follows WHERE user_id = ? AND what = ? AND key = ?", (user_id, what, key)) is not None
        self._execute(
            "INSERT INTO follows (user_id, what, key, label, lead, created_at) VALUES (?, ?, ?, ?, ?, ?) "
            "ON CONFLICT(user_id, what, key) DO UPDATE SET lead = excluded.lead, label = excluded.label",
            (user_id, what, key, label[:200], lead, _utcnow()),
        )
        return not existed

    def unfollow(self, user_id: int, what: str | None = None, key: str | None = None) -> int:
        """Stop following one thing, or everything (what and key None); how many follows went."""
        if what is None:
            return self._execute("DELETE FROM follows WHERE user_id = ?", (user_id,)).rowcount
        return self._execute("DELETE FROM follows WHERE user_id = ? AND what = ? AND key = ?", (user_id, what, key)).rowcount

    def follows_of(self, user_id: int) -> list[Follow]:
        found = self._all("SELECT user_id, what, key, label, lead FROM follows WHERE user_id = ? ORDER BY created_at, key", (user_id,))
        return [_follow(r) for r in found]

    def all_follows(self) -> list[Follow]:
        found = self._all("SELECT user_id, what, key, label, lead FROM follows ORDER BY user_id, created_at, key")
        return [_follow(r) for r in found]

    def dm_channel(self, user_id: int) -> DmChannel | None:
        found = self._one("SELECT user_id, channel_id, closed, welcomed FROM dm_channels WHERE user_id = ?", (user_id,))
        return DmChannel(found[0], found[1], bool(found[2]), bool(found[3])) if found else None

    def set_dm_channel(self, user_id: int, *, channel_id: int | None = None, closed: bool | None = None, welcomed: bool | None = None) -> DmChannel:
        """Cache a user's DM channel (one request per DM, not two) and whether they accept DMs."""
        changes = {"channel_id": channel_id, "closed": None if closed is None else int(closed), "welcomed": None if welcomed is None else int(welcomed)}
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                self._db.execute("INSERT OR IGNORE INTO dm_channels (user_id, updated_at) VALUES (?, ?)", (user_id, _utcnow()))
                for column, value in changes.items():
                    if value is not None:
                        self._db.execute(f"UPDATE dm_channels SET {column} = ?, updated_at = ? WHERE user_id = ?", (value, _utcnow(), user_id))
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
        found = self.dm_channel(user_id)
        assert found is not None
        return found

    # --- per-guild settings ----------------------------------------------------------
    def overrides(self, guild_id: int) -> GuildOverrides:
        found = self._one("SELECT guild_id, channel_id, leads, enabled, role_id FROM guild_settings WHERE guild_id = ?", (guild_id,))
        return overrides_from_row(found) if found else GuildOverrides(guild_id)

    def all_overrides(self) -> dict[int, GuildOverrides]:
        found = self._all("SELECT guild_id, channel_id, leads, enabled, role_id FROM guild_settings ORDER BY guild_id")
        return {row[0]: overrides_from_row(row) for row in found}

    def set_override(
        self,
        guild_id: int,
        *,
        channel_id: int | None = None,
        leads: tuple[int, ...] | None = None,
        enabled: bool | None = None,
        role_id: int | None = None,
    ) -> GuildOverrides:
        """Change the given fields only (None leaves a field as it is)."""
        changes = {"channel_id": channel_id, "enabled": None if enabled is None else int(enabled), "role_id": role_id}
        if leads is not None:
            changes["leads"] = leads_text(leads)
        changes = {k: v for k, v in changes.items() if v is not None}
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                self._db.execute("INSERT OR IGNORE INTO guild_settings (guild_id) VALUES (?)", (guild_id,))
                for column, value in changes.items():
                    self._db.execute(f"UPDATE guild_settings SET {column} = ? WHERE guild_id = ?", (value, guild_id))
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
        return self.overrides(guild_id)

    # --- session Q&A ------------------------------------------------------------------
    def _transaction(self, work: Callable[[sqlite3.Connection], T]) -> T:
        """Run `work` in one write transaction: all of it is stored, or none (also across processes)."""
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                result = work(self._db)
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
        return result

    def add_question(
        self, guild_id: int, talk_id: str, user_id: int, text: str, anonymous: bool, now: dt.datetime, *, limits: QuestionLimits | None = None
    ) -> Question:
        """Store a new open question; with `limits`, QuestionLimitReached (and nothing stored) when one is reached."""

        def insert(db: sqlite3.Connection) -> int:
            if limits is not None:
                if _count_since(db, user_id, limits.since) >= limits.recent:
                    raise QuestionLimitReached("recent")
                if _count_open(db, user_id, talk_id) >= limits.open_per_talk:
                    raise QuestionLimitReached("open_per_talk")
            cur = db.execute(
                "INSERT INTO questions (guild_id, talk_id, user_id, text, anonymous, created_at) VALUES (?, ?, ?, ?, ?, ?)",
                (guild_id, talk_id, user_id, text, int(anonymous), utc_text(now)),
            )
            assert cur.lastrowid is not None
            return cur.lastrowid

        found = self.question(self._transaction(insert))
        assert found is not None
        return found

    def question(self, qid: int) -> Question | None:
        """The question, whatever its guild: callers compare `guild_id` with the guild that asks."""
        found = self._one(f"SELECT {_QUESTION_COLUMNS} FROM questions WHERE id = ?", (qid,))
        return _question(found) if found else None

    def set_question_message(self, qid: int, channel_id: int | None, message_id: int | None) -> None:
        """Where the question was posted, so that its message can be edited or removed later."""
        self._execute("UPDATE questions SET channel_id = ?, message_id = ? WHERE id = ?", (channel_id, message_id, qid))

    def toggle_vote(self, qid: int, user_id: int) -> tuple[bool, int]:
        """Give the user's vote, or take it back if given: (voted now?, the new count), in one transaction.

        An unknown question records nothing and answers (False, 0).
        """

        def toggle(db: sqlite3.Connection) -> tuple[bool, int]:
            if db.execute("SELECT 1 FROM questions WHERE id = ?", (qid,)).fetchone() is None:
                return False, 0
            voted = db.execute("INSERT OR IGNORE INTO question_votes (question_id, user_id) VALUES (?, ?)", (qid, user_id)).rowcount == 1
            if not voted:
                db.execute("DELETE FROM question_votes WHERE question_id = ? AND user_id = ?", (qid, user_id))
            count = db.execute("SELECT COUNT(*) FROM question_votes WHERE question_id = ?", (qid,)).fetchone()[0]
            db.execute("UPDATE questions SET votes = ? WHERE id = ?", (count, qid))
            return voted, count

        return self._transaction(toggle)

    def voted(self, qid: int, user_id: int) -> bool:
        return self._one("SELECT 1 FROM question_votes WHERE question_id = ? AND user_id = ?", (qid, user_id)) is not None

    def top_questions(self, guild_id: int, talk_ids: Collection[str], limit: int = 10, states: Sequence[str] = ("open",)) -> list[Question]:
        """The guild's questions for these talks, most votes first, then the oldest."""
        talks, wanted = list(dict.fromkeys(talk_ids)), list(states)
        if not talks or not wanted or limit <= 0:
            return []
        query = (
            f"SELECT {_QUESTION_COLUMNS} FROM questions WHERE guild_id = ? AND talk_id IN ({', '.join('?' * len(talks))}) "
            f"AND state IN ({', '.join('?' * len(wanted))}) ORDER BY votes DESC, created_at, id LIMIT ?"
        )
        return [_question(r) for r in self._all(query, (guild_id, *talks, *wanted, limit))]

    def set_question_state(self, qid: int, state: str) -> None:
        if state not in QUESTION_STATES:
            raise ValueError(f"a question's state is one of {', '.join(QUESTION_STATES)}, not {state!r}")
        self._execute("UPDATE questions SET state = ? WHERE id = ?", (state, qid))

    def questions_since(self, user_id: int, since: dt.datetime) -> int:
        """How many questions (in any state, any guild) the user asked at or after `since`."""
        with self._lock:
            return _count_since(self._db, user_id, since)

    def open_questions(self, user_id: int, talk_id: str) -> int:
        with self._lock:
            return _count_open(self._db, user_id, talk_id)


def _count_since(db: sqlite3.Connection, user_id: int, since: dt.datetime) -> int:
    return db.execute("SELECT COUNT(*) FROM questions WHERE user_id = ? AND created_at >= ?", (user_id, utc_text(since))).fetchone()[0]


def _count_open(db: sqlite3.Connection, user_id: int, talk_id: str) -> int:
    return db.execute("SELECT COUNT(*) FROM questions WHERE user_id = ? AND talk_id = ? AND state = 'open'", (user_id, talk_id)).fetchone()[0]


_QUESTION_COLUMNS = "id, guild_id, talk_id, user_id, text, anonymous, created_at, state, votes, channel_id, message_id"


def _question(row: Sequence) -> Question:
    qid, guild_id, talk_id, user_id, text, anonymous, created_at, state, votes, channel_id, message_id = row
    return Question(qid, guild_id, talk_id, user_id, text, bool(anonymous), dt.datetime.fromisoformat(created_at), state, votes, channel_id, message_id)


def _add_columns(db: sqlite3.Connection, statements: Sequence[str]) -> None:
    """Run the ALTER TABLE ... ADD COLUMN statements whose column is missing (a half-migrated file is finished)."""
    for statement in statements:
        table, column = statement.split()[2], statement.split("ADD COLUMN ")[1].split()[0]
        if column not in {r[1] for r in db.execute(f"PRAGMA table_info({table})")}:
            db.execute(statement)


def _follow(row: Sequence) -> Follow:
    return Follow(row[0], row[1], row[2], row[3], row[4])


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


def _explain(path: Path, err: Exception) -> str:
    """One message an operator can act on; the file itself is never touched."""
    text = str(err)
    if "readonly" in text or "read-only" in text or isinstance(err, PermissionError) or "unable to open" in text:
        return (
            f"state file {path} cannot be written ({text}). The bot keeps its reminder ledger there: "
            f"make {path.parent} writable by the bot's user, or point STATE_PATH at a writable file."
        )
    if "full" in text or "disk I/O" in text:
        return f"state file {path} cannot be written ({text}): free some disk space, then start the bot again."
    return (
        f"state file {path} is not a usable SQLite database ({text}). It holds the reminder ledger, so the bot "
        f"does not delete it: move it aside (e.g. `mv {path} {path}.broken`) to start with an empty ledger, "
        f"or restore it from a backup, then start the bot again."
    )
