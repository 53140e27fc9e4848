"""What every state backend stores and answers: the dataclasses, the errors and one interface.

SQLite (bot.state.store.Store, the default) and PostgreSQL (bot.state.postgres.PostgresStore, for
several processes on one database) implement `StateStore` with the same semantics, and the same
tests run against both. Calls are synchronous and thread-safe: each is short, and the reminder
service runs them in helper threads (asyncio.to_thread) so that a network round trip to a managed
PostgreSQL never blocks the event loop.

Claims carry a lease, so that several processes can share one ledger: a row claimed (or retried, or
failed for a passing reason) belongs to its `owner` until `lease_until`. Only the owner, or anyone
once the lease has expired, may take it up again with `retry`; a sent, refused or skipped row has no
lease. The lease is measured on the database's clock (PostgreSQL) or the host's (SQLite, one host).
"""

from __future__ import annotations

import datetime as dt
import os
import secrets
import socket
from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Protocol

LIVE = "live"
INTERACTIONS_KEPT = dt.timedelta(days=1)  # an interaction is answered within 15 minutes: its claim is kept a day, then let go


class StateError(Exception):
    """The state (a SQLite file or a PostgreSQL database) cannot be used; the message names it and what to do."""


class State(StrEnum):
    CLAIMED = "claimed"  # recorded, send in flight or unconfirmed
    SENT = "sent"  # Discord confirmed
    FAILED = "failed"  # last attempt failed for a passing reason (429, 5xx, timeout); retried with the same nonce
    REFUSED = "refused"  # Discord refused for good (missing permission, unknown channel): not retried
    SKIPPED = "skipped"  # deliberately not sent (stale, superseded, talk over)


DONE = frozenset({State.SENT, State.SKIPPED, State.REFUSED})
DEFAULT_LEASE_SECONDS = 30.0  # for callers that pass none; the reminder service passes its own (see ReminderService.lease)


def new_owner() -> str:
    """A process's name in the ledger: host, pid and a random part (a restarted process is a new owner)."""
    return f"{socket.gethostname()[:64]}:{os.getpid()}:{secrets.token_hex(4)}"


@dataclass(frozen=True, slots=True)
class LedgerRow:
    id: str
    run: str
    guild_id: int
    talk_id: str
    lead: int
    channel_id: int
    nonce: str
    due_at: dt.datetime
    state: State
    attempts: int
    message_id: str | None
    error: str | None
    updated_at: dt.datetime
    owner: str | None = None  # the process that claimed or last took it up
    lease_until: dt.datetime | None = None  # None: no lease (done, or written before leases existed)


@dataclass(frozen=True, slots=True)
class NewRow:
    """What a claim or a skip records about one reminder."""

    id: str
    run: str
    guild_id: int
    talk_id: str
    lead: int
    channel_id: int
    nonce: str
    due_at: dt.datetime


@dataclass(frozen=True, slots=True)
class Follow:
    """A user's wish to be reminded by DM: one talk, or every talk of an author."""

    user_id: int
    what: str  # "talk" | "author"
    key: str  # talk id, or folded author name
    label: str
    lead: int


@dataclass(frozen=True, slots=True)
class DmChannel:
    user_id: int
    channel_id: int | None
    closed: bool
    welcomed: bool


@dataclass(frozen=True, slots=True)
class GuildOverrides:
    """Per-guild choices that win over the environment; None means "use the default".

    `role_id` 0 means "mention no role" (the environment's role is not used in this guild).
    """

    guild_id: int
    channel_id: int | None = None
    leads: tuple[int, ...] | None = None
    enabled: bool | None = None
    role_id: int | None = None


QUESTION_STATES = ("open", "answered", "hidden")


@dataclass(frozen=True, slots=True)
class Question:
    """One audience question; `user_id` is stored for anonymous ones too but must never be shown."""

    id: int
    guild_id: int
    talk_id: str
    user_id: int
    text: str
    anonymous: bool
    created_at: dt.datetime
    state: str  # one of QUESTION_STATES
    votes: int
    channel_id: int | None
    message_id: int | None


@dataclass(frozen=True, slots=True)
class QuestionLimits:
    """Checked in the same transaction as the insert, so that concurrent asks cannot slip past them."""

    since: dt.datetime  # questions asked at or after this instant count towards `recent`
    recent: int  # at most this many of them
    open_per_talk: int  # at most this many open questions by the user for the talk


class QuestionLimitReached(Exception):
    """`which` is "recent" or "open_per_talk"; nothing was stored."""

    def __init__(self, which: str) -> None:
        super().__init__(which)
        self.which = which


def leads_text(leads: tuple[int, ...]) -> str:
    """How both backends store a guild's leads: '10,2' (no repeats, longest first)."""
    return ",".join(str(x) for x in sorted(set(leads), reverse=True))


def overrides_from_row(row: Sequence) -> GuildOverrides:
    """(guild_id, channel_id, leads text, enabled, role_id) as either backend returns it."""
    guild_id, channel_id, leads, enabled, role_id = row
    parsed = tuple(int(x) for x in leads.split(",")) if leads else None
    return GuildOverrides(guild_id, channel_id, parsed, None if enabled is None else bool(enabled), role_id)


def utc_text(instant: dt.datetime) -> str:
    """Instants are stored in UTC, so that text order is time order."""
    return instant.astimezone(dt.UTC).isoformat()


class StateStore(Protocol):
    """The methods the bot uses; both backends are atomic across processes where it matters (claims, votes, limits)."""

    owner: str  # this store's (this process's) name in the ledger's `owner` column

    # --- ledger: exactly-once reminders ---
    def claim(self, row: NewRow, *, lease: float = DEFAULT_LEASE_SECONDS) -> bool:
        """Insert the row as claimed by us for `lease` seconds; False if it is already in the ledger (any state, any owner)."""
        ...

    def retry(self, rid: str, *, lease: float = DEFAULT_LEASE_SECONDS) -> LedgerRow | None:
        """Take a claimed or failed row up again (same nonce) if its lease has expired or it is ours, in one statement.

        None when it is done, absent, or leased by another owner.
        """
        ...

    def lease_left(self, rid: str) -> float | None:
        """Real seconds left on a claimed or failed row's lease (on the store's clock; <= 0: expired); None if it is done or absent.

        A row from before leases (no lease) answers 0.0: anyone may take it up.
        """
        ...

    def renew(self, rid: str, *, lease: float = DEFAULT_LEASE_SECONDS) -> bool:
        """Extend our lease on a claimed row while its send is in flight; False if it is no longer ours."""
        ...

    def mark_sent(self, rid: str, message_id: str | int | None) -> None:
        """Discord confirmed: final, whoever holds the lease (ends it)."""
        ...

    def mark_failed(self, rid: str, error: str, *, permanent: bool = False, lease: float = DEFAULT_LEASE_SECONDS) -> None:
        """Ours only: a passing failure keeps the row ours for `lease` seconds (our backoff retries it); permanent ends it."""
        ...

    def skip_many(self, rows: Iterable[tuple[NewRow, str]]) -> int: ...
    def get(self, rid: str) -> LedgerRow | None: ...
    def get_many(self, ids: Iterable[str]) -> dict[str, LedgerRow]: ...
    def rows(self, *states: State, run: str | None = None, guild_id: int | None = None) -> list[LedgerRow]: ...
    def last_sent(self, run: str, guild_id: int) -> LedgerRow | None: ...
    def failures(self, run: str, guild_id: int, limit: int = 5) -> list[LedgerRow]: ...
    def count_before(self, run: str, instant: dt.datetime, guild_ids: Iterable[int]) -> int: ...
    def earliest_due(self, run: str) -> dt.datetime | None: ...
    def forget_run(self, run: str) -> int: ...

    # --- small named values (the rehearsal's anchor, the cache key) ---
    def get_meta(self, key: str) -> str | None: ...
    def set_meta(self, key: str, value: str) -> None: ...
    def swap_meta(self, key: str, expected: str | None, value: str) -> bool:
        """Compare and set: `value` only if the key still holds `expected` (None: only if absent)."""
        ...

    # --- interactions that reach several processes (two on one shard) ---
    def claim_interaction(self, interaction_id: int) -> bool:
        """True for exactly one caller per interaction id, across processes."""
        ...

    # --- per-guild settings ---
    def overrides(self, guild_id: int) -> GuildOverrides: ...
    def all_overrides(self) -> dict[int, GuildOverrides]: ...
    def set_override(
        self,
        guild_id: int,
        *,
        channel_id: int | None = None,
        leads: tuple[int, ...] | None = None,
        enabled: bool | None = None,
        role_id: int | None = None,
    ) -> GuildOverrides: ...

    # --- personal reminders (DMs) ---
    def follow(self, user_id: int, what: str, key: str, label: str, lead: int) -> bool: ...
    def unfollow(self, user_id: int, what: str | None = None, key: str | None = None) -> int: ...
    def follows_of(self, user_id: int) -> list[Follow]: ...
    def all_follows(self) -> list[Follow]: ...
    def dm_channel(self, user_id: int) -> DmChannel | None: ...
    def set_dm_channel(self, user_id: int, *, channel_id: int | None = None, closed: bool | None = None, welcomed: bool | None = None) -> DmChannel: ...

    # --- session Q&A ---
    def add_question(
        self, guild_id: int, talk_id: str, user_id: int, text: str, anonymous: bool, now: dt.datetime, *, limits: QuestionLimits | None = None
    ) -> Question: ...
    def question(self, qid: int) -> Question | None: ...
    def set_question_message(self, qid: int, channel_id: int | None, message_id: int | None) -> None: ...
    def toggle_vote(self, qid: int, user_id: int) -> tuple[bool, int]: ...
    def voted(self, qid: int, user_id: int) -> bool: ...
    def top_questions(self, guild_id: int, talk_ids: Collection[str], limit: int = 10, states: Sequence[str] = ("open",)) -> list[Question]: ...
    def set_question_state(self, qid: int, state: str) -> None: ...
    def questions_since(self, user_id: int, since: dt.datetime) -> int: ...
    def open_questions(self, user_id: int, talk_id: str) -> int: ...

    def close(self) -> None: ...
