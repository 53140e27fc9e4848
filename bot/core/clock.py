"""Where `now` comes from: the system, a replay of the past at some speed, or a test's fixed instant.

Only front-ends read a Clock; the domain takes `now` as a parameter.
"""

from __future__ import annotations

import datetime as dt
import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

UTC = dt.UTC


class Clock(Protocol):
    speed: float

    def now(self) -> dt.datetime: ...

    def seconds_until(self, instant: dt.datetime) -> float:
        """Real seconds to wait until the clock shows `instant` (negative if already past)."""
        ...


class SystemClock:
    speed = 1.0

    def now(self) -> dt.datetime:
        return dt.datetime.now(UTC)

    def seconds_until(self, instant: dt.datetime) -> float:
        return (instant - self.now()).total_seconds()

    def __repr__(self) -> str:
        return "SystemClock()"


class ReplayClock:
    """Starts at `start` when created and runs `speed` times faster than real time."""

    def __init__(self, start: dt.datetime, speed: float = 1.0, monotonic: Callable[[], float] = time.monotonic) -> None:
        if start.tzinfo is None:
            raise ValueError("replay start must carry a UTC offset")
        if not speed > 0:
            raise ValueError("speed must be positive")
        self.start = start.astimezone(UTC)
        self.speed = float(speed)
        self._monotonic = monotonic
        self._origin = monotonic()

    def now(self) -> dt.datetime:
        return self.start + dt.timedelta(seconds=(self._monotonic() - self._origin) * self.speed)

    def seconds_until(self, instant: dt.datetime) -> float:
        return (instant - self.now()).total_seconds() / self.speed

    def __repr__(self) -> str:
        return f"ReplayClock(start={self.start.isoformat()}, speed={self.speed:g})"


class FixedClock:
    """A clock that moves only when told to; for tests and one-shot answers."""

    speed = 1.0

    def __init__(self, instant: dt.datetime) -> None:
        if instant.tzinfo is None:
            raise ValueError("instant must carry a UTC offset")
        self.instant = instant

    def now(self) -> dt.datetime:
        return self.instant

    def advance(self, **delta: float) -> None:
        self.instant += dt.timedelta(**delta)

    def seconds_until(self, instant: dt.datetime) -> float:
        return (instant - self.instant).total_seconds()


def make_clock(replay_from: dt.datetime | None, speed: float = 1.0) -> Clock:
    """The system clock, or a replay when a start instant is given."""
    if replay_from is None:
        if speed != 1.0:
            return ReplayClock(dt.datetime.now(UTC), speed)
        return SystemClock()
    return ReplayClock(replay_from, speed)


@dataclass(frozen=True, slots=True)
class RehearsalStart:
    """Where a replayed run begins: `resumed` when it continues a rehearsal a restart interrupted."""

    instant: dt.datetime
    resumed: bool
    started_over: bool  # a new rehearsal from before what an earlier one already covered


def rehearsal_start(
    replay_from: dt.datetime, speed: float, wall_now: float, saved: str | None, session_end: dt.datetime, covered_from: dt.datetime | None
) -> tuple[RehearsalStart, str]:
    """Continue an interrupted rehearsal on its own timeline, or begin a new one.

    A restart with the same BOT_REPLAY_FROM and speed resumes where the replayed clock would be
    now had the bot never stopped, so reminders stay on time across kills. `saved` is the anchor
    kept from an earlier start (JSON); the second value is the anchor to keep. `covered_from` is
    the earliest reminder an earlier run already handled: starting before it means starting over.
    """
    key = f"{replay_from.astimezone(UTC).isoformat()}|{speed:g}"
    if saved:
        try:
            anchor = json.loads(saved)
            if anchor["key"] == key:
                instant = replay_from + dt.timedelta(seconds=(wall_now - float(anchor["wall"])) * speed)
                if instant < session_end:
                    return RehearsalStart(instant, resumed=True, started_over=False), saved
        except (ValueError, KeyError, TypeError):
            pass
    started_over = covered_from is not None and replay_from <= covered_from
    return RehearsalStart(replay_from, resumed=False, started_over=started_over), json.dumps({"key": key, "wall": wall_now})
