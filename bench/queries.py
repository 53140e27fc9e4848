"""The fixed query mix: what users type, drawn from a schedule with a seeded generator.

Each query remembers the talk (or author) it was aimed at, so answers can be scored as well as timed.
"""

from __future__ import annotations

import datetime as dt
import random
import re
from dataclasses import dataclass

from bot.core.schedule import Schedule, Talk
from bot.core.text import fold

KEYSTROKE_TITLES = 20
KEYSTROKE_CHARS = 40


@dataclass(frozen=True, slots=True)
class Query:
    kind: str  # keystroke, typo, author, abstract, title, words, surname, ...
    text: str
    target: str  # talk id or folded author name the user means ("" when any answer will do)


def _typo(rng: random.Random, word: str) -> str:
    """One slip of the finger: a swap, a drop, a double or a wrong letter."""
    if len(word) < 4:
        return word
    i = rng.randrange(1, len(word) - 1)
    how = rng.randrange(4)
    if how == 0:
        return word[:i] + word[i + 1] + word[i] + word[i + 2 :]
    if how == 1:
        return word[:i] + word[i + 1 :]
    if how == 2:
        return word[:i] + word[i] + word[i:]
    return word[:i] + rng.choice("aeioustrnl") + word[i + 1 :]


def _words(text: str) -> list[str]:
    return [w for w in re.findall(r"[A-Za-z][\w-]*", text) if len(w) >= 4]


def _talks(schedule: Schedule) -> list[Talk]:
    return [t for t in schedule.talks if t.is_talk]


def autocomplete_queries(schedule: Schedule, seed: int = 7) -> list[Query]:
    """Titles typed keystroke by keystroke, typos, author names and abstract words."""
    rng = random.Random(seed)
    talks = _talks(schedule)
    out: list[Query] = []
    for talk in rng.sample(talks, min(KEYSTROKE_TITLES, len(talks))):
        title = talk.title[:KEYSTROKE_CHARS]
        out += [Query("keystroke", title[:n], talk.id) for n in range(1, len(title) + 1) if not title[n - 1].isspace()]
    for talk in rng.sample(talks, min(150, len(talks))):
        words = _words(talk.title)
        start = rng.randrange(max(1, len(words) - 2))
        picked = words[start : start + 3]
        j = rng.randrange(len(picked))
        picked[j] = _typo(rng, picked[j])
        out.append(Query("typo", " ".join(picked), talk.id))
    for talk in rng.sample(talks, min(150, len(talks))):
        name = rng.choice(talk.authors)
        out.append(Query("author", name if rng.random() < 0.5 else fold(name), ""))
    for talk in rng.sample(talks, min(150, len(talks))):
        words = _words(talk.abstract)
        out.append(Query("abstract", " ".join(rng.sample(words, min(2, len(words)))).lower(), ""))
    return out


def talk_queries(schedule: Schedule, seed: int = 11) -> list[Query]:
    """Full /talk lookups: whole titles, titles with a typo, a few title words, author and topic."""
    rng = random.Random(seed)
    talks = _talks(schedule)
    out: list[Query] = []
    for talk in rng.sample(talks, min(200, len(talks))):
        words = _words(talk.title)
        how = rng.randrange(4)
        if how == 0:
            out.append(Query("title", talk.title, talk.id))
        elif how == 1:
            j = rng.randrange(len(words))
            words[j] = _typo(rng, words[j])
            out.append(Query("title-typo", " ".join(words), talk.id))
        elif how == 2:
            out.append(Query("words", " ".join(rng.sample(words, min(4, len(words)))), talk.id))
        else:
            surname = rng.choice(talk.authors).split()[-1]
            out.append(Query("author+topic", f"{surname} {' '.join(rng.sample(words, min(2, len(words))))}", talk.id))
    return out


def author_queries(schedule: Schedule, seed: int = 13) -> list[Query]:
    """Full /author lookups: full names, surnames, without accents, with a typo."""
    rng = random.Random(seed)
    names = sorted({a for t in _talks(schedule) for a in t.authors})
    out: list[Query] = []
    for name in rng.sample(names, min(200, len(names))):
        how = rng.randrange(4)
        if how == 0:
            out.append(Query("name", name, fold(name)))
        elif how == 1:
            out.append(Query("surname", name.split()[-1], fold(name)))
        elif how == 2:
            out.append(Query("unaccented", fold(name), fold(name)))
        else:
            parts = name.split()
            parts[-1] = _typo(rng, parts[-1])
            out.append(Query("name-typo", " ".join(parts), fold(name)))
    return out


def next_instants(schedule: Schedule, count: int = 2000, seed: int = 17) -> list[dt.datetime]:
    """Moments spread over the conference, with a margin before and after it."""
    rng = random.Random(seed)
    first, last = schedule.talks[0].start, max(t.end for t in schedule.talks)
    span = (last - first).total_seconds()
    return [first + dt.timedelta(seconds=rng.uniform(-0.05 * span, 1.05 * span)) for _ in range(count)]
