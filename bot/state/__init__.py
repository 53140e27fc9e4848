"""The bot's state: one interface (bot.state.base.StateStore), SQLite by default, PostgreSQL with STATE_URL."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from bot.config import Settings
    from bot.state.base import StateStore


def open_store(settings: Settings) -> StateStore:
    """The store the settings name: PostgreSQL when STATE_URL is set, else the SQLite file at STATE_PATH.

    StateError when it cannot be used; the message names the file or the host and database, never a password.
    """
    if settings.state_url:
        from bot.state.postgres import PostgresStore

        return PostgresStore(settings.state_url.reveal())
    from bot.state.store import Store

    return Store(settings.state_path)
