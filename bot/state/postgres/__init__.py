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
one call a second try the database again (see `_Health` in bot.state.postgres.db). The pool gives up
a reconnection after RECONNECT_TIMEOUT, so that the next try connects at once instead of waiting out
a long backoff. The outage is logged once when it starts and once when it ends, not per attempt.

PostgresStore is composed of parts that mirror the SQLite store's (bot.state.sqlite): db (the pool,
health and plumbing), schema, ledger, settings, follows and questions.
"""

from __future__ import annotations

from bot.state.postgres.db import CALL_TIMEOUT, NETWORK_DEFAULTS, RECONNECT_TIMEOUT, RETRY_SECONDS, describe
from bot.state.postgres.follows import Follows
from bot.state.postgres.ledger import Ledger
from bot.state.postgres.questions import Questions
from bot.state.postgres.schema import SCHEMA_VERSION
from bot.state.postgres.settings import GuildSettings

__all__ = ["CALL_TIMEOUT", "NETWORK_DEFAULTS", "RECONNECT_TIMEOUT", "RETRY_SECONDS", "SCHEMA_VERSION", "PostgresStore", "describe"]


class PostgresStore(Ledger, GuildSettings, Follows, Questions):
    """The PostgreSQL state: the parts (ledger, settings, follows, Q&A) on one pool (bot.state.postgres.db)."""
