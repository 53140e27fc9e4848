"""The benchmark's schedule generator: deterministic, and its output is a schedule the bot accepts."""

from __future__ import annotations

from collections import Counter

from bench.generate import generate_schedule
from bot.core.schedule import TALK_KINDS
from bot.core.search import SearchIndex
from bot.sources import parse_schedule

TALKS = 120


def test_same_seed_same_file_and_another_seed_another() -> None:
    assert generate_schedule(TALKS, seed=3) == generate_schedule(TALKS, seed=3)
    assert generate_schedule(TALKS, seed=3) != generate_schedule(TALKS, seed=4)


def test_output_passes_the_loader_with_realistic_shapes() -> None:
    schedule = parse_schedule(generate_schedule(TALKS, seed=1), "generated.yaml")
    talks = [t for t in schedule.talks if t.kind in TALK_KINDS]
    assert len(talks) == TALKS
    assert len(schedule.sessions) > 10
    assert all(8 <= len(t.title.split()) <= 15 for t in talks)
    assert all(150 <= len(t.abstract.split()) <= 250 for t in talks)
    assert all(1 <= len(t.authors) <= 8 for t in talks)
    appearances = Counter(a for t in talks for a in t.authors)
    assert max(appearances.values()) >= 5, "some authors recur across talks"
    assert any(not a.isascii() for a in appearances), "some names carry accents"


def test_generated_schedule_is_searchable() -> None:
    schedule = parse_schedule(generate_schedule(TALKS, seed=1), "generated.yaml")
    index = SearchIndex(schedule)
    talk = next(t for t in schedule.talks if t.kind in TALK_KINDS)
    assert index.find_talks(talk.title, limit=1)[0].talk == talk
