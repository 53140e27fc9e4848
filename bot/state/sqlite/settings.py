"""SQLite: per-guild settings, small named values (swapped atomically) and interaction claims."""

from __future__ import annotations

import datetime as dt

from bot.state.base import INTERACTIONS_KEPT, GuildOverrides, leads_text, overrides_from_row, utc_text
from bot.state.sqlite.db import Database, utcnow


class GuildSettings(Database):
    """What the bot keeps besides reminders: named values, interactions answered, per-guild choices."""

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
        return self._execute("INSERT INTO interactions (id, handled_at) VALUES (?, ?) ON CONFLICT(id) DO NOTHING", (interaction_id, utcnow())).rowcount == 1

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
