"""SQLite state: the reminder ledger, per-guild settings and small named values.

The ledger is what makes reminders exactly-once: a row is claimed before a send and marked sent
after Discord confirms, so a restart knows what is done, what to re-send (same nonce) and what to
skip. Every row carries its run ("live", or one rehearsal's key) and its guild, so a rehearsal never
silences the real day and one guild never sees another's rows. Autocommit and WAL: a killed process
leaves nothing half-written. The file is the operator's data: it is never deleted or rewritten
behind their back; a file that cannot be used stops the bot with a StateError that says what to do.
"""

from __future__ import annotations

import datetime as dt
import logging
import sqlite3
import threading
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

log = logging.getLogger(__name__)

SCHEMA_VERSION = 3
LIVE = "live"

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
    updated_at  TEXT NOT NULL
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
"""

# Version 1 (no user_version) had no run, guild or role columns. Its rows cannot tell a rehearsal
# from the live day, so they move to the run 'legacy', which nothing reads: they silence nothing.
_MIGRATE_1_TO_2 = (
    "ALTER TABLE ledger ADD COLUMN run TEXT NOT NULL DEFAULT 'legacy'",
    "ALTER TABLE ledger ADD COLUMN guild_id INTEGER NOT NULL DEFAULT 0",
    "ALTER TABLE guild_settings ADD COLUMN role_id INTEGER",
)
_INDEXES = """
CREATE INDEX IF NOT EXISTS ledger_by_guild ON ledger (run, guild_id, updated_at);
CREATE INDEX IF NOT EXISTS ledger_by_due ON ledger (run, due_at);
"""


class StateError(Exception):
    """The state file cannot be used; the message names the file and what to do."""


class State(StrEnum):
    CLAIMED = "claimed"  # recorded, send in flight or unconfirmed
    SENT = "sent"  # Discord confirmed
    FAILED = "failed"  # last attempt failed for a passing reason (429, 5xx, timeout); retried with the same nonce
    REFUSED = "refused"  # Discord refused for good (missing permission, unknown channel): not retried
    SKIPPED = "skipped"  # deliberately not sent (stale, superseded, talk over)


DONE = frozenset({State.SENT, State.SKIPPED, State.REFUSED})


@dataclass(frozen=True, slots=True)
class LedgerRow:
    id: str
    run: str
    guild_id: int
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
class NewRow:
    """What a claim or a skip records about one reminder."""

    id: str
    run: str
    guild_id: int
    talk_id: str
    lead: int
    channel_id: int
    nonce: str
    due_at: dt.datetime


@dataclass(frozen=True, slots=True)
class Follow:
    """A user's wish to be reminded by DM: one talk, or every talk of an author."""

    user_id: int
    what: str  # "talk" | "author"
    key: str  # talk id, or folded author name
    label: str
    lead: int


@dataclass(frozen=True, slots=True)
class DmChannel:
    user_id: int
    channel_id: int | None
    closed: bool
    welcomed: bool


@dataclass(frozen=True, slots=True)
class GuildOverrides:
    """Per-guild choices that win over the environment; None means "use the default".

    `role_id` 0 means "mention no role" (the environment's role is not used in this guild).
    """

    guild_id: int
    channel_id: int | None = None
    leads: tuple[int, ...] | None = None
    enabled: bool | None = None
    role_id: int | None = None


def _utcnow() -> str:
    return dt.datetime.now(dt.UTC).isoformat()


def utc_text(instant: dt.datetime) -> str:
    """Instants are stored in UTC, so that text order is time order."""
    return instant.astimezone(dt.UTC).isoformat()


_COLUMNS = "id, run, guild_id, talk_id, lead, channel_id, nonce, due_at, state, attempts, message_id, error, updated_at"


def _row(values: Sequence) -> LedgerRow:
    rid, run, guild_id, talk_id, lead, channel_id, nonce, due_at, state, attempts, message_id, error, updated_at = values
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
    )


def _values(row: NewRow, state: State, attempts: int, error: str | None) -> tuple:
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
    )


class Store:
    """One SQLite file; safe to use from one event loop and helper threads (one lock, short calls)."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
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
                columns = {r[1] for r in db.execute("PRAGMA table_info(ledger)")}
                for statement in _MIGRATE_1_TO_2:
                    column = statement.split("ADD COLUMN ")[1].split()[0]
                    table = statement.split()[2]
                    existing = columns if table == "ledger" else {r[1] for r in db.execute(f"PRAGMA table_info({table})")}
                    if column not in existing:
                        db.execute(statement)
                log.info("state: %s migrated to schema version %d (earlier reminders kept as run 'legacy')", self.path, SCHEMA_VERSION)
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
        with self._lock:
            try:
                return self._db.execute(query, args)
            except sqlite3.OperationalError as err:
                if "readonly" in str(err) or "disk" in str(err) or "full" in str(err):
                    raise StateError(_explain(self.path, err)) from None
                raise

    # --- ledger ---------------------------------------------------------------------
    def claim(self, row: NewRow) -> bool:
        """Record a reminder as about to be sent; False if it is already in the ledger (any state)."""
        try:
            self._execute(f"INSERT INTO ledger ({_COLUMNS}) VALUES ({', '.join('?' * 13)})", _values(row, State.CLAIMED, 1, None))
        except sqlite3.IntegrityError:
            return False
        return True

    def retry(self, rid: str) -> LedgerRow | None:
        """Take up an unconfirmed or failed row again (same nonce); None if it is done or absent."""
        cur = self._execute(
            "UPDATE ledger SET state = ?, attempts = attempts + 1, updated_at = ? WHERE id = ? AND state IN (?, ?)",
            (State.CLAIMED.value, _utcnow(), rid, State.CLAIMED.value, State.FAILED.value),
        )
        return self.get(rid) if cur.rowcount else None

    def mark_sent(self, rid: str, message_id: str | int | None) -> None:
        self._set(rid, State.SENT, message_id=None if message_id is None else str(message_id), error=None)

    def mark_failed(self, rid: str, error: str, *, permanent: bool = False) -> None:
        self._set(rid, State.REFUSED if permanent else State.FAILED, error=error[:500])

    def skip_many(self, rows: Iterable[tuple[NewRow, str]]) -> int:
        """Record reminders that will never be sent, in one transaction; rows already sent stay sent."""
        values = [_values(row, State.SKIPPED, 0, reason) for row, reason in rows]
        if not values:
            return 0
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                self._db.executemany(
                    f"INSERT INTO ledger ({_COLUMNS}) VALUES ({', '.join('?' * 13)}) "
                    "ON CONFLICT(id) DO UPDATE SET state = excluded.state, "
                    "error = COALESCE(ledger.error || ' / ', '') || excluded.error, updated_at = excluded.updated_at "
                    "WHERE ledger.state NOT IN ('sent', 'refused', 'skipped')",
                    values,
                )
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
        return len(values)

    def _set(self, rid: str, state: State, **fields: str | None) -> None:
        assignments = ", ".join(f"{name} = ?" for name in fields)
        self._execute(f"UPDATE ledger SET state = ?, {assignments}, updated_at = ? WHERE id = ?", (state.value, *fields.values(), _utcnow(), rid))

    def get(self, rid: str) -> LedgerRow | None:
        found = self._execute(f"SELECT {_COLUMNS} FROM ledger WHERE id = ?", (rid,)).fetchone()
        return _row(found) if found else None

    def get_many(self, ids: Iterable[str]) -> dict[str, LedgerRow]:
        """The rows of these ids that exist (one query per 500 ids)."""
        wanted = list(dict.fromkeys(ids))
        found: dict[str, LedgerRow] = {}
        for i in range(0, len(wanted), 500):
            chunk = wanted[i : i + 500]
            for values in self._execute(f"SELECT {_COLUMNS} FROM ledger WHERE id IN ({', '.join('?' * len(chunk))})", chunk).fetchall():
                row = _row(values)
                found[row.id] = row
        return found

    def rows(self, *states: State, run: str | None = None, guild_id: int | None = None) -> list[LedgerRow]:
        """Ledger rows (of the given states, run and guild, or all), oldest due first."""
        where, args = _where(states, run, guild_id)
        found = self._execute(f"SELECT {_COLUMNS} FROM ledger{where} ORDER BY due_at, id", args).fetchall()
        return [_row(r) for r in found]

    def last_sent(self, run: str, guild_id: int) -> LedgerRow | None:
        found = self._execute(
            f"SELECT {_COLUMNS} FROM ledger WHERE run = ? AND guild_id = ? AND state = ? ORDER BY updated_at DESC LIMIT 1",
            (run, guild_id, State.SENT.value),
        ).fetchone()
        return _row(found) if found else None

    def failures(self, run: str, guild_id: int, limit: int = 5) -> list[LedgerRow]:
        """The guild's most recent rows with an error, oldest first."""
        found = self._execute(
            f"SELECT {_COLUMNS} FROM ledger WHERE run = ? AND guild_id = ? AND error IS NOT NULL AND state != ? ORDER BY updated_at DESC LIMIT ?",
            (run, guild_id, State.SENT.value, limit),
        ).fetchall()
        return [_row(r) for r in reversed(found)]

    def count_before(self, run: str, instant: dt.datetime, guild_ids: Iterable[int]) -> int:
        """How many of these guilds' reminders due before `instant` are already in the ledger."""
        guilds = list(guild_ids)
        if not guilds:
            return 0
        query = f"SELECT COUNT(*) FROM ledger WHERE run = ? AND due_at < ? AND guild_id IN ({', '.join('?' * len(guilds))})"
        return self._execute(query, (run, utc_text(instant), *guilds)).fetchone()[0]

    def earliest_due(self, run: str) -> dt.datetime | None:
        found = self._execute("SELECT MIN(due_at) FROM ledger WHERE run = ?", (run,)).fetchone()
        return dt.datetime.fromisoformat(found[0]) if found and found[0] else None

    def forget_run(self, run: str) -> int:
        """Drop one run's rows (a rehearsal that starts over); never touches the live run."""
        if run == LIVE:
            raise ValueError("the live ledger is never forgotten")
        return self._execute("DELETE FROM ledger WHERE run = ?", (run,)).rowcount

    # --- small named values (the rehearsal's anchor) ------------------------------------
    def get_meta(self, key: str) -> str | None:
        found = self._execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return found[0] if found else None

    def set_meta(self, key: str, value: str) -> None:
        self._execute("INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET value = excluded.value", (key, value))

    # --- personal reminders (DMs) -----------------------------------------------------
    def follow(self, user_id: int, what: str, key: str, label: str, lead: int) -> bool:
        """Follow a talk or an author (again: the lead is updated); True when it is new."""
        existed = self._execute("SELECT 1 FROM follows WHERE user_id = ? AND what = ? AND key = ?", (user_id, what, key)).fetchone() is not None
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
        found = self._execute("SELECT user_id, what, key, label, lead FROM follows WHERE user_id = ? ORDER BY created_at, key", (user_id,)).fetchall()
        return [_follow(r) for r in found]

    def all_follows(self) -> list[Follow]:
        found = self._execute("SELECT user_id, what, key, label, lead FROM follows ORDER BY user_id, created_at, key").fetchall()
        return [_follow(r) for r in found]

    def dm_channel(self, user_id: int) -> DmChannel | None:
        found = self._execute("SELECT user_id, channel_id, closed, welcomed FROM dm_channels WHERE user_id = ?", (user_id,)).fetchone()
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
        found = self._execute("SELECT guild_id, channel_id, leads, enabled, role_id FROM guild_settings WHERE guild_id = ?", (guild_id,)).fetchone()
        return _overrides(found) if found else GuildOverrides(guild_id)

    def all_overrides(self) -> dict[int, GuildOverrides]:
        found = self._execute("SELECT guild_id, channel_id, leads, enabled, role_id FROM guild_settings ORDER BY guild_id").fetchall()
        return {row[0]: _overrides(row) for row in found}

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
            changes["leads"] = ",".join(str(x) for x in sorted(set(leads), reverse=True))
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


def _overrides(found: Sequence) -> GuildOverrides:
    guild_id, channel_id, leads, enabled, role_id = found
    parsed = tuple(int(x) for x in leads.split(",")) if leads else None
    return GuildOverrides(guild_id, channel_id, parsed, None if enabled is None else bool(enabled), role_id)


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
