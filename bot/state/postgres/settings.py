"""PostgreSQL: per-guild settings, small named values (swapped atomically) and interaction claims."""

from __future__ import annotations

from bot.state.base import INTERACTIONS_KEPT, GuildOverrides, leads_text, overrides_from_row
from bot.state.postgres.db import Database


class GuildSettings(Database):
    """What the bot keeps besides reminders: named values, interactions answered, per-guild choices."""

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
