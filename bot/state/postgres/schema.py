"""The PostgreSQL tables, one migration a version, applied by one process at a time."""

from __future__ import annotations

import logging

from psycopg_pool import ConnectionPool

from bot.state.base import StateError

log = logging.getLogger("bot.state.postgres")  # the backend keeps the logger name it had before it was split in parts

SCHEMA_VERSION = 3  # PostgreSQL's own numbering: 1 holds everything SQLite's version 4 holds; 2: the ledger's owner and lease_until; 3: interactions
_MIGRATION_LOCK = (0x5E55, 1)  # advisory lock (two-int form): one process migrates at a time

# Each entry brings the schema from version i to i + 1. Text keys use the C collation so that the
# order is the byte order, as in SQLite. Instants are timestamptz, read back in UTC.
_MIGRATIONS: tuple[str, ...] = (
    """
    CREATE TABLE ledger (
        id          TEXT COLLATE "C" PRIMARY KEY,
        run         TEXT NOT NULL DEFAULT 'live',
        guild_id    BIGINT NOT NULL DEFAULT 0,
        talk_id     TEXT NOT NULL,
        lead        INTEGER NOT NULL,
        channel_id  BIGINT NOT NULL,
        nonce       TEXT NOT NULL,
        due_at      TIMESTAMPTZ NOT NULL,
        state       TEXT NOT NULL,
        attempts    INTEGER NOT NULL DEFAULT 0,
        message_id  TEXT,
        error       TEXT,
        updated_at  TIMESTAMPTZ NOT NULL
    );
    CREATE INDEX ledger_by_guild ON ledger (run, guild_id, updated_at);
    CREATE INDEX ledger_by_due ON ledger (run, due_at);
    CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
    CREATE TABLE follows (
        user_id     BIGINT NOT NULL,
        what        TEXT NOT NULL,
        key         TEXT COLLATE "C" NOT NULL,
        label       TEXT NOT NULL,
        lead        INTEGER NOT NULL,
        created_at  TIMESTAMPTZ NOT NULL,
        PRIMARY KEY (user_id, what, key)
    );
    CREATE TABLE dm_channels (
        user_id     BIGINT PRIMARY KEY,
        channel_id  BIGINT,
        closed      BOOLEAN NOT NULL DEFAULT FALSE,
        welcomed    BOOLEAN NOT NULL DEFAULT FALSE,
        updated_at  TIMESTAMPTZ NOT NULL
    );
    CREATE TABLE guild_settings (
        guild_id    BIGINT PRIMARY KEY,
        channel_id  BIGINT,
        leads       TEXT,
        enabled     BOOLEAN,
        role_id     BIGINT
    );
    CREATE TABLE questions (
        id          BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        guild_id    BIGINT NOT NULL,
        talk_id     TEXT NOT NULL,
        user_id     BIGINT NOT NULL,
        text        TEXT NOT NULL,
        anonymous   BOOLEAN NOT NULL DEFAULT FALSE,
        created_at  TIMESTAMPTZ NOT NULL,
        state       TEXT NOT NULL DEFAULT 'open',
        votes       INTEGER NOT NULL DEFAULT 0,
        channel_id  BIGINT,
        message_id  BIGINT
    );
    CREATE INDEX questions_by_talk ON questions (guild_id, talk_id, state, votes DESC, created_at);
    CREATE INDEX questions_by_user ON questions (user_id, created_at);
    CREATE INDEX questions_by_user_talk ON questions (user_id, talk_id, state);
    CREATE TABLE question_votes (
        question_id BIGINT NOT NULL REFERENCES questions (id) ON DELETE CASCADE,
        user_id     BIGINT NOT NULL,
        PRIMARY KEY (question_id, user_id)
    );
    """,
    # 2: leases. Earlier rows get NULL: no lease, which counts as expired (any process may take them up).
    """
    ALTER TABLE ledger ADD COLUMN owner TEXT, ADD COLUMN lease_until TIMESTAMPTZ;
    """,
    # 3: which process answers an interaction that reaches several (two processes on one shard).
    """
    CREATE TABLE interactions (id BIGINT PRIMARY KEY, handled_at TIMESTAMPTZ NOT NULL DEFAULT now());
    """,
)


def migrate(pool: ConnectionPool, where: str) -> None:
    """Bring the database to SCHEMA_VERSION under an advisory lock; a database from a newer bot is refused."""
    with pool.connection() as conn, conn.transaction():
        conn.execute("SELECT pg_advisory_xact_lock(%s, %s)", _MIGRATION_LOCK)
        conn.execute("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)")
        found = conn.execute("SELECT version FROM schema_version").fetchone()
        version = found[0] if found else 0
        if version > SCHEMA_VERSION:
            raise StateError(f"state {where} has schema version {version}, newer than this bot's ({SCHEMA_VERSION}); update the bot")
        for step in range(version, SCHEMA_VERSION):
            conn.execute(_MIGRATIONS[step])
        if found is None:
            conn.execute("INSERT INTO schema_version (version) VALUES (%s)", (SCHEMA_VERSION,))
        elif version < SCHEMA_VERSION:
            conn.execute("UPDATE schema_version SET version = %s", (SCHEMA_VERSION,))
    if version < SCHEMA_VERSION:
        log.info("state: %s migrated from schema version %d to %d", where, version, SCHEMA_VERSION)
