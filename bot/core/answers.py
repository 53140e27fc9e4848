"""One pure function per question a user can ask. Each takes the schedule (or its index) and `now`."""

from __future__ import annotations

import datetime as dt
import itertools
from dataclasses import dataclass
from enum import StrEnum
from functools import lru_cache
from zoneinfo import ZoneInfo

from bot.core.errors import AmbiguousQuery, AuthorNotFound, EmptyQuery, QueryTooLong, TalkNotFound
from bot.core.schedule import Schedule, Session, Talk
from bot.core.search import CLEAR_MARGIN, Author, SearchIndex, clearly_ahead, content_words
from bot.core.text import fold

NEXT_COUNT = 3
QUERY_MAX = 200  # characters: no title or name is longer, and searching 6,000 of them takes a second
WEAK_SCORE = 25.0  # a best match below this is a guess (a misspelt abstract word): offered, not answered


class Phase(StrEnum):
    BEFORE = "before"  # nothing has started yet
    DURING = "during"  # a session is running
    BETWEEN = "between"  # one session ended, another is to come
    AFTER = "after"  # everything is over


@dataclass(frozen=True, slots=True)
class NextAnswer:
    phase: Phase
    talks: tuple[Talk, ...]
    last_session: Session | None  # the session that ended most recently (for BETWEEN/AFTER)
    next_session: Session | None
    running: tuple[Session, ...] = ()  # the sessions with an item on at `now` (DURING)


@dataclass(frozen=True, slots=True)
class NowAnswer:
    phase: Phase
    current: tuple[Talk, ...]
    following: Talk | None
    last_session: Session | None
    next_session: Session | None
    running: tuple[Session, ...] = ()  # the sessions of `current`, in order


def _phase(schedule: Schedule, now: dt.datetime) -> tuple[Phase, Session | None, Session | None]:
    running, last, nxt = schedule.sessions_around(now)
    if running:
        return Phase.DURING, last, nxt
    if last is None:
        return Phase.BEFORE, None, nxt
    return (Phase.BETWEEN if nxt else Phase.AFTER), last, nxt


def next_talks(schedule: Schedule, now: dt.datetime, count: int = NEXT_COUNT) -> NextAnswer:
    """The next talks and Q&As to start after `now` (breaks are not talks), soonest first."""
    phase, last, nxt = _phase(schedule, now)
    found: list[Talk] = []
    talks = schedule.talks
    for i in range(schedule.first_starting_after(now), len(talks)):  # no slice: O(count), not O(n)
        talk = talks[i]
        if talk.kind.value != "break":
            found.append(talk)
            if len(found) == count:
                break
    running = _sessions_of(schedule, _items_on(schedule, now)) if phase is Phase.DURING else ()
    return NextAnswer(phase, tuple(found), last, nxt, running)


def on_now(schedule: Schedule, now: dt.datetime) -> NowAnswer:
    """What is running at `now` (talks, Q&As or breaks, in any room) and what follows."""
    phase, last, nxt = _phase(schedule, now)
    upto = schedule.first_starting_after(now)
    current = _items_on(schedule, now)
    following = schedule.talks[upto] if upto < len(schedule.talks) else None
    return NowAnswer(phase, current, following, last, nxt, _sessions_of(schedule, current))


def _items_on(schedule: Schedule, now: dt.datetime) -> tuple[Talk, ...]:
    """The items running at `now`, by start; a scan back over only the items that could still run."""
    current = []
    longest = schedule.longest_item
    for i in range(schedule.first_starting_after(now) - 1, -1, -1):
        talk = schedule.talks[i]
        if talk.start + longest <= now:
            break
        if talk.start <= now < talk.end:
            current.append(talk)
    return tuple(reversed(current))


def _sessions_of(schedule: Schedule, items: tuple[Talk, ...]) -> tuple[Session, ...]:
    return tuple({t.session_id: schedule.session_of(t) for t in items}.values())


def agenda(schedule: Schedule, session_id: str | None = None) -> tuple[Session, ...]:
    if session_id is None:
        return schedule.sessions
    return tuple(s for s in schedule.sessions if s.id == session_id)


def _checked(query: str, what: str) -> str:
    """The query without surrounding blanks; typed errors for an empty or an over-long one."""
    query = query.strip()
    if not query:
        raise EmptyQuery(what)
    if len(query) > QUERY_MAX:
        raise QueryTooLong(len(query), QUERY_MAX)
    return query


def find_talk(index: SearchIndex, query: str) -> Talk:
    """A talk by exact id (an autocomplete pick) or by free text; typed errors when unsure."""
    query = _checked(query, "a talk")
    exact = index.schedule.talk(query)
    if exact is not None:
        return exact
    if not content_words(query):  # only punctuation, markdown, stopwords or a lone letter: nothing to look for
        raise TalkNotFound(query)
    matches = index.find_talks(query, limit=5, prefix_last=False)
    if not matches:
        close = index.close_titles(query)
        raise TalkNotFound(query, tuple(talk_choice_name(t, index.schedule) for t in close))
    best = matches[0].score
    if best >= WEAK_SCORE and clearly_ahead([m.score for m in matches]):
        return matches[0].talk
    if best < WEAK_SCORE:
        raise TalkNotFound(query, tuple(talk_choice_name(m.talk, index.schedule) for m in matches[:3]))
    raise AmbiguousQuery(query, tuple(talk_choice_name(m.talk, index.schedule) for m in matches if _tied(best, m.score)))


def find_author(index: SearchIndex, query: str) -> Author:
    """An author or chair by key (an autocomplete pick) or by name, surname or a misspelling of either."""
    query = _checked(query, "an author")
    exact = index.author(query) or index.author_named(query)
    if exact is not None:
        return exact
    if len(fold(query)) < 2:  # one letter starts too many names to pick one
        raise AuthorNotFound(query, tuple(a.name for a in index.close_authors(query)))
    matches = index.find_authors(query, limit=5)
    if not matches:
        raise AuthorNotFound(query, tuple(a.name for a in index.close_authors(query)))
    if not clearly_ahead([m.score for m in matches]):
        tied = [m for m in matches if _tied(matches[0].score, m.score)]
        raise AmbiguousQuery(query, tuple(m.author.name for m in tied), what="authors")
    return matches[0].author


def _tied(best: float, score: float) -> bool:
    """Close enough to the best to be listed beside it when the answer is unclear."""
    return best - score < 2 * CLEAR_MARGIN


@dataclass(frozen=True, slots=True)
class Suggestion:
    """One autocomplete choice: `value` resolves exactly, `name` is what the user sees."""

    value: str
    name: str


def suggest_talks(index: SearchIndex, query: str, now: dt.datetime, limit: int = 25) -> list[Suggestion]:
    """Autocomplete for talk options; with no input, the talks still to come."""
    query = query[:QUERY_MAX]
    if query.strip():
        talks = [m.talk for m in index.find_talks(query, limit=limit)]
    else:
        everything = index.schedule.talks
        upcoming = (everything[i] for i in range(index.schedule.first_starting_after(now), len(everything)))
        talks = list(itertools.islice((t for t in upcoming if t.kind.value != "break"), limit))
        talks = talks or list(itertools.islice((t for t in everything if t.is_talk), limit))
    return [Suggestion(t.id, talk_choice_name(t, index.schedule)) for t in talks]


def suggest_authors(index: SearchIndex, query: str, now: dt.datetime, limit: int = 25) -> list[Suggestion]:
    """Autocomplete for author and chair options; with no input, the authors of the next talks."""
    query = query[:QUERY_MAX]
    if query.strip():
        authors = [m.author for m in index.find_authors(query, limit=limit)]
    else:
        found: dict[str, Author] = {}
        for talk in next_talks(index.schedule, now, count=limit).talks or index.schedule.talks:
            for name in talk.authors:
                author = index.author_named(name)
                if author is not None:
                    found.setdefault(author.key, author)
            if len(found) >= limit:
                break
        authors = list(found.values())[:limit]
    return [Suggestion(a.key, _cut(f"{a.name} · {author_role(a)}", 100)) for a in authors]


def author_role(author: Author) -> str:
    """'2 talks', 'chair of Session X', '1 talk, chair of Session X', 'chair of 3 sessions'."""
    parts = [f"{len(author.talks)} talk{'s' * (len(author.talks) != 1)}"] if author.talks else []
    if len(author.chaired) == 1:
        parts.append(f"chair of {author.chaired[0].name}")
    elif author.chaired:
        parts.append(f"chair of {len(author.chaired)} sessions")
    return ", ".join(parts)


def talk_choice_name(talk: Talk, schedule: Schedule) -> str:
    return _choice_name(talk, schedule.session_of(talk).timezone)


@lru_cache(maxsize=8192)
def _choice_name(talk: Talk, tz: ZoneInfo) -> str:
    """Memoised: autocomplete shows the same talks at every keystroke."""
    return _cut(f"{talk.start.astimezone(tz):%H:%M} {talk.kind.label} · {talk.display_title}", 100)


def _cut(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def until(now: dt.datetime, when: dt.datetime) -> str:
    """'in 1 h 5 min', 'now', '3 min ago': how a person says the distance to a moment."""
    seconds = (when - now).total_seconds()
    if abs(seconds) < 60:
        return "now"
    minutes = round(abs(seconds) / 60)
    days, rest = divmod(minutes, 24 * 60)
    hours, mins = divmod(rest, 60)
    parts = [f"{days} day{'s' * (days != 1)}"] if days else []
    if hours and days < 3:
        parts.append(f"{hours} h")
    if mins and not days:
        parts.append(f"{mins} min")
    text = " ".join(parts)
    return f"in {text}" if seconds > 0 else f"{text} ago"
