"""One pure function per question a user can ask. Each takes the schedule (or its index) and `now`."""

from __future__ import annotations

import datetime as dt
import itertools
from dataclasses import dataclass
from enum import StrEnum
from functools import lru_cache
from zoneinfo import ZoneInfo

from bot.core.errors import AmbiguousQuery, AuthorNotFound, EmptyQuery, TalkNotFound
from bot.core.schedule import Schedule, Session, Talk
from bot.core.search import Author, SearchIndex, clearly_ahead

NEXT_COUNT = 3


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


@dataclass(frozen=True, slots=True)
class NowAnswer:
    phase: Phase
    current: tuple[Talk, ...]
    following: Talk | None
    last_session: Session | None
    next_session: Session | None


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
    return NextAnswer(phase, tuple(found), last, nxt)


def on_now(schedule: Schedule, now: dt.datetime) -> NowAnswer:
    """What is running at `now` (talks, Q&As or breaks, in any room) and what follows."""
    phase, last, nxt = _phase(schedule, now)
    upto = schedule.first_starting_after(now)
    current = []
    # Items are sorted by start; scan back only over items that could still be running.
    longest = schedule.longest_item
    for i in range(upto - 1, -1, -1):
        talk = schedule.talks[i]
        if talk.start + longest <= now:
            break
        if talk.start <= now < talk.end:
            current.append(talk)
    following = schedule.talks[upto] if upto < len(schedule.talks) else None
    return NowAnswer(phase, tuple(reversed(current)), following, last, nxt)


def agenda(schedule: Schedule, session_id: str | None = None) -> tuple[Session, ...]:
    if session_id is None:
        return schedule.sessions
    return tuple(s for s in schedule.sessions if s.id == session_id)


def find_talk(index: SearchIndex, query: str) -> Talk:
    """A talk by exact id (an autocomplete pick) or by free text; typed errors when unsure."""
    query = query.strip()
    if not query:
        raise EmptyQuery("a talk")
    exact = index.schedule.talk(query)
    if exact is not None:
        return exact
    matches = index.find_talks(query, limit=5, prefix_last=False)
    if not matches:
        close = index.close_titles(query)
        raise TalkNotFound(query, tuple(talk_choice_name(t, index.schedule) for t in close))
    if not clearly_ahead([m.score for m in matches]):
        tied = [m for m in matches if matches[0].score - m.score < 2 * 6.0]
        raise AmbiguousQuery(query, tuple(talk_choice_name(m.talk, index.schedule) for m in tied))
    return matches[0].talk


def find_author(index: SearchIndex, query: str) -> Author:
    """An author by key (an autocomplete pick) or by name, surname or a misspelling of either."""
    query = query.strip()
    if not query:
        raise EmptyQuery("an author")
    exact = index.author(query)
    if exact is not None:
        return exact
    matches = index.find_authors(query, limit=5)
    if not matches:
        raise AuthorNotFound(query, tuple(a.name for a in index.close_authors(query)))
    if not clearly_ahead([m.score for m in matches]):
        tied = [m for m in matches if matches[0].score - m.score < 2 * 6.0]
        raise AmbiguousQuery(query, tuple(m.author.name for m in tied), what="authors")
    return matches[0].author


@dataclass(frozen=True, slots=True)
class Suggestion:
    """One autocomplete choice: `value` resolves exactly, `name` is what the user sees."""

    value: str
    name: str


def suggest_talks(index: SearchIndex, query: str, now: dt.datetime, limit: int = 25) -> list[Suggestion]:
    """Autocomplete for talk options; with no input, the talks still to come."""
    if query.strip():
        talks = [m.talk for m in index.find_talks(query, limit=limit)]
    else:
        everything = index.schedule.talks
        upcoming = (everything[i] for i in range(index.schedule.first_starting_after(now), len(everything)))
        talks = list(itertools.islice((t for t in upcoming if t.kind.value != "break"), limit))
        talks = talks or list(itertools.islice((t for t in everything if t.is_talk), limit))
    return [Suggestion(t.id, talk_choice_name(t, index.schedule)) for t in talks]


def suggest_authors(index: SearchIndex, query: str, now: dt.datetime, limit: int = 25) -> list[Suggestion]:
    """Autocomplete for author options; with no input, the authors of the next talks."""
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
    return [Suggestion(a.key, _cut(f"{a.name} · {len(a.talks)} talk{'s' * (len(a.talks) != 1)}", 100)) for a in authors]


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
