"""SQLite: session Q&A, i.e. questions, their votes and the limits on asking."""

from __future__ import annotations

import datetime as dt
import sqlite3
from collections.abc import Collection, Sequence

from bot.state.base import QUESTION_STATES, Question, QuestionLimitReached, QuestionLimits, utc_text
from bot.state.sqlite.db import Database


class Questions(Database):
    """Questions and votes; the limits are counted in the insert's own transaction."""

    def add_question(
        self, guild_id: int, talk_id: str, user_id: int, text: str, anonymous: bool, now: dt.datetime, *, limits: QuestionLimits | None = None
    ) -> Question:
        """Store a new open question; with `limits`, QuestionLimitReached (and nothing stored) when one is reached."""

        def insert(db: sqlite3.Connection) -> int:
            if limits is not None:
                if _count_since(db, user_id, limits.since) >= limits.recent:
                    raise QuestionLimitReached("recent")
                if _count_open(db, user_id, talk_id) >= limits.open_per_talk:
                    raise QuestionLimitReached("open_per_talk")
            cur = db.execute(
                "INSERT INTO questions (guild_id, talk_id, user_id, text, anonymous, created_at) VALUES (?, ?, ?, ?, ?, ?)",
                (guild_id, talk_id, user_id, text, int(anonymous), utc_text(now)),
            )
            assert cur.lastrowid is not None
            return cur.lastrowid

        found = self.question(self._transaction(insert))
        assert found is not None
        return found

    def question(self, qid: int) -> Question | None:
        """The question, whatever its guild: callers compare `guild_id` with the guild that asks."""
        found = self._one(f"SELECT {_QUESTION_COLUMNS} FROM questions WHERE id = ?", (qid,))
        return _question(found) if found else None

    def set_question_message(self, qid: int, channel_id: int | None, message_id: int | None) -> None:
        """Where the question was posted, so that its message can be edited or removed later."""
        self._execute("UPDATE questions SET channel_id = ?, message_id = ? WHERE id = ?", (channel_id, message_id, qid))

    def toggle_vote(self, qid: int, user_id: int) -> tuple[bool, int]:
        """Give the user's vote, or take it back if given: (voted now?, the new count), in one transaction.

        An unknown question records nothing and answers (False, 0).
        """

        def toggle(db: sqlite3.Connection) -> tuple[bool, int]:
            if db.execute("SELECT 1 FROM questions WHERE id = ?", (qid,)).fetchone() is None:
                return False, 0
            voted = db.execute("INSERT OR IGNORE INTO question_votes (question_id, user_id) VALUES (?, ?)", (qid, user_id)).rowcount == 1
            if not voted:
                db.execute("DELETE FROM question_votes WHERE question_id = ? AND user_id = ?", (qid, user_id))
            count = db.execute("SELECT COUNT(*) FROM question_votes WHERE question_id = ?", (qid,)).fetchone()[0]
            db.execute("UPDATE questions SET votes = ? WHERE id = ?", (count, qid))
            return voted, count

        return self._transaction(toggle)

    def voted(self, qid: int, user_id: int) -> bool:
        return self._one("SELECT 1 FROM question_votes WHERE question_id = ? AND user_id = ?", (qid, user_id)) is not None

    def top_questions(self, guild_id: int, talk_ids: Collection[str], limit: int = 10, states: Sequence[str] = ("open",)) -> list[Question]:
        """The guild's questions for these talks, most votes first, then the oldest."""
        talks, wanted = list(dict.fromkeys(talk_ids)), list(states)
        if not talks or not wanted or limit <= 0:
            return []
        query = (
            f"SELECT {_QUESTION_COLUMNS} FROM questions WHERE guild_id = ? AND talk_id IN ({', '.join('?' * len(talks))}) "
            f"AND state IN ({', '.join('?' * len(wanted))}) ORDER BY votes DESC, created_at, id LIMIT ?"
        )
        return [_question(r) for r in self._all(query, (guild_id, *talks, *wanted, limit))]

    def set_question_state(self, qid: int, state: str) -> None:
        if state not in QUESTION_STATES:
            raise ValueError(f"a question's state is one of {', '.join(QUESTION_STATES)}, not {state!r}")
        self._execute("UPDATE questions SET state = ? WHERE id = ?", (state, qid))

    def questions_since(self, user_id: int, since: dt.datetime) -> int:
        """How many questions (in any state, any guild) the user asked at or after `since`."""
        with self._lock:
            return _count_since(self._db, user_id, since)

    def open_questions(self, user_id: int, talk_id: str) -> int:
        with self._lock:
            return _count_open(self._db, user_id, talk_id)


def _count_since(db: sqlite3.Connection, user_id: int, since: dt.datetime) -> int:
    return db.execute("SELECT COUNT(*) FROM questions WHERE user_id = ? AND created_at >= ?", (user_id, utc_text(since))).fetchone()[0]


def _count_open(db: sqlite3.Connection, user_id: int, talk_id: str) -> int:
    return db.execute("SELECT COUNT(*) FROM questions WHERE user_id = ? AND talk_id = ? AND state = 'open'", (user_id, talk_id)).fetchone()[0]


_QUESTION_COLUMNS = "id, guild_id, talk_id, user_id, text, anonymous, created_at, state, votes, channel_id, message_id"


def _question(row: Sequence) -> Question:
    qid, guild_id, talk_id, user_id, text, anonymous, created_at, state, votes, channel_id, message_id = row
    return Question(qid, guild_id, talk_id, user_id, text, bool(anonymous), dt.datetime.fromisoformat(created_at), state, votes, channel_id, message_id)
