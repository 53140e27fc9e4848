"""The SQLite connection, its lock and the plumbing every part of the store runs its statements through."""

from __future__ import annotations

import datetime as dt
import sqlite3
import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TypeVar

from bot.state.base import StateError, new_owner
from bot.state.sqlite.schema import migrate

T = TypeVar("T")


def utcnow() -> str:
    """Now in UTC, as the text the tables store."""
    return dt.datetime.now(dt.UTC).isoformat()


class Database:
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
        migrate(db, self.path)

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
