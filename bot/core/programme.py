"""The programme being served: the current schedule and its index, replaced whole by a new version.

Front-ends read `programme.schedule` and `programme.index` at each answer, so a reload takes effect
for the next question without a restart. A version that is refused leaves the served one in place
and is remembered, for the organisers' status view only.
"""

from __future__ import annotations

import asyncio
import datetime as dt
from dataclasses import dataclass

from bot.core.changes import Changes, What, diff
from bot.core.schedule import Schedule
from bot.core.search import SearchIndex


@dataclass(frozen=True, slots=True)
class Refusal:
    """The latest version could not be used: where it came from, why, and when (UTC)."""

    source: str
    reason: str
    at: dt.datetime


class Programme:
    def __init__(self, schedule: Schedule, index: SearchIndex) -> None:
        self._current = (schedule, index)
        self.version = 1
        self.refused: Refusal | None = None
        self.moved_from: dict[str, dt.datetime] = {}  # talk id -> its start before it was moved
        self.last_changes = Changes()

    @property
    def schedule(self) -> Schedule:
        return self._current[0]

    @property
    def index(self) -> SearchIndex:
        return self._current[1]

    def accept(self, schedule: Schedule, index: SearchIndex, changes: Changes | None = None) -> Changes:
        """Serve a new version (one assignment, so no answer sees half of it); what changed.

        `changes`: the diff from the served version, when it was computed off the loop.
        """
        changes = changes if changes is not None else diff(self.schedule, schedule)
        self.last_changes = changes
        self._current = (schedule, index)
        self.version += 1
        self.refused = None
        for talk_id, old_start in changes.moved.items():
            self.moved_from.setdefault(talk_id, old_start)
        for change in changes.of(What.REMOVED):
            self.moved_from.pop(change.talk.id, None)
        for talk_id, first_start in list(self.moved_from.items()):
            talk = schedule.talk(talk_id)
            if talk is not None and talk.start == first_start:
                del self.moved_from[talk_id]  # moved back where it was
        return changes

    def refuse(self, source: str, reason: str, at: dt.datetime) -> bool:
        """Remember a refused version; False when it is the same refusal as last time (log it once)."""
        again = self.refused is not None and self.refused.reason == reason and self.refused.source == source
        self.refused = Refusal(source, reason, at)
        return not again


async def hand_over(programme: Programme, schedule: Schedule, index: SearchIndex) -> Changes:
    """Serve a new version with as little work on the event loop as possible: the diff is computed
    in a worker, and the old version is freed there too (at 10,000 talks each holds the loop for
    tens of milliseconds)."""
    served = programme.schedule
    changes: Changes | None = await asyncio.to_thread(diff, served, schedule)
    if programme.schedule is not served:  # another version came in meanwhile: compare with that one
        changes = None
    old = [served, programme.index]
    del served
    programme.accept(schedule, index, changes)
    await asyncio.to_thread(old.clear)
    return programme.last_changes
