"""Answers as Discord embeds, always inside Discord's size limits and never able to ping.

Times are `<t:UNIX:f>` / `<t:UNIX:R>` markup, which each reader's client shows in their own
zone; the session's zone is written out next to them. Every piece of text from the schedule
or the user is escaped (markdown and mentions) before it is placed in an embed.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field

import discord
from discord.utils import escape_markdown, escape_mentions, format_dt

from bot.core.answers import NextAnswer, NowAnswer, author_role
from bot.core.errors import AmbiguousQuery, AuthorNotFound, EmptyQuery, QueryTooLong, TalkNotFound, UserError
from bot.core.render_text import day, no_more_talks, phase_line
from bot.core.schedule import Schedule, Session, Talk
from bot.core.search import Author

# Discord's hard limits (../shared/DISCORD_FACTS.md).
TITLE_MAX = 256
DESCRIPTION_MAX = 4096
FIELDS_MAX = 25
FIELD_NAME_MAX = 256
FIELD_VALUE_MAX = 1024
FOOTER_MAX = 2048
EMBED_TOTAL_MAX = 6000
EMBEDS_PER_MESSAGE = 10
CONTENT_MAX = 2000

# Our own budgets, below the limits.
AGENDA_CHUNK = 2600  # description per agenda embed: two such embeds fit one message
AGENDA_TITLE_CHARS = 110  # a title in an agenda line
MAX_MESSAGES = 5  # one response and at most four follow-ups for a long /schedule
SHORT_ABSTRACT = 700  # /talk shows this much; /abstract shows it all
CHAIRS_CHARS = 300  # a session's chairs, wherever they are named

NO_PINGS = discord.AllowedMentions.none()
COLOUR = discord.Colour.blurple()
ERROR_COLOUR = discord.Colour.orange()


@dataclass(frozen=True)
class Reply:
    """One message: the interaction response, or a follow-up after it."""

    embeds: tuple[discord.Embed, ...] = ()
    content: str | None = None
    ephemeral: bool = False
    allowed_mentions: discord.AllowedMentions = field(default=NO_PINGS)


# --------------------------------------------------------------------------- text helpers


def clean(text: str) -> str:
    """Schedule or user text made inert: no markdown, no mentions (even short fake ids)."""
    text = escape_mentions(escape_markdown(text))
    return text.replace("<@", "<\u200b@").replace("<#", "<\u200b#")


CHANNELS_URL = "https://discord.com/channels"


def jump_link(guild_id: int, channel_id: int, message_id: int | None = None) -> str:
    """A link that opens a channel, a thread or a message in Discord."""
    return f"{CHANNELS_URL}/{guild_id}/{channel_id}" + (f"/{message_id}" if message_id is not None else "")


def fit(text: str, limit: int) -> str:
    """`text` cut to `limit` characters with an ellipsis, never ending on a lone backslash."""
    if len(text) <= limit:
        return text
    return text[: limit - 1].rstrip("\\") + "…"


def join_fitting(items: Sequence[str], limit: int, sep: str = ", ", more: str = "and {n} more") -> str:
    """As many items as fit in `limit`, then a note saying how many were left out."""
    out: list[str] = []
    used = 0
    for i, item in enumerate(items):
        rest = len(items) - i - 1
        note = f"{sep}… {more.format(n=rest)}" if rest else ""
        piece = (sep if out else "") + item
        if used + len(piece) + len(note) <= limit:
            out.append(item)
            used += len(piece)
            continue
        left = len(items) - i
        tail = f"… {more.format(n=left)}"
        return fit(sep.join(out) + (sep if out else "") + tail, limit)
    return sep.join(out)


def zone_of(talk: Talk, schedule: Schedule) -> str:
    return schedule.session_of(talk).timezone.key


def local_span(talk: Talk, schedule: Schedule) -> str:
    """'06:00–06:15 PST (America/Los_Angeles)': the session's own clock, written out."""
    tz = schedule.session_of(talk).timezone
    start, end = talk.start.astimezone(tz), talk.end.astimezone(tz)
    return f"{start:%a %-d %b %H:%M}–{end:%H:%M} {start.tzname()} ({tz.key})"


def when(talk: Talk, schedule: Schedule) -> str:
    """Reader's-zone timestamps first, then the session's zone."""
    return f"{format_dt(talk.start, 'f')} ({format_dt(talk.start, 'R')})\n{local_span(talk, schedule)}"


def headline(talk: Talk, limit: int = FIELD_NAME_MAX) -> str:
    return fit(f"{talk.kind.label} · {clean(talk.display_title)}", limit)


def authors_text(talk: Talk, limit: int = FIELD_VALUE_MAX) -> str:
    return join_fitting([clean(a) for a in talk.authors], limit)


def chairs_text(session: Session, limit: int = CHAIRS_CHARS) -> str:
    """'Chairs: A, B' (escaped, cut to `limit`), or '' for a session without chairs."""
    if not session.chairs:
        return ""
    label = "Chair: " if len(session.chairs) == 1 else "Chairs: "
    return label + join_fitting([clean(c) for c in session.chairs], limit - len(label))


def ensure_fits(embed: discord.Embed) -> discord.Embed:
    """Last guard on the 6000 total: shorten the description by whatever is over."""
    excess = len(embed) - EMBED_TOTAL_MAX
    if excess > 0 and embed.description:
        embed.description = fit(embed.description, max(1, len(embed.description) - excess - 1))
    return embed


def _embed(title: str, description: str = "", colour: discord.Colour = COLOUR) -> discord.Embed:
    return discord.Embed(title=fit(title, TITLE_MAX), description=fit(description, DESCRIPTION_MAX) or None, colour=colour)


def _field(embed: discord.Embed, name: str, value: str, *, inline: bool = False) -> None:
    if len(embed.fields) < FIELDS_MAX:
        embed.add_field(name=fit(name, FIELD_NAME_MAX) or "\u200b", value=fit(value, FIELD_VALUE_MAX) or "\u200b", inline=inline)


def one(embed: discord.Embed, *, ephemeral: bool = False) -> list[Reply]:
    return [Reply(embeds=(ensure_fits(embed),), ephemeral=ephemeral)]


# --------------------------------------------------------------------------- answers


def _talk_field(embed: discord.Embed, talk: Talk, schedule: Schedule, prefix: str = "") -> None:
    value = when(talk, schedule)
    if talk.authors:
        value += "\n" + authors_text(talk, FIELD_VALUE_MAX - len(value) - 1)
    _field(embed, prefix + headline(talk, FIELD_NAME_MAX - len(prefix)), value)


def _phase(answer: NextAnswer | NowAnswer, now: dt.datetime, schedule: Schedule) -> str:
    return clean(phase_line(answer.phase, answer.last_session, answer.next_session, now, schedule.timezone))


def render_next(answer: NextAnswer, schedule: Schedule, now: dt.datetime) -> list[Reply]:
    embed = _embed("Next up", _phase(answer, now, schedule))
    for talk in answer.talks:
        _talk_field(embed, talk, schedule)
    if not answer.talks:
        embed.description = embed.description or fit(clean(no_more_talks(answer, now, schedule.timezone)), DESCRIPTION_MAX)
    return one(embed)


def _running_text(sessions: Sequence[Session]) -> str:
    """Each running session with its chairs: '**Track 28** · Chairs: A, B'."""
    lines = [f"**{fit(clean(s.name), 200)}**" + (f" · {chairs_text(s)}" if s.chairs else "") for s in sessions]
    return join_fitting(lines, FIELD_VALUE_MAX, sep="\n", more="and {n} more sessions")


def render_now(answer: NowAnswer, schedule: Schedule, now: dt.datetime) -> list[Reply]:
    description = _running_text(answer.running) if answer.current else _phase(answer, now, schedule)
    embed = _embed("On now" if answer.current else "Nothing is on right now", description)
    for talk in answer.current:
        ends = f"until {format_dt(talk.end, 't')} (ends {format_dt(talk.end, 'R')}) · {zone_of(talk, schedule)}"
        value = ends + (f"\n{authors_text(talk, FIELD_VALUE_MAX - len(ends) - 1)}" if talk.authors else "")
        _field(embed, headline(talk), value)
    if answer.following is not None:
        _talk_field(embed, answer.following, schedule, prefix="Then: ")
    return one(embed)


def render_talk(talk: Talk, schedule: Schedule, *, full_abstract: bool = False) -> list[Reply]:
    session = schedule.session_of(talk)
    head = f"**{talk.kind.label}** · {clean(session.name)}"
    abstract = clean(talk.display_abstract)
    if abstract and not full_abstract and len(abstract) > SHORT_ABSTRACT:
        abstract = fit(abstract, SHORT_ABSTRACT) + "\n*(cut; `/abstract` shows all of it)*"
    elif abstract and len(head) + 2 + len(abstract) > DESCRIPTION_MAX:
        note = "\n*(abstract cut to fit Discord's limit)*"
        abstract = fit(abstract, DESCRIPTION_MAX - len(head) - 2 - len(note)) + note
    embed = _embed(clean(talk.display_title), f"{head}\n\n{abstract}" if abstract else head)
    _field(embed, "When", when(talk, schedule))
    if talk.authors:
        _field(embed, "Authors", authors_text(talk))
    titles = [clean(t.display_title) for ref in talk.follows if (t := schedule.talk(ref)) is not None]
    if titles:
        _field(embed, "Questions on", join_fitting(titles, FIELD_VALUE_MAX, sep="\n"))
    embed.set_footer(text=fit(f"id: {talk.id}", FOOTER_MAX))
    return one(embed)


def render_author(author: Author, schedule: Schedule) -> list[Reply]:
    """An author's talks and a chair's sessions (a person may be both), times in the reader's zone."""
    lines = [f"**Chair** of {fit(clean(s.name), 200)} · {format_dt(s.start, 'f')} ({format_dt(s.start, 'R')})" for s in author.chaired]
    lines += [f"{format_dt(t.start, 'f')} ({format_dt(t.start, 'R')}) · {headline(t, 300)}" for t in author.talks]
    embed = _embed(clean(author.name), join_fitting(lines, DESCRIPTION_MAX - 100, sep="\n", more="and {n} more"))
    zones = sorted({zone_of(t, schedule) for t in author.talks} | {s.timezone.key for s in author.chaired})
    embed.set_footer(text=fit(f"{clean(author_role(author))} · times in your own zone · sessions in {', '.join(zones)}", FOOTER_MAX))
    return one(embed)


def render_help(schedule: Schedule) -> list[Reply]:
    lines = [
        "`/next` the next talks, with their start in your own time zone",
        "`/now` what is on right now, and what follows",
        "`/schedule` the whole programme",
        "`/talk query` one talk: time, authors, abstract (pick from the list as you type)",
        "`/abstract query` a talk's full abstract",
        "`/author name` an author's talks, or the sessions a chair chairs",
        "`/remind talk|author|list|cancel` reminders for you, by direct message",
        "`/calendar` the programme, one talk, or what you follow, as a calendar file",
        "`/help` this message",
    ]
    embed = _embed(f"{clean(schedule.name)} bot", "\n".join(lines))
    chaired = [f"{fit(clean(s.name), 200)} · {chairs_text(s)}" for s in schedule.sessions if s.chairs]
    if chaired:
        _field(embed, "Session chairs", join_fitting(chaired, FIELD_VALUE_MAX, sep="\n", more="and {n} more sessions (see `/schedule`)"))
    embed.set_footer(text=fit(f"Times show in your own zone; the session runs in {schedule.timezone.key}.", FOOTER_MAX))
    return one(embed, ephemeral=True)


def render_user_error(err: UserError) -> list[Reply]:
    """A mistake the user can fix: ephemeral, with the suggestions escaped."""
    text = clean(err.message)
    if err.suggestions:
        text += "\n" + join_fitting([f"• {fit(clean(s), 200)}" for s in err.suggestions], DESCRIPTION_MAX - len(text) - 1, sep="\n")
        text += "\n*Tip: pick an entry from the list that appears as you type.*"
    titles = {AmbiguousQuery: "Please be more specific", EmptyQuery: "Nothing to look up", QueryTooLong: "Query too long"}
    title = titles.get(type(err), "Not found" if isinstance(err, TalkNotFound | AuthorNotFound) else "Sorry")
    return one(_embed(title, text, ERROR_COLOUR), ephemeral=True)


APOLOGY = "Sorry, something went wrong while answering that. It has been logged; please try again in a moment."


def render_apology() -> Reply:
    return Reply(content=APOLOGY, ephemeral=True)


STORAGE_APOLOGY = (
    "Sorry, I can't reach my storage for a moment, so I couldn't do that. Please try again in a minute; "
    "looking up the schedule (/talk, /next, /now) still works."
)


def render_storage_apology() -> Reply:
    """The state (PostgreSQL or the SQLite file) failed: nothing was saved, and nothing to fix on the user's side."""
    return Reply(content=STORAGE_APOLOGY, ephemeral=True)


# --------------------------------------------------------------------------- agenda


@dataclass
class _Chunk:
    embed: discord.Embed
    items: int


def _agenda_line(talk: Talk) -> str:
    if not talk.is_talk and talk.kind.value == "break":
        return f"{format_dt(talk.start, 't')} *{fit(clean(talk.display_title), AGENDA_TITLE_CHARS)}*"
    return f"{format_dt(talk.start, 't')} **{talk.kind.label}** · {fit(clean(talk.display_title), AGENDA_TITLE_CHARS)}"


def _session_chunks(session: Session) -> Iterator[_Chunk]:
    """A session's agenda as embeds of at most AGENDA_CHUNK characters, made only as they are asked for."""
    tz = session.timezone
    start = session.start.astimezone(tz)
    footer = fit(
        f"{day(session.start, tz)} {start:%H:%M}–{session.end.astimezone(tz):%H:%M} {start.tzname()} ({tz.key}) · times above are in your own zone",
        FOOTER_MAX,
    )
    title = fit(clean(session.name), TITLE_MAX)
    head = [f"*{chairs_text(session)}*"] if session.chairs else []  # the first embed names the chairs
    lines: list[str] = []
    size = sum(len(line) + 1 for line in head)
    for talk in session.items:
        line = _agenda_line(talk)
        if lines and size + len(line) + 1 > AGENDA_CHUNK:
            yield _agenda_chunk(title, head, lines, footer)
            title = fit(clean(session.name), TITLE_MAX - len(" (continued)")) + " (continued)"
            head, lines, size = [], [], 0
        lines.append(line)
        size += len(line) + 1
    if lines:
        yield _agenda_chunk(title, head, lines, footer)


def _agenda_chunk(title: str, head: list[str], lines: list[str], footer: str) -> _Chunk:
    embed = _embed(title, "\n".join(head + lines))
    embed.set_footer(text=footer)
    return _Chunk(embed, len(lines))


def pack(chunks: Iterable[_Chunk], max_messages: int = MAX_MESSAGES) -> tuple[list[list[discord.Embed]], int]:
    """Embeds grouped into messages (≤10 each, ≤6000 characters together), and how many items they show.

    Stops at the first chunk that no longer fits, so a conference-sized agenda is never rendered whole.
    """
    messages: list[list[discord.Embed]] = []
    total = 0
    shown = 0
    for chunk in chunks:
        size = len(ensure_fits(chunk.embed))
        if messages and len(messages[-1]) < EMBEDS_PER_MESSAGE and total + size <= EMBED_TOTAL_MAX:
            messages[-1].append(chunk.embed)
            total += size
        elif len(messages) < max_messages:
            messages.append([chunk.embed])
            total = size
        else:
            break
        shown += chunk.items
    return messages, shown


def render_agenda(sessions: Sequence[Session]) -> list[Reply]:
    """The programme, split over several embeds and messages; cut with a note past that."""
    items = sum(len(session.items) for session in sessions)
    if not items:
        return one(_embed("Schedule", "The schedule is empty."))
    messages, shown = pack(chunk for session in sessions for chunk in _session_chunks(session))
    replies = [Reply(embeds=tuple(m)) for m in messages]
    if shown < items:
        missing = items - shown
        note = f"The schedule is too long for Discord: {missing} more items are not shown. Use `/talk` or `/author` to look one up."
        replies[-1] = Reply(embeds=replies[-1].embeds, content=fit(note, CONTENT_MAX))
    return replies
