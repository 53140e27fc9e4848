"""The SQLite file's tables and indexes, and the migrations from earlier versions of the file."""

from __future__ import annotations

import logging
import sqlite3
from collections.abc import Sequence
from pathlib import Path

log = logging.getLogger("bot.state.store")  # the backend keeps the logger name it had before it was split in parts

SCHEMA_VERSION = 6  # 4: questions and question_votes (session Q&A); 5: the ledger's owner and lease_until; 6: interactions

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


def migrate(db: sqlite3.Connection, path: Path) -> None:
    """Bring the file to SCHEMA_VERSION in one write transaction; a file from a newer bot is refused."""
    version = db.execute("PRAGMA user_version").fetchone()[0]
    if version > SCHEMA_VERSION:
        raise sqlite3.DatabaseError(f"schema version {version} is newer than this bot's ({SCHEMA_VERSION}); update the bot")
    db.execute("BEGIN IMMEDIATE")
    try:
        had_ledger = db.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'ledger'").fetchone() is not None
        if had_ledger and version < 2:
            _add_columns(db, _MIGRATE_1_TO_2)
            log.info("state: %s migrated to schema version %d (earlier reminders kept as run 'legacy')", path, SCHEMA_VERSION)
        if had_ledger and version < 5:
            _add_columns(db, _MIGRATE_TO_5)
            log.info("state: %s migrated from schema version %d to %d (reminder leases)", path, version, SCHEMA_VERSION)
        for statement in (_SCHEMA + _INDEXES).split(";"):
            if statement.strip():
                db.execute(statement)
        db.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
        db.execute("COMMIT")
    except BaseException:
        db.execute("ROLLBACK")
        raise


def _add_columns(db: sqlite3.Connection, statements: Sequence[str]) -> None:
    """Run the ALTER TABLE ... ADD COLUMN statements whose column is missing (a half-migrated file is finished)."""
    for statement in statements:
        table, column = statement.split()[2], statement.split("ADD COLUMN ")[1].split()[0]
        if column not in {r[1] for r in db.execute(f"PRAGMA table_info({table})")}:
            db.execute(statement)
