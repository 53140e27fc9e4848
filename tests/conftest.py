"""Shared fixtures: the real Track 28 schedule and its index, built once per test session."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from bot.core.schedule import Schedule
from bot.core.search import SearchIndex
from bot.sources import load_schedule

ROOT = Path(__file__).resolve().parent.parent
TRACK28 = ROOT / "data" / "track28.yaml"
PST = ZoneInfo("America/Los_Angeles")


def pst(hour: int, minute: int = 0, day: int = 10) -> dt.datetime:
    """An instant on the session's day, in its zone."""
    return dt.datetime(2020, 12, day, hour, minute, tzinfo=PST)


@pytest.fixture(scope="session")
def schedule() -> Schedule:
    return load_schedule(TRACK28)


@pytest.fixture(scope="session")
def index(schedule: Schedule) -> SearchIndex:
    return SearchIndex(schedule)


def moved(schedule: Schedule, talk_id: str, start: dt.datetime) -> Schedule:
    """The same schedule with one talk moved to `start` (same id, same length): a postponement."""
    import dataclasses

    def move(talk):
        return dataclasses.replace(talk, start=start, end=start + (talk.end - talk.start)) if talk.id == talk_id else talk

    sessions = tuple(dataclasses.replace(s, items=tuple(sorted((move(t) for t in s.items), key=lambda t: t.start))) for s in schedule.sessions)
    return Schedule(sessions, schedule.conference, schedule.source)


async def wait_for(predicate, timeout: float) -> None:
    """Poll `predicate` until it is true; TimeoutError after `timeout` seconds."""
    import asyncio

    deadline = asyncio.get_running_loop().time() + timeout
    while not predicate():
        if asyncio.get_running_loop().time() > deadline:
            raise TimeoutError
        await asyncio.sleep(0.01)
