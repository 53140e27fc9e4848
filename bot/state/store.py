"""SQLite state: the reminder ledger, per-guild settings, small named values, and session Q&A.

The ledger is what makes reminders exactly-once: a row is claimed before a send and marked sent
after Discord confirms, so a restart knows what is done, what to re-send (same nonce) and what to
skip. Every row carries its run ("live", or one rehearsal's key) and its guild, so a rehearsal never
silences the real day and one guild never sees another's rows. Autocommit and WAL: a killed process
leaves nothing half-written. The file is the operator's data: it is never deleted or rewritten
behind their back; a file that cannot be used stops the bot with a StateError that says what to do.
Leases (see bot.state.base) are on this host's UTC clock: every process sharing the file is on it.
"""

from __future__ import annotations

from bot.state.base import (
    DONE,
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
    StateStore,
    utc_text,
)
from bot.state.sqlite.follows import Follows
from bot.state.sqlite.ledger import Ledger
from bot.state.sqlite.questions import Questions
from bot.state.sqlite.schema import SCHEMA_VERSION
from bot.state.sqlite.settings import GuildSettings

# The dataclasses and errors live in bot.state.base (shared with PostgreSQL); many modules import them from here.
__all__ = [
    "DONE",
    "LIVE",
    "QUESTION_STATES",
    "SCHEMA_VERSION",
    "DmChannel",
    "Follow",
    "GuildOverrides",
    "LedgerRow",
    "NewRow",
    "Question",
    "QuestionLimitReached",
    "QuestionLimits",
    "State",
    "StateError",
    "StateStore",
    "Store",
    "utc_text",
]


class Store(Ledger, GuildSettings, Follows, Questions):
    """The SQLite state: one file, the parts (ledger, settings, follows, Q&A) on one connection (bot.state.sqlite.db)."""
