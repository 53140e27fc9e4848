"""SQLite: personal reminders, i.e. what users follow and their DM channels."""

from __future__ import annotations

from collections.abc import Sequence

from bot.state.base import DmChannel, Follow
from bot.state.sqlite.db import Database, utcnow


class Follows(Database):
    """Follows of talks and authors, and the DM channel each user is reminded in."""

    def follow(self, user_id: int, what: str, key: str, label: str, lead: int) -> bool:
        """Follow a talk or an author (again: the lead is updated); True when it is new."""
        existed = self._one("SELECT 1 FROM follows WHERE user_id = ? AND what = ? AND key = ?", (user_id, what, key)) is not None
        self._execute(
            "INSERT INTO follows (user_id, what, key, label, lead, created_at) VALUES (?, ?, ?, ?, ?, ?) "
            "ON CONFLICT(user_id, what, key) DO UPDATE SET lead = excluded.lead, label = excluded.label",
            (user_id, what, key, label[:200], lead, utcnow()),
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
                self._db.execute("INSERT OR IGNORE INTO dm_channels (user_id, updated_at) VALUES (?, ?)", (user_id, utcnow()))
                for column, value in changes.items():
                    if value is not None:
                        self._db.execute(f"UPDATE dm_channels SET {column} = ?, updated_at = ? WHERE user_id = ?", (value, utcnow(), user_id))
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
        found = self.dm_channel(user_id)
        assert found is not None
        return found


def _follow(row: Sequence) -> Follow:
    return Follow(row[0], row[1], row[2], row[3], row[4])
