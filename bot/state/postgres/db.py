"""The PostgreSQL connection pool, what this process knows of the database's health, and the plumbing every part of the store runs its statements through."""

from __future__ import annotations

import datetime as dt
import logging
import threading
import time
from collections.abc import Callable, Sequence
from typing import TypeVar

import psycopg
from psycopg.conninfo import conninfo_to_dict
from psycopg_pool import ConnectionPool, PoolTimeout

from bot.state.base import StateError, new_owner
from bot.state.postgres.schema import migrate

log = logging.getLogger("bot.state.postgres")  # the backend keeps the logger name it had before it was split in parts

T = TypeVar("T")
CALL_TIMEOUT = 1.5  # seconds a call made while serving waits for a connection: a command still answers within Discord's 3 s
RETRY_SECONDS = 1.0  # while the database is unreachable, calls fail at once and one call every this often tries it again
RECONNECT_TIMEOUT = 3.0  # psycopg_pool's reconnect_timeout: its backoff gives up soon, so that a try after an outage connects at once


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


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def in_utc(instant: dt.datetime) -> dt.datetime:
    return instant.astimezone(dt.UTC)


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
            self.down_since, self._down_at = utcnow(), time.monotonic()
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


class Database:
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
            migrate(self._pool, self._where)
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
