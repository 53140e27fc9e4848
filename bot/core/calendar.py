"""The programme as an iCalendar file (RFC 5545) that Google Calendar, Apple Calendar and Thunderbird import.

Built with the `icalendar` library, which escapes text, folds long lines and ends them with CRLF.
Every time is written in UTC (`...Z`): no floating times, no VTIMEZONE for a client to misread.
A UID is the talk id and the conference, so importing a newer file updates events instead of
doubling them.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterable
from dataclasses import dataclass

from icalendar import Calendar, Event

from bot.core.answers import find_talk
from bot.core.errors import UserError
from bot.core.schedule import Kind, Schedule, Talk
from bot.core.search import SearchIndex

PRODID = "-//session-bot//Conference session bot//EN"
UID_DOMAIN = "session-bot"
FILENAME_MAX = 80  # characters of an attachment's name, ".ics" included
_NOT_SLUG = re.compile(r"[^a-z0-9]+")
_LINE_BREAKS = re.compile("\r\n|[\r\x0b\x0c\x1c-\x1e\x85\u2028\u2029]")
_CONTROLS = re.compile("[\x00-\x08\x0e-\x1f\x7f-\x9f]")  # not allowed in iCalendar text (RFC 5545, 3.3.11)


class NoFollowedTalks(UserError):
    """`/calendar mine` from someone who follows nothing (or only talks no longer in the programme)."""

    def __init__(self, removed: int = 0) -> None:
        if removed:
            said = f"The {removed} talks you follow are no longer" if removed > 1 else "The talk you follow is no longer"
            super().__init__(f"{said} in the programme: /remind talk … follows another, then /calendar mine gives you its calendar.")
        else:
            super().__init__("You follow no talks yet: /remind talk … follows one, then /calendar mine gives you their calendar.")


def slug(text: str, limit: int = 60) -> str:
    """Lowercase ASCII letters, digits and hyphens: safe in a UID and in a file name."""
    return _NOT_SLUG.sub("-", text.lower()).strip("-")[:limit].strip("-")


def conference_slug(schedule: Schedule) -> str:
    return slug(schedule.conference or schedule.name) or "conference"


def ical_text(text: str) -> str:
    """Text a calendar can hold: line breaks as `\\n` and no control characters (the library escapes the rest)."""
    return _CONTROLS.sub("", _LINE_BREAKS.sub("\n", text))


def programme_talks(schedule: Schedule, *, include_breaks: bool = False) -> list[Talk]:
    return [t for t in schedule.talks if include_breaks or t.kind is not Kind.BREAK]


def event_uid(talk: Talk, schedule: Schedule) -> str:
    """`<talk-id>@<conference-slug>.session-bot`: the same talk gets the same UID in every file."""
    return f"{talk.id}@{conference_slug(schedule)}.{UID_DOMAIN}"


def calendar_ics(schedule: Schedule, talks: Iterable[Talk] | None, now: dt.datetime, *, include_breaks: bool = False, abstracts: bool = True) -> bytes:
    """The .ics of `talks` (None: the whole programme), soonest first; DTSTAMP is `now`.

    Breaks of the whole programme are left out unless `include_breaks`; talks passed explicitly
    were chosen by the user and are kept whatever their kind. Without `abstracts` a big
    programme fits an attachment limit.
    """
    if talks is None:
        talks = programme_talks(schedule, include_breaks=include_breaks)
    stamp = now.astimezone(dt.UTC)
    calendar = Calendar()
    calendar.add("prodid", PRODID)
    calendar.add("version", "2.0")
    calendar.add("calscale", "GREGORIAN")
    calendar.add("method", "PUBLISH")
    calendar.add("x-wr-calname", ical_text(schedule.conference or schedule.name))
    for talk in sorted(set(talks), key=lambda t: (t.start, t.id)):
        calendar.add_component(_event(talk, schedule, stamp, abstracts))
    return calendar.to_ical()


def _event(talk: Talk, schedule: Schedule, stamp: dt.datetime, abstracts: bool) -> Event:
    session = schedule.session_of(talk)
    event = Event()
    event.add("uid", event_uid(talk, schedule))
    event.add("dtstamp", stamp)
    event.add("dtstart", talk.start.astimezone(dt.UTC))
    event.add("dtend", talk.end.astimezone(dt.UTC))
    event.add("summary", ical_text(talk.display_title))
    event.add("description", ical_text(event_description(talk, abstract=abstracts)))
    event.add("location", ical_text(session.room or session.name))
    if talk.url:
        event.add("url", ical_text(talk.url))
    return event


def event_description(talk: Talk, *, abstract: bool = True) -> str:
    """Kind, authors, abstract and link, one paragraph each: readable in any calendar's event view."""
    parts = [talk.kind.label]
    if talk.authors:
        parts.append(", ".join(talk.authors))
    if talk.abstract and abstract:
        parts.append(talk.display_abstract)
    if talk.url:  # Google Calendar shows no URL property; the description carries it too
        parts.append(talk.url)
    return "\n\n".join(parts)


def followed_talks(schedule: Schedule, talk_ids: Iterable[str]) -> list[Talk]:
    """The followed talks still in the programme; NoFollowedTalks when none is."""
    ids = list(dict.fromkeys(talk_ids))
    talks = [t for t in map(schedule.talk, ids) if t is not None]
    if not talks:
        raise NoFollowedTalks(removed=len(ids))
    return talks


def calendar_filename(schedule: Schedule, talk: Talk | None = None, *, mine: bool = False) -> str:
    """`neurips-2020.ics`, `neurips-2020-<talk-id>.ics` or `neurips-2020-mine.ics`: ASCII, short."""
    what = "mine" if mine else slug(talk.id, 40) if talk is not None else ""
    stem = "-".join(filter(None, [conference_slug(schedule)[: FILENAME_MAX - len(what) - 5], what]))
    return f"{stem.strip('-') or 'calendar'}.ics"


class CalendarTooLarge(UserError):
    def __init__(self, size: int, limit: int) -> None:
        super().__init__(
            f"That calendar is {size / 1e6:.1f} MB even without abstracts, more than the {limit / 1e6:.0f} MB Discord lets a bot attach. "
            "Pick one talk (/calendar talk:…), or ask the organisers for the file (python -m bot ics)."
        )


class TalkOrMine(UserError):
    def __init__(self) -> None:
        super().__init__("Choose either one talk or mine, not both: /calendar talk:… or /calendar mine:True.")


@dataclass(frozen=True, slots=True)
class CalendarFile:
    """A calendar ready to attach or write: its file name, its bytes and how many events it holds."""

    filename: str
    data: bytes
    events: int
    label: str  # what it holds: the conference, a talk's title, or "The talks you follow"
    abstracts: bool = True


def make_calendar(
    schedule: Schedule,
    index: SearchIndex,
    now: dt.datetime,
    *,
    query: str | None = None,
    followed: Iterable[str] | None = None,
    max_bytes: int | None = None,
) -> CalendarFile:
    """The whole programme, one talk (`query`, resolved like /talk) or the followed talk ids.

    Over `max_bytes` (an attachment limit) the abstracts are left out; still over, CalendarTooLarge.
    """
    if query is not None and followed is not None:
        raise TalkOrMine
    if query is not None:
        talk = find_talk(index, query)
        talks, filename, label = [talk], calendar_filename(schedule, talk), talk.display_title
    elif followed is not None:
        talks, filename, label = followed_talks(schedule, followed), calendar_filename(schedule, mine=True), "The talks you follow"
    else:
        talks, filename, label = programme_talks(schedule), calendar_filename(schedule), schedule.conference or schedule.name
    data = calendar_ics(schedule, talks, now)
    if max_bytes is None or len(data) <= max_bytes:
        return CalendarFile(filename, data, len(talks), label)
    data = calendar_ics(schedule, talks, now, abstracts=False)
    if len(data) > max_bytes:
        raise CalendarTooLarge(len(data), max_bytes)
    return CalendarFile(filename, data, len(talks), label, abstracts=False)
