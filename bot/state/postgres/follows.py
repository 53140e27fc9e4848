"""PostgreSQL: personal reminders, i.e. what users follow and their DM channels."""

from __future__ import annotations

from bot.state.base import DmChannel, Follow
from bot.state.postgres.db import Database, utcnow


class Follows(Database):
    """Follows of talks and authors, and the DM channel each user is reminded in."""

    def follow(self, user_id: int, what: str, key: str, label: str, lead: int) -> bool:
        """Follow a talk or an author (again: the lead is updated); True when it is new (xmax = 0: inserted, not updated)."""
        found = self._one(
            "INSERT INTO follows (user_id, what, key, label, lead, created_at) VALUES (%s, %s, %s, %s, %s, %s) "
            "ON CONFLICT (user_id, what, key) DO UPDATE SET lead = excluded.lead, label = excluded.label RETURNING (xmax = 0)",
            (user_id, what, key, label[:200], lead, utcnow()),
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
            {"user": user_id, "channel": channel_id, "closed": closed, "welcomed": welcomed, "now": utcnow()},
        )
        assert found is not None
        return DmChannel(found[0], found[1], bool(found[2]), bool(found[3]))
