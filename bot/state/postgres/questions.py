"""PostgreSQL: session Q&A, i.e. questions, their votes and the limits on asking."""

from __future__ import annotations

import datetime as dt
from collections.abc import Collection, Sequence

import psycopg

from bot.state.base import QUESTION_STATES, Question, QuestionLimitReached, QuestionLimits
from bot.state.postgres.db import Database, in_utc

_QUESTION_LOCK = 0x5E56  # advisory lock class for one user's asks: (class, user_id % 2**31)
_QUESTION_COLUMNS = "id, guild_id, talk_id, user_id, text, anonymous, created_at, state, votes, channel_id, message_id"


def _question(row: Sequence) -> Question:
    qid, guild_id, talk_id, user_id, text, anonymous, created_at, state, votes, channel_id, message_id = row
    return Question(qid, guild_id, talk_id, user_id, text, bool(anonymous), in_utc(created_at), state, votes, channel_id, message_id)


class Questions(Database):
    """Questions and votes; a vote holds the question's row lock, the limits a per-user advisory lock."""

    def add_question(
        self, guild_id: int, talk_id: str, user_id: int, text: str, anonymous: bool, now: dt.datetime, *, limits: QuestionLimits | None = None
    ) -> Question:
        """Store a new open question; with `limits`, QuestionLimitReached (and nothing stored) when one is reached.

        The user's asks are serialised by an advisory lock held to the end of the transaction, so two
        processes cannot both count "one left" and both insert.
        """

        def insert(conn: psycopg.Connection) -> Question:
            if limits is not None:
                conn.execute("SELECT pg_advisory_xact_lock(%s, %s)", (_QUESTION_LOCK, user_id % 2**31))
                if _count_since(conn, user_id, limits.since) >= limits.recent:
                    raise QuestionLimitReached("recent")
                if _count_open(conn, user_id, talk_id) >= limits.open_per_talk:
                    raise QuestionLimitReached("open_per_talk")
            found = conn.execute(
                "INSERT INTO questions (guild_id, talk_id, user_id, text, anonymous, created_at) "
                f"VALUES (%s, %s, %s, %s, %s, %s) RETURNING {_QUESTION_COLUMNS}",
                (guild_id, talk_id, user_id, text, anonymous, in_utc(now)),
            ).fetchone()
            assert found is not None
            return _question(found)

        return self._run(insert, transaction=True)

    def question(self, qid: int) -> Question | None:
        found = self._one(f"SELECT {_QUESTION_COLUMNS} FROM questions WHERE id = %s", (qid,))
        return _question(found) if found else None

    def set_question_message(self, qid: int, channel_id: int | None, message_id: int | None) -> None:
        self._execute("UPDATE questions SET channel_id = %s, message_id = %s WHERE id = %s", (channel_id, message_id, qid))

    def toggle_vote(self, qid: int, user_id: int) -> tuple[bool, int]:
        """Give the user's vote, or take it back: (voted now?, the new count), under the question's row lock.

        An unknown question records nothing and answers (False, 0).
        """

        def toggle(conn: psycopg.Connection) -> tuple[bool, int]:
            if conn.execute("SELECT 1 FROM questions WHERE id = %s FOR UPDATE", (qid,)).fetchone() is None:
                return False, 0
            voted = conn.execute("INSERT INTO question_votes (question_id, user_id) VALUES (%s, %s) ON CONFLICT DO NOTHING", (qid, user_id)).rowcount == 1
            if not voted:
                conn.execute("DELETE FROM question_votes WHERE question_id = %s AND user_id = %s", (qid, user_id))
            found = conn.execute(
                "UPDATE questions SET votes = (SELECT COUNT(*) FROM question_votes WHERE question_id = %s) WHERE id = %s RETURNING votes", (qid, qid)
            ).fetchone()
            assert found is not None
            return voted, found[0]

        if not -(2**63) <= qid < 2**63:
            return False, 0
        return self._run(toggle, transaction=True)

    def voted(self, qid: int, user_id: int) -> bool:
        return self._one("SELECT 1 FROM question_votes WHERE question_id = %s AND user_id = %s", (qid, user_id)) is not None

    def top_questions(self, guild_id: int, talk_ids: Collection[str], limit: int = 10, states: Sequence[str] = ("open",)) -> list[Question]:
        talks, wanted = list(dict.fromkeys(talk_ids)), list(states)
        if not talks or not wanted or limit <= 0:
            return []
        query = (
            f"SELECT {_QUESTION_COLUMNS} FROM questions WHERE guild_id = %s AND talk_id = ANY(%s) AND state = ANY(%s) "
            "ORDER BY votes DESC, created_at, id LIMIT %s"
        )
        return [_question(r) for r in self._all(query, (guild_id, talks, wanted, limit))]

    def set_question_state(self, qid: int, state: str) -> None:
        if state not in QUESTION_STATES:
            raise ValueError(f"a question's state is one of {', '.join(QUESTION_STATES)}, not {state!r}")
        self._execute("UPDATE questions SET state = %s WHERE id = %s", (state, qid))

    def questions_since(self, user_id: int, since: dt.datetime) -> int:
        return self._run(lambda conn: _count_since(conn, user_id, since))

    def open_questions(self, user_id: int, talk_id: str) -> int:
        return self._run(lambda conn: _count_open(conn, user_id, talk_id))


def _count_since(conn: psycopg.Connection, user_id: int, since: dt.datetime) -> int:
    found = conn.execute("SELECT COUNT(*) FROM questions WHERE user_id = %s AND created_at >= %s", (user_id, in_utc(since))).fetchone()
    return found[0] if found else 0


def _count_open(conn: psycopg.Connection, user_id: int, talk_id: str) -> int:
    found = conn.execute("SELECT COUNT(*) FROM questions WHERE user_id = %s AND talk_id = %s AND state = 'open'", (user_id, talk_id)).fetchone()
    return found[0] if found else 0
