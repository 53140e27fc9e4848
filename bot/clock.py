"""Where `now` comes from: the system, a replay of the past at some speed, or a test's fixed instant.

Only front-ends read a Clock; the domain takes `now` as a parameter.
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Callable
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
