"""PostgreSQL state: the same ledger, settings, follows and Q&A as the SQLite store, shared by several processes.

Every write that must happen once is decided by the database, not by a process: a claim is an
INSERT ... ON CONFLICT DO NOTHING (one process wins) that records the claimer and its lease, taking a
row up again is one UPDATE ... WHERE (the lease has expired or is ours) ... RETURNING, with leases on
the database's clock (`now()`), so that clock skew between hosts does not matter; a vote is one transaction holding the
question's row lock, and a question's limits are counted under a per-user advisory lock in the
insert's own transaction. Calls are synchronous through a psycopg_pool ConnectionPool, like the
SQLite store's; the URL's password never reaches a message, a log line or a repr.

When the database goes away while the bot serves, a call must not hold a slash command past Discord's
3 s deadline: it waits at most CALL_TIMEOUT for a connection, and once one call has failed, the
stores of this process on that database fail at once (StateError, "unreachable since ...") and let
one call a second try the database again (see `_Health`). The pool gives up a reconnection after
RECONNECT_TIMEOUT, so that the next try connects at once instead of waiting out a long backoff. The
outage is logged once when it starts and once when it ends, not per attempt.
"""

from __future__ import annotations

import datetime as dt
import logging
import threading
import time
from collections.abc import Callable, Collection, Iterable, Sequence
from typing import TypeVar

import psycopg
from psycopg.conninfo import conninfo_to_dict
from psycopg_pool import ConnectionPool, PoolTimeout

from bot.state.base import (
    DEFAULT_LEASE_SECONDS,
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
    leads_text,
    new_owner,
    overrides_from_row,
)

log = logging.getLogger(__name__)

SCHEMA_VERSION = 3  # PostgreSQL's own numbering: 1 holds everything SQLite's version 4 holds; 2: the ledger's owner and lease_until; 3: interactions
T = TypeVar("T")
_MIGRATION_LOCK = (0x5E55, 1)  # advisory lock (two-int form): one process migrates at a time
_QUESTION_LOCK = 0x5E56  # advisory lock class for one user's asks: (class, user_id % 2**31)
CALL_TIMEOUT = 1.5  # seconds a call made while serving waits for a connection: a command still answers within Discord's 3 s
RETRY_SECONDS = 1.0  # while the database is unreachable, calls fail at once and one call every this often tries it again
RECONNECT_TIMEOUT = 3.0  # psycopg_pool's reconnect_timeout: its backoff gives up soon, so that a try after an outage connects at once

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

_COLUMNS = "id, run, guild_id, talk_id, lead, channel_id, nonce, due_at, state, attempts, message_id, error, updated_at, owner, lease_until"
_QUESTION_COLUMNS = "id, guild_id, talk_id, user_id, text, anonymous, created_at, state, votes, channel_id, message_id"
_INSERT = f"INSERT INTO ledger ({_COLUMNS}) VALUES ({', '.join(['%s'] * 14)}, now() + make_interval(secs => %s))"
_TAKEN_UP = (State.CLAIMED.value, State.FAILED.value)  # the states a retry (or a failure) applies to


# A server that stops answering without closing the connection (a dead host, a dropped network) is
# noticed by the operating system: keepalives on idle connections, and a cap on unacknowledged data
# for a query in flight. Each applies unless STATE_URL sets it.
NETWORK_DEFAULTS = {"keepalives": 1, "keepalives_idle": 10, "keepalives_interval": 5, "keepalives_count": 3, "tcp_user_timeout": 15_000}


def _network_defaults(url: str) -> dict[str, int]:
    given = conninfo_to_dict(url)
    return {name: value for name, value in NETWORK_DEFAULTS.items() if name not in given}


def describe(url: str) -> str:
    """'database D on host:port as user U': enough to find the database, never the password."""
    try:
        info = conninfo_to_dict(url)
    except psycopg.ProgrammingError:
        return "the database in STATE_URL"
    host = info.get("host") or "localhost"
    where = f"{host}:{info['port']}" if info.get("port") else host
    return f"database {info.get('dbname') or info.get('user') or '(default)'} on {where}" + (f" as {info['user']}" if info.get("user") else "")


def _scrub(text: str, url: str) -> str:
    try:
        password = conninfo_to_dict(url).get("password")
    except psycopg.ProgrammingError:
        return text
    return text.replace(str(password), "****") if password else text


def _quiet_pool_log() -> None:
    """psycopg_pool warns at every reconnection attempt; _Health logs an outage once instead (all of it at DEBUG)."""
    logging.getLogger("psycopg.pool").setLevel(logging.DEBUG if log.isEnabledFor(logging.DEBUG) else logging.ERROR)


def _first_line(err: Exception, url: str) -> str:
    text = str(err).strip()
    return _scrub(text.splitlines()[0], url) if text else type(err).__name__


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def _utc(instant: dt.datetime) -> dt.datetime:
    return instant.astimezone(dt.UTC)


def _row(values: Sequence) -> LedgerRow:
    rid, run, guild_id, talk_id, lead, channel_id, nonce, due_at, state, attempts, message_id, error, updated_at, owner, until = values
    return LedgerRow(
        rid, run, guild_id, talk_id, lead, channel_id, nonce, _utc(due_at), State(state), attempts, message_id, error, _utc(updated_at),
        owner, _utc(until) if until is not None else None,
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
        _utc(row.due_at),
        state.value,
        attempts,
        None,
        error,
        _now(),
        owner,
        lease,
    )


def _question(row: Sequence) -> Question:
    qid, guild_id, talk_id, user_id, text, anonymous, created_at, state, votes, channel_id, message_id = row
    return Question(qid, guild_id, talk_id, user_id, text, bool(anonymous), _utc(created_at), state, votes, channel_id, message_id)


class _Health:
    """What the stores of this process know about one database: reachable, or unreachable since when.

    Shared by the stores on one database (the reminders, /remind, Q&A and the interaction claims each
    have one), so that an outage fails every call at once, is tried again by one call at a time, and is
    logged once, when it starts and when it ends.
    """

    def __init__(self, where: str) -> None:
        self.where = where
        self._lock = threading.Lock()
        self.down_since: dt.datetime | None = None
        self._down_at = 0.0  # monotonic
        self._next_try = 0.0
        self._trying = False

    @staticmethod
    def of(where: str) -> _Health:
        with _HEALTH_LOCK:
            return _HEALTH.setdefault(where, _Health(where))

    def admit(self) -> bool:
        """True: go ahead (reachable, or this call is the one that tries again); False: fail at once."""
        with self._lock:
            if self.down_since is None:
                return True
            if self._trying or time.monotonic() < self._next_try:
                return False
            self._trying = True
            return True

    def failed(self, reason: str) -> None:
        with self._lock:
            self._trying = False
            self._next_try = time.monotonic() + RETRY_SECONDS
            if self.down_since is not None:
                return
            self.down_since, self._down_at = _now(), time.monotonic()
        log.warning(
            "state: %s is unreachable (%s); commands that write answer with an apology and reminders wait, trying it again every %g s",
            self.where,
            reason,
            RETRY_SECONDS,
        )

    def answered(self, reached: bool) -> None:
        """A call is over: `reached` the database (it is up), or ended before it knew (let another call try)."""
        if self.down_since is None:  # the usual case, without taking the lock
            return
        with self._lock:
            if self.down_since is None:
                return
            self._trying = False
            if not reached:
                return
            self.down_since = None
            lasted = time.monotonic() - self._down_at
        log.warning("state: %s is reachable again after %.1f s", self.where, lasted)

    def since_text(self) -> str:
        since = self.down_since
        return f"{since:%H:%M:%S} UTC" if since is not None else "a moment ago"


_HEALTH: dict[str, _Health] = {}  # by describe(url): host, port, database and user, never a password
_HEALTH_LOCK = threading.Lock()


class PostgresStore:
    """One PostgreSQL database reached through a connection pool; safe from threads and from several processes.

    `owner` names this process in the ledger's leases (a fresh one per store unless given).
    """

    def __init__(self, url: str, *, max_connections: int = 8, timeout: float = 10.0, call_timeout: float = CALL_TIMEOUT, owner: str | None = None) -> None:
        """`timeout` bounds the checks at start (connect, open the pool, migrate); `call_timeout` each call's wait for a connection afterwards."""
        self.owner = owner or new_owner()
        self._where = describe(url)
        self._url = url
        self._call_timeout = call_timeout
        try:  # one direct connection first: its error says why (refused, password, no such database)
            psycopg.connect(url, connect_timeout=max(1, int(timeout))).close()
        except psycopg.Error as err:
            raise StateError(self._explain(err)) from None
        _quiet_pool_log()
        self._pool = ConnectionPool(
            url,
            min_size=1,
            max_size=max_connections,
            kwargs={"autocommit": True, **_network_defaults(url)},
            check=ConnectionPool.check_connection,  # a connection the server dropped is replaced, not handed out
            timeout=timeout,
            reconnect_timeout=RECONNECT_TIMEOUT,
            open=False,
            name="state",
        )
        try:
            self._pool.open(wait=True, timeout=timeout)
            self._migrate()
        except (psycopg.Error, PoolTimeout, StateError) as err:
            self._pool.close()
            raise StateError(err.args[0] if isinstance(err, StateError) else self._explain(err)) from None
        self._health = _Health.of(self._where)
        self._health.answered(True)

    def _explain(self, err: Exception) -> str:
        return (
            f"state {self._where} cannot be used ({_scrub(str(err).strip(), self._url)}). The bot keeps its reminder ledger there: "
            "check STATE_URL (host, port, database, user, password, sslmode) and that the server accepts connections, then start the bot again."
        )

    def _migrate(self) -> None:
        with self._pool.connection() as conn, conn.transaction():
            conn.execute("SELECT pg_advisory_xact_lock(%s, %s)", _MIGRATION_LOCK)
            conn.execute("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)")
            found = conn.execute("SELECT version FROM schema_version").fetchone()
            version = found[0] if found else 0
            if version > SCHEMA_VERSION:
                raise StateError(f"state {self._where} has schema version {version}, newer than this bot's ({SCHEMA_VERSION}); update the bot")
            for step in range(version, SCHEMA_VERSION):
                conn.execute(_MIGRATIONS[step])
            if found is None:
                conn.execute("INSERT INTO schema_version (version) VALUES (%s)", (SCHEMA_VERSION,))
            elif version < SCHEMA_VERSION:
                conn.execute("UPDATE schema_version SET version = %s", (SCHEMA_VERSION,))
        if version < SCHEMA_VERSION:
            log.info("state: %s migrated from schema version %d to %d", self._where, version, SCHEMA_VERSION)

    def schema_version(self) -> int:
        return self._one("SELECT version FROM schema_version")[0]

    def close(self) -> None:
        self._pool.close()

    def __repr__(self) -> str:
        return f"PostgresStore({self._where!r})"

    # --- plumbing -------------------------------------------------------------------------
    def _run(self, work: Callable[[psycopg.Connection], T], *, transaction: bool = False) -> T:
        """Run `work` on a pooled connection (in one transaction if asked); a lost server is a StateError, at once while it stays lost."""
        health = self._health
        if not health.admit():
            raise StateError(f"state {self._where} is unreachable (since {health.since_text()}); it is tried again every {RETRY_SECONDS:g} s")
        conn: psycopg.Connection | None = None
        try:
            with self._pool.connection(timeout=self._call_timeout) as conn:
                if not transaction:
                    found = work(conn)
                else:
                    with conn.transaction():
                        found = work(conn)
        except (psycopg.OperationalError, PoolTimeout) as err:
            if conn is None or conn.closed:  # no connection, or the server went away under it (not a cancelled query)
                health.failed(_first_line(err, self._url))
            else:
                health.answered(True)
            raise StateError(self._explain(err)) from None
        except BaseException:
            health.answered(conn is not None)  # the database answered (an error of ours, a constraint); without a connection: unknown
            raise
        health.answered(True)
        return found

    def _execute(self, query: str, args: Sequence | dict = ()) -> int:
        """The statement's row count."""
        return self._run(lambda conn: conn.execute(query, args).rowcount)

    def _one(self, query: str, args: Sequence | dict = ()) -> tuple | None:
        return self._run(lambda conn: conn.execute(query, args).fetchone())

    def _all(self, query: str, args: Sequence | dict = ()) -> list[tuple]:
        return self._run(lambda conn: conn.execute(query, args).fetchall())

    # --- ledger ---------------------------------------------------------------------------
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
            {"claimed": State.CLAIMED.value, "now": _now(), "owner": self.owner, "lease": lease, "id": rid, "states": list(_TAKEN_UP)},
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
            (State.SENT.value, None if message_id is None else str(message_id), _now(), rid),
        )

    def mark_failed(self, rid: str, error: str, *, permanent: bool = False, lease: float = DEFAULT_LEASE_SECONDS) -> None:
        """Only while the row is ours: a passing failure renews our lease (our backoff retries it), a permanent one ends it."""
        state, until = (State.REFUSED, None) if permanent else (State.FAILED, lease)
        self._execute(
            "UPDATE ledger SET state = %s, error = %s, updated_at = %s, lease_until = now() + make_interval(secs => %s) "
            "WHERE id = %s AND owner = %s AND state = ANY(%s)",
            (state.value, error[:500], _now(), until, rid, self.owner, list(_TAKEN_UP)),
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
            f"SELECT {_COLUMNS} FROM ledger WHERE run = %s AND guild_id = %s AND state = %s AND id NOT LIKE '%%|qa-top|%%' ORDER BY updated_at DESC LIMIT 1",
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
        found = self._one("SELECT COUNT(*) FROM ledger WHERE run = %s AND due_at < %s AND guild_id = ANY(%s)", (run, _utc(instant), guilds))
        return found[0] if found else 0

    def earliest_due(self, run: str) -> dt.datetime | None:
        found = self._one("SELECT MIN(due_at) FROM ledger WHERE run = %s", (run,))
        return _utc(found[0]) if found and found[0] else None

    def forget_run(self, run: str) -> int:
        if run == LIVE:
            raise ValueError("the live ledger is never forgotten")
        return self._execute("DELETE FROM ledger WHERE run = %s", (run,))

    # --- small named values ---------------------------------------------------------------
    def get_meta(self, key: str) -> str | None:
        found = self._one("SELECT value FROM meta WHERE key = %s", (key,))
        return found[0] if found else None

    def set_meta(self, key: str, value: str) -> None:
        self._execute("INSERT INTO meta (key, value) VALUES (%s, %s) ON CONFLICT (key) DO UPDATE SET value = excluded.value", (key, value))

    def swap_meta(self, key: str, expected: str | None, value: str) -> bool:
        """Set `key` to `value` only if it still holds `expected` (None: only if absent); False if another process got there first."""
        if expected is None:
            return self._execute("INSERT INTO meta (key, value) VALUES (%s, %s) ON CONFLICT (key) DO NOTHING", (key, value)) == 1
        return self._execute("UPDATE meta SET value = %s WHERE key = %s AND value = %s", (value, key, expected)) == 1

    def claim_interaction(self, interaction_id: int) -> bool:
        """True for the first process to ask about this interaction; rows older than a day are let go now and then."""
        if interaction_id % 256 == 0:
            self._execute("DELETE FROM interactions WHERE handled_at < now() - make_interval(secs => %s)", (INTERACTIONS_KEPT.total_seconds(),))
        return self._execute("INSERT INTO interactions (id) VALUES (%s) ON CONFLICT (id) DO NOTHING", (interaction_id,)) == 1

    # --- personal reminders (DMs) -----------------------------------------------------------
    def follow(self, user_id: int, what: str, key: str, label: str, lead: int) -> bool:
        """Follow a talk or an author (again: the lead is updated); True when it is new (xmax = 0: inserted, not updated)."""
        found = self._one(
            "INSERT INTO follows (user_id, what, key, label, lead, created_at) VALUES (%s, %s, %s, %s, %s, %s) "
            "ON CONFLICT (user_id, what, key) DO UPDATE SET lead = excluded.lead, label = excluded.label RETURNING (xmax = 0)",
            (user_id, what, key, label[:200], lead, _now()),
        )
        return bool(found and found[0])

    def unfollow(self, user_id: int, what: str | None = None, key: str | None = None) -> int:
        if what is None:
            return self._execute("DELETE FROM follows WHERE user_id = %s", (user_id,))
        return self._execute("DELETE FROM follows WHERE user_id = %s AND what = %s AND key = %s", (user_id, what, key))

    def follows_of(self, user_id: int) -> list[Follow]:
        found = self._all("SELECT user_id, what, key, label, lead FROM follows WHERE user_id = %s ORDER BY created_at, key", (user_id,))
        return [Follow(*r) for r in found]

    def all_follows(self) -> list[Follow]:
        return [Follow(*r) for r in self._all("SELECT user_id, what, key, label, lead FROM follows ORDER BY user_id, created_at, key")]

    def dm_channel(self, user_id: int) -> DmChannel | None:
        found = self._one("SELECT user_id, channel_id, closed, welcomed FROM dm_channels WHERE user_id = %s", (user_id,))
        return DmChannel(found[0], found[1], bool(found[2]), bool(found[3])) if found else None

    def set_dm_channel(self, user_id: int, *, channel_id: int | None = None, closed: bool | None = None, welcomed: bool | None = None) -> DmChannel:
        """Change the given fields only, in one statement (None leaves a field as it is)."""
        found = self._one(
            "INSERT INTO dm_channels AS d (user_id, channel_id, closed, welcomed, updated_at) "
            "VALUES (%(user)s, %(channel)s, COALESCE(%(closed)s, FALSE), COALESCE(%(welcomed)s, FALSE), %(now)s) "
            "ON CONFLICT (user_id) DO UPDATE SET channel_id = COALESCE(%(channel)s, d.channel_id), closed = COALESCE(%(closed)s, d.closed), "
            "welcomed = COALESCE(%(welcomed)s, d.welcomed), updated_at = %(now)s RETURNING user_id, channel_id, closed, welcomed",
            {"user": user_id, "channel": channel_id, "closed": closed, "welcomed": welcomed, "now": _now()},
        )
        assert found is not None
        return DmChannel(found[0], found[1], bool(found[2]), bool(found[3]))

    # --- per-guild settings ---------------------------------------------------------------
    def overrides(self, guild_id: int) -> GuildOverrides:
        found = self._one("SELECT guild_id, channel_id, leads, enabled, role_id FROM guild_settings WHERE guild_id = %s", (guild_id,))
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
        """Change the given fields only (None leaves a field as it is), in one statement."""
        joined = None if leads is None else leads_text(leads)
        found = self._one(
            "INSERT INTO guild_settings AS g (guild_id, channel_id, leads, enabled, role_id) VALUES (%(guild)s, %(channel)s, %(leads)s, %(enabled)s, %(role)s) "
            "ON CONFLICT (guild_id) DO UPDATE SET channel_id = COALESCE(%(channel)s, g.channel_id), leads = COALESCE(%(leads)s, g.leads), "
            "enabled = COALESCE(%(enabled)s, g.enabled), role_id = COALESCE(%(role)s, g.role_id) "
            "RETURNING guild_id, channel_id, leads, enabled, role_id",
            {"guild": guild_id, "channel": channel_id, "leads": joined, "enabled": enabled, "role": role_id},
        )
        assert found is not None
        return overrides_from_row(found)

    # --- session Q&A ------------------------------------------------------------------------
    def add_question(
        self, guild_id: int, talk_id: str, user_id: int, text: str, anonymous: bool, now: dt.datetime, *, limits: QuestionLimits | None = None
    ) -> Question:
        """Store a new open question; with `limits`, QuestionLimitReached (and nothing stored) when one is reached.

        The user's asks are serialised by an advisory lock held to the end of the transaction, so two
        processes cannot both count "one left" and both insert.
        """

        def insert(conn: psycopg.Connection) -> Question:
            if limits is not None:
                conn.execute("SELECT pg_advisory_xact_lock(%s, %s)", (_QUESTION_LOCK, user_id % 2**31))
                if _count_since(conn, user_id, limits.since) >= limits.recent:
                    raise QuestionLimitReached("recent")
                if _count_open(conn, user_id, talk_id) >= limits.open_per_talk:
                    raise QuestionLimitReached("open_per_talk")
            found = conn.execute(
                "INSERT INTO questions (guild_id, talk_id, user_id, text, anonymous, created_at) "
                f"VALUES (%s, %s, %s, %s, %s, %s) RETURNING {_QUESTION_COLUMNS}",
                (guild_id, talk_id, user_id, text, anonymous, _utc(now)),
            ).fetchone()
            assert found is not None
            return _question(found)

        return self._run(insert, transaction=True)

    def question(self, qid: int) -> Question | None:
        found = self._one(f"SELECT {_QUESTION_COLUMNS} FROM questions WHERE id = %s", (qid,))
        return _question(found) if found else None

    def set_question_message(self, qid: int, channel_id: int | None, message_id: int | None) -> None:
        self._execute("UPDATE questions SET channel_id = %s, message_id = %s WHERE id = %s", (channel_id, message_id, qid))

    def toggle_vote(self, qid: int, user_id: int) -> tuple[bool, int]:
        """Give the user's vote, or take it back: (voted now?, the new count), under the question's row lock.

        An unknown question records nothing and answers (False, 0).
        """

        def toggle(conn: psycopg.Connection) -> tuple[bool, int]:
            if conn.execute("SELECT 1 FROM questions WHERE id = %s FOR UPDATE", (qid,)).fetchone() is None:
                return False, 0
            voted = conn.execute("INSERT INTO question_votes (question_id, user_id) VALUES (%s, %s) ON CONFLICT DO NOTHING", (qid, user_id)).rowcount == 1
            if not voted:
                conn.execute("DELETE FROM question_votes WHERE question_id = %s AND user_id = %s", (qid, user_id))
            found = conn.execute(
                "UPDATE questions SET votes = (SELECT COUNT(*) FROM question_votes WHERE question_id = %s) WHERE id = %s RETURNING votes", (qid, qid)
            ).fetchone()
            assert found is not None
            return voted, found[0]

        if not -(2**63) <= qid < 2**63:
            return False, 0
        return self._run(toggle, transaction=True)

    def voted(self, qid: int, user_id: int) -> bool:
        return self._one("SELECT 1 FROM question_votes WHERE question_id = %s AND user_id = %s", (qid, user_id)) is not None

    def top_questions(self, guild_id: int, talk_ids: Collection[str], limit: int = 10, states: Sequence[str] = ("open",)) -> list[Question]:
        talks, wanted = list(dict.fromkeys(talk_ids)), list(states)
        if not talks or not wanted or limit <= 0:
            return []
        query = (
            f"SELECT {_QUESTION_COLUMNS} FROM questions WHERE guild_id = %s AND talk_id = ANY(%s) AND state = ANY(%s) "
            "ORDER BY votes DESC, created_at, id LIMIT %s"
        )
        return [_question(r) for r in self._all(query, (guild_id, talks, wanted, limit))]

    def set_question_state(self, qid: int, state: str) -> None:
        if state not in QUESTION_STATES:
            raise ValueError(f"a question's state is one of {', '.join(QUESTION_STATES)}, not {state!r}")
        self._execute("UPDATE questions SET state = %s WHERE id = %s", (state, qid))

    def questions_since(self, user_id: int, since: dt.datetime) -> int:
        return self._run(lambda conn: _count_since(conn, user_id, since))

    def open_questions(self, user_id: int, talk_id: str) -> int:
        return self._run(lambda conn: _count_open(conn, user_id, talk_id))


def _count_since(conn: psycopg.Connection, user_id: int, since: dt.datetime) -> int:
    found = conn.execute("SELECT COUNT(*) FROM questions WHERE user_id = %s AND created_at >= %s", (user_id, _utc(since))).fetchone()
    return found[0] if found else 0


def _count_open(conn: psycopg.Connection, user_id: int, talk_id: str) -> int:
    found = conn.execute("SELECT COUNT(*) FROM questions WHERE user_id = %s AND talk_id = %s AND state = 'open'", (user_id, talk_id)).fetchone()
    return found[0] if found else 0
