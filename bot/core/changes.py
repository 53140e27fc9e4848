"""What changed between two versions of the programme, by item id (pure).

Organisers move, cancel, add and retitle talks while the conference runs. The bot compares each
new version with the one it serves and announces the difference; an item keeps its id across
versions (the source's guid), so a talk that moves is the same talk at a new time.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from enum import StrEnum

from bot.core.schedule import Schedule, Talk


class What(StrEnum):
    ADDED = "added"
    REMOVED = "removed"  # cancelled, or taken out of the programme
    MOVED = "moved"  # new start or end, or a new room
    RETITLED = "retitled"
    SPEAKERS = "speakers"


@dataclass(frozen=True, slots=True)
class Change:
    what: What
    talk: Talk  # the new version's talk (the old one for REMOVED)
    old: Talk | None = None  # the old version's talk, for MOVED, RETITLED, SPEAKERS
    old_room: str = ""
    new_room: str = ""


@dataclass(frozen=True)
class Changes:
    items: tuple[Change, ...] = ()
    by_talk: dict[str, tuple[What, ...]] = field(default_factory=dict)

    def __bool__(self) -> bool:
        return bool(self.items)

    def __len__(self) -> int:
        return len(self.items)

    def of(self, what: What) -> list[Change]:
        return [c for c in self.items if c.what is what]

    @property
    def moved(self) -> dict[str, dt.datetime]:
        """Talk id -> its old start, for talks whose start changed."""
        return {c.talk.id: c.old.start for c in self.items if c.what is What.MOVED and c.old is not None and c.old.start != c.talk.start}

    def summary(self) -> str:
        counts = [(w, len(self.of(w))) for w in What]
        return ", ".join(f"{n} {w.value}" for w, n in counts if n) or "no changes"


ORDER = (What.REMOVED, What.MOVED, What.ADDED, What.RETITLED, What.SPEAKERS)


def _room(schedule: Schedule, talk: Talk) -> str:
    session = schedule.session_of(talk)
    return session.room or session.name


def diff(old: Schedule, new: Schedule) -> Changes:
    """Every change from `old` to `new`, grouped in announcement order, each group by start time."""
    found: list[Change] = []
    for talk in new.talks:
        before = old.talk(talk.id)
        if before is None:
            found.append(Change(What.ADDED, talk, new_room=_room(new, talk)))
            continue
        old_room, new_room = _room(old, before), _room(new, talk)
        if (before.start, before.end) != (talk.start, talk.end) or old_room != new_room:
            found.append(Change(What.MOVED, talk, before, old_room, new_room))
        if before.title != talk.title:
            found.append(Change(What.RETITLED, talk, before))
        if before.authors != talk.authors:
            found.append(Change(What.SPEAKERS, talk, before))
    found.extend(Change(What.REMOVED, talk, old_room=_room(old, talk)) for talk in old.talks if new.talk(talk.id) is None)
    found.sort(key=lambda c: (ORDER.index(c.what), c.talk.start, c.talk.id))
    by_talk: dict[str, tuple[What, ...]] = {}
    for c in found:
        by_talk[c.talk.id] = (*by_talk.get(c.talk.id, ()), c.what)
    return Changes(tuple(found), by_talk)
