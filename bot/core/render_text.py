"""Plain-text rendering of answers, for the terminal console (and log lines)."""

from __future__ import annotations

import datetime as dt
import textwrap
from collections.abc import Sequence
from zoneinfo import ZoneInfo

from bot.core.answers import NextAnswer, NowAnswer, Phase, author_role, until
from bot.core.schedule import Schedule, Session, Talk
from bot.core.search import Author
from bot.core.text import shorten

WIDTH = 88
_PLURALS = {"Oral": "orals", "Spotlight": "spotlights", "Q&A": "Q&As", "Break": "breaks"}


def day(moment: dt.datetime, tz: ZoneInfo) -> str:
    return f"{moment.astimezone(tz):%a %-d %b %Y}"


def clock_time(moment: dt.datetime, tz: ZoneInfo) -> str:
    local = moment.astimezone(tz)
    return f"{local:%H:%M} {local.tzname()}"


def span(talk: Talk, tz: ZoneInfo) -> str:
    start, end = talk.start.astimezone(tz), talk.end.astimezone(tz)
    return f"{start:%a %-d %b} {start:%H:%M}–{end:%H:%M} {start.tzname()}"


def session_span(session: Session, tz: ZoneInfo) -> str:
    start, end = session.start.astimezone(tz), session.end.astimezone(tz)
    return f"{start:%a %-d %b} {start:%H:%M}–{end:%H:%M} {start.tzname()}"


def names_and(names: Sequence[str]) -> str:
    """'A', 'A and B', 'A, B and C'."""
    return names[0] if len(names) == 1 else f"{', '.join(names[:-1])} and {names[-1]}"


def chairs_sentence(session: Session) -> str:
    return f" Chaired by {names_and(session.chairs)}." if session.chairs else ""


def phase_line(phase: Phase, last: Session | None, nxt: Session | None, now: dt.datetime, tz: ZoneInfo) -> str:
    """The plain sentence for where we are in the programme, or '' while a session runs."""
    if phase is Phase.BEFORE and nxt:
        return f"{nxt.name} starts on {day(nxt.start, tz)} at {clock_time(nxt.start, tz)} ({until(now, nxt.start)}).{chairs_sentence(nxt)}"
    if phase is Phase.BETWEEN and last and nxt:
        when = f"{day(nxt.start, tz)} at {clock_time(nxt.start, tz)}"
        return f"{last.name} ended on {day(last.end, tz)}. Next: {nxt.name}, {when}.{chairs_sentence(nxt)}"
    if phase is Phase.AFTER and last:
        return f"{last.name} ended on {day(last.end, tz)} at {clock_time(last.end, tz)}. There are no more talks."
    return ""


def talk_line(talk: Talk, now: dt.datetime, tz: ZoneInfo) -> str:
    who = f" — {', '.join(talk.authors)}" if talk.authors else ""
    return f"{clock_time(talk.start, tz)} ({until(now, talk.start)}) [{talk.kind.label}] {talk.display_title}{who}"


def no_more_talks(answer: NextAnswer, now: dt.datetime, tz: ZoneInfo) -> str:
    """What /next says when no talk is left: when the running session ends, if one runs."""
    if not answer.running:
        return "There are no more talks."
    ends = max(s.end for s in answer.running)
    names = names_and([s.name for s in answer.running])
    return f"There are no more talks: {names} end{'s' * (len(answer.running) == 1)} at {clock_time(ends, tz)} ({until(now, ends)})."


def render_next(answer: NextAnswer, now: dt.datetime, tz: ZoneInfo) -> str:
    lines = [phase_line(answer.phase, answer.last_session, answer.next_session, now, tz)]
    if answer.talks:
        lines.append("Next up:")
        lines += [f"  {talk_line(t, now, tz)}" for t in answer.talks]
    elif not lines[0]:
        lines.append(no_more_talks(answer, now, tz))
    return "\n".join(line for line in lines if line)


def chairs_line(session: Session) -> str:
    return f"{session.name} — chairs: {', '.join(session.chairs)}"


def render_now(answer: NowAnswer, now: dt.datetime, tz: ZoneInfo) -> str:
    lines = []
    if answer.current:
        for talk in answer.current:
            lines.append(f"On now: [{talk.kind.label}] {talk.display_title} (until {clock_time(talk.end, tz)}, ends {until(now, talk.end)})")
        lines += [f"In {chairs_line(s)}" for s in answer.running if s.chairs]
    else:
        lines.append(phase_line(answer.phase, answer.last_session, answer.next_session, now, tz) or "Nothing is on right now.")
    if answer.following:
        lines.append(f"Then: {talk_line(answer.following, now, tz)}")
    return "\n".join(lines)


def render_agenda(sessions: tuple[Session, ...], tz: ZoneInfo) -> str:
    out = []
    for session in sessions:
        chairs = f" — chairs: {', '.join(session.chairs)}" if session.chairs else ""
        out.append(f"{session.name} · {day(session.start, tz)}{chairs}")
        for talk in session.items:
            start, end = talk.start.astimezone(tz), talk.end.astimezone(tz)
            out.append(f"  {start:%H:%M}–{end:%H:%M}  {talk.kind.label:<9} {talk.display_title}")
    return "\n".join(out)


def render_talk(talk: Talk, schedule: Schedule, tz: ZoneInfo, *, abstract: bool = True) -> str:
    session = schedule.session_of(talk)
    lines = [f"{talk.display_title}", f"{talk.kind.label} · {span(talk, tz)} · {session.name}"]
    if talk.authors:
        lines.append("Authors: " + ", ".join(talk.authors))
    if talk.follows:
        titles = [schedule.talk(ref).display_title for ref in talk.follows if schedule.talk(ref)]
        lines.append("Questions on: " + "; ".join(titles))
    if abstract and talk.abstract:
        lines.append("")
        lines.append(textwrap.fill(talk.display_abstract, WIDTH))
    elif talk.abstract:
        lines.append(f"{teaser(talk.display_abstract)}  (/abstract for the full text)")
    return "\n".join(lines)


def teaser(abstract: str, limit: int = 160) -> str:
    """The abstract's first sentence, cut to one line."""
    first = abstract.split(". ", 1)[0].rstrip(".") + "."
    return shorten(first, limit)


def render_author(author: Author, now: dt.datetime, tz: ZoneInfo) -> str:
    lines = [f"{author.name} — {author_role(author)}"]
    for session in author.chaired:
        lines.append(f"  {session_span(session, tz)} ({until(now, session.start)}) [Chair] {session.name}")
    for talk in author.talks:
        lines.append(f"  {span(talk, tz)} ({until(now, talk.start)}) [{talk.kind.label}] {talk.display_title}")
    return "\n".join(lines)


def render_chairs(sessions: Sequence[Session], most: int = 10) -> str:
    """The chairs of each session, for /help; '' when no session names any."""
    chaired = [s for s in sessions if s.chairs]
    if not chaired:
        return ""
    lines = ["Chairs:", *(f"  {chairs_line(s)}" for s in chaired[:most])]
    if len(chaired) > most:
        lines.append(f"  … and {len(chaired) - most} more sessions (/schedule lists them)")
    return "\n".join(lines)


def render_summary(session: Session) -> str:
    """One line per session for `check` and start-up logs."""
    counts: dict[str, int] = {}
    for talk in session.items:
        counts[talk.kind.label] = counts.get(talk.kind.label, 0) + 1
    parts = ", ".join(f"{n} {_PLURALS.get(label, f'{label.lower()}s') if n != 1 else label.lower()}" for label, n in counts.items())
    tz = session.timezone
    when = f"{day(session.start, tz)} {session.start.astimezone(tz):%H:%M}–{clock_time(session.end, tz)} ({tz.key})"
    return f"{session.id}: {session.name} · {when} · {len(session.items)} items: {parts}"
