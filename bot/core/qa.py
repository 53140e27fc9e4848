"""Session Q&A, the rules: which talk a question is for, what a question may say, how many a user may ask.

Front-ends (Discord, the console) parse options and render; everything they must agree on lives here.
Time is a parameter; the store is passed in.
"""

from __future__ import annotations

import datetime as dt
import re
import unicodedata
from collections.abc import Collection

from bot.core import answers
from bot.core.errors import UserError
from bot.core.schedule import Kind, Schedule, Talk
from bot.state.base import Question, QuestionLimitReached, QuestionLimits, StateStore

QUESTION_MAX = 500  # characters, after cleaning; Discord's own max_length on the option says the same
PER_MINUTE = 3  # questions per user per minute, over all talks
OPEN_PER_TALK = 50  # open questions per user per talk
DIGEST_LEAD = dt.timedelta(minutes=10)  # the chair's digest comes this long before a Q&A slot starts


class QaRefused(UserError):
    """A question that cannot be taken (empty, too long, no talk on, over a limit); nothing was stored."""


_SPACES = re.compile(r"\s+")
# Invisible characters that reorder or hide text (bidi overrides and isolates, zero-width space, BOM,
# word joiner, soft hyphen). Zero-width (non-)joiners stay: emoji sequences and some scripts need them.
_INVISIBLE = frozenset("\u00ad\u200b\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2060\u2066\u2067\u2068\u2069\ufeff")

_REFUSALS = {
    "recent": f"You have asked {PER_MINUTE} questions in the last minute; please wait a moment before asking another.",
    "open_per_talk": f"You already have {OPEN_PER_TALK} open questions for this talk; wait until some are answered before asking more.",
}


def clean_question(text: str) -> str:
    """One paragraph of visible text: line breaks and runs of whitespace become one space, control characters go."""
    spaced = "".join(" " if ch.isspace() else ch for ch in text)
    kept = "".join(ch for ch in spaced if ch not in _INVISIBLE and unicodedata.category(ch) not in ("Cc", "Cs"))
    cleaned = _SPACES.sub(" ", kept).strip()
    if not cleaned:
        raise QaRefused("Your question is empty; type the question you want to ask.")
    if len(cleaned) > QUESTION_MAX:
        raise QaRefused(f"Your question has {len(cleaned):,} characters; questions are at most {QUESTION_MAX}. Please shorten it.")
    return cleaned


def default_talk(schedule: Schedule, now: dt.datetime, how: str = "with the talk option") -> Talk:
    """The item questions go to when no talk is named: the talk on now, or the joint Q&A on now.

    `how` tells the user how to name a talk instead, in the front-end's words.
    """
    on = [t for t in answers.on_now(schedule, now).current if t.is_talk or t.kind is Kind.QA]
    if not on:
        raise QaRefused(f"No talk is on right now; pick one {how}.")
    if len(on) > 1:
        raise QaRefused(f"Several talks are on right now; pick one {how}.", tuple(t.display_title for t in on))
    return on[0]


def covered(schedule: Schedule, talk: Talk) -> list[str]:
    """The talk ids whose questions belong to `talk`: a joint Q&A gathers the talks it follows."""
    if talk.kind is not Kind.QA:
        return [talk.id]
    return list(dict.fromkeys([talk.id, *(t for t in talk.follows if schedule.talk(t) is not None)]))


def _limits(now: dt.datetime) -> QuestionLimits:
    return QuestionLimits(since=now - dt.timedelta(minutes=1), recent=PER_MINUTE, open_per_talk=OPEN_PER_TALK)


def check_limits(store: StateStore, user_id: int, talk_id: str, now: dt.datetime) -> None:
    """QaRefused with a kind message when the user may not ask now; `ask` checks again as it stores."""
    limits = _limits(now)
    if store.questions_since(user_id, limits.since) >= limits.recent:
        raise QaRefused(_REFUSALS["recent"])
    if store.open_questions(user_id, talk_id) >= limits.open_per_talk:
        raise QaRefused(_REFUSALS["open_per_talk"])


def ask(store: StateStore, schedule: Schedule, guild_id: int, user_id: int, text: str, talk: Talk | None, anonymous: bool, now: dt.datetime) -> Question:
    """Clean, place and store a question; QaRefused (nothing stored) for anything the user can fix.

    The limits are checked in the store's transaction, so a flood of concurrent asks cannot pass them.
    """
    cleaned = clean_question(text)
    target = default_talk(schedule, now) if talk is None else talk
    if target.kind is Kind.BREAK:
        raise QaRefused(f"“{target.display_title}” is a break; pick a talk to ask about.")
    try:
        return store.add_question(guild_id, target.id, user_id, cleaned, anonymous, now, limits=_limits(now))
    except QuestionLimitReached as reached:
        raise QaRefused(_REFUSALS[reached.which]) from None


def is_chair(member_permissions_manage_messages: bool, role_ids: Collection[int], chair_role_id: int | None) -> bool:
    """Chairs are members with Manage Messages, or with the chair role (when one is set)."""
    return member_permissions_manage_messages or (bool(chair_role_id) and chair_role_id in role_ids)


def top_for(store: StateStore, schedule: Schedule, guild_id: int, talk: Talk, limit: int = 10) -> list[Question]:
    """The open questions for `talk` (a joint Q&A: with those of the talks it follows), by votes then age."""
    return store.top_questions(guild_id, covered(schedule, talk), limit)


def digest_times(schedule: Schedule) -> list[tuple[dt.datetime, Talk]]:
    """When the chair's top questions are posted: DIGEST_LEAD before each Q&A slot, and as each oral ends."""
    due = [(t.start - DIGEST_LEAD, t) for t in schedule.talks if t.kind is Kind.QA]
    due += [(t.end, t) for t in schedule.talks if t.kind is Kind.ORAL]
    return sorted(due, key=lambda pair: (pair[0], pair[1].id))
