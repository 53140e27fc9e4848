"""The announcement of a programme change: one embed, grouped, at most about ten lines, no pings."""

from __future__ import annotations

import discord
from discord.utils import format_dt

from bot.core.changes import Change, Changes, What
from bot.discord_ui import render

MAX_LINES = 10
HEADINGS = {
    What.REMOVED: "Cancelled",
    What.MOVED: "Moved",
    What.ADDED: "Added",
    What.RETITLED: "Retitled",
    What.SPEAKERS: "Speakers changed",
}


def _title(change: Change, limit: int = 90) -> str:
    return f"**{render.fit(render.clean(change.talk.display_title), limit)}**"


def change_line(change: Change) -> str:
    talk, old = change.talk, change.old
    if change.what is What.REMOVED:
        return f"{_title(change)} ({format_dt(talk.start, 'f')}) will not take place"
    if change.what is What.ADDED:
        room = f" in {render.clean(change.new_room)}" if change.new_room else ""
        return f"{_title(change)}: {format_dt(talk.start, 'f')}{room}"
    if change.what is What.MOVED and old is not None:
        parts = []
        if (old.start, old.end) != (talk.start, talk.end):
            parts.append(f"now {format_dt(talk.start, 'f')} ({format_dt(talk.start, 'R')}), was {format_dt(old.start, 'f')}")
        if change.old_room != change.new_room:
            parts.append(f"now in {render.clean(change.new_room)}, was {render.clean(change.old_room)}")
        return f"{_title(change)}: {'; '.join(parts)}"
    if change.what is What.RETITLED and old is not None:
        return f"{_title(change)}, was “{render.fit(render.clean(old.display_title), 80)}”"
    return f"{_title(change)}: now {render.fit(render.clean(', '.join(talk.authors)) or 'no speakers listed', 200)}"


def render_changes(changes: Changes) -> render.Reply:
    """Grouped by kind of change, each group by time; after MAX_LINES lines, "and N more"."""
    lines: list[str] = []
    shown = 0
    for what, heading in HEADINGS.items():
        group = changes.of(what)
        if not group or shown >= MAX_LINES:
            continue
        lines.append(f"__{heading}__")
        for change in group[: MAX_LINES - shown]:
            lines.append(f"• {change_line(change)}")
            shown += 1
    if len(changes) > shown:
        lines.append(f"…and {len(changes) - shown} more change{'s' * (len(changes) - shown != 1)}: see /schedule")
    embed = discord.Embed(title="Programme changes", description=render.fit("\n".join(lines), render.DESCRIPTION_MAX), colour=render.COLOUR)
    return render.Reply(embeds=(render.ensure_fits(embed),), allowed_mentions=discord.AllowedMentions.none())
