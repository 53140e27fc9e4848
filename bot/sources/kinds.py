"""A source's event type ("Lecture", "Lightning Talk", "Podium", "Pause", ...) mapped to one of our kinds.

Exports name their types freely, in any language and case, so the mapping looks for words, in an
order where the more specific kind wins ("Lightning Talk" is lightning, not talk). An unknown type is
a talk: that is what most unknown types at a conference are, and a talk gets reminders.
"""

from __future__ import annotations

import functools
import re

TALK = "talk"
KEYNOTE = "keynote"
WORKSHOP = "workshop"
LIGHTNING = "lightning"
PANEL = "panel"
BREAK = "break"
QA = "qa"
OTHER = "other"

# The whole type is a Q&A: "Q&A", "Q & A session", "AMA". "Talk + Q&A" stays a talk.
_QA = re.compile(r"(live )?(q ?& ?a|q and a|qa|ama|ask me anything|questions( and answers)?|fragestunde)( session)?")

# Checked in this order, as words of the lower-cased type with '-', '_' and '/' read as spaces.
_BY_TYPE: tuple[tuple[re.Pattern[str], str], ...] = (
    (re.compile(r"\b(keynote|plenary|festvortrag)\b"), KEYNOTE),
    (re.compile(r"\b(lightning|blitz|ignite|pecha ?kucha|spotlight)\b"), LIGHTNING),
    (re.compile(r"\b(panel|podium|podiumsdiskussion|discussion|diskussion|debate|fishbowl|round ?table|bof|birds of a feather)\b"), PANEL),
    (
        re.compile(r"\b(workshop|hands on|tutorial|lab|hackathon|jam|bootcamp|training|masterclass|course|kurs|breakout|sprint)\b"),
        WORKSHOP,
    ),
    (re.compile(r"\b(break|pause|kaffeepause|mittagspause|lunch|coffee|tea|dinner|breakfast|snack|meal|recess)\b"), BREAK),
    (
        re.compile(r"^other\b|\b(poster|reception|social|party|performance|concert|show|meeting|meetup|game|film|movie|ceremony|exhibition|art)\b"),
        OTHER,
    ),
)

# A title says what a generic "talk" really is only in these unmistakable forms; "What Breaks" is a talk.
_BY_TITLE: tuple[tuple[re.Pattern[str], str], ...] = (
    (re.compile(r"^keynote\b|\bkeynote$|\(keynote\)"), KEYNOTE),
    (re.compile(r"\blightning talks?\b"), LIGHTNING),
    (re.compile(r"^panel\b|\bpanel$|\bpanel discussion\b|\ba panel\b|\(panel\)"), PANEL),
    (re.compile(r"^(coffee |lunch |tea )?(break|pause)$|^(lunch|coffee|dinner|breakfast)$|^kaffeepause$|^mittagspause$"), BREAK),
)


# Every title rule above needs one of these words; a title with none (most titles) is not tried against them.
_TITLE_WORDS = ("keynote", "lightning talk", "panel", "break", "pause", "lunch", "coffee", "dinner")
_AS_SPACES = str.maketrans("-_/:", "    ")


def _words(text: str) -> str:
    return " ".join(text.lower().translate(_AS_SPACES).split())


@functools.lru_cache(maxsize=1024)
def _kind_of_type(source_type: str) -> str | None:
    """The kind a type says on its own, or None (then the title may say); a conference has a few types."""
    words = _words(source_type)
    if words and _QA.fullmatch(words):
        return QA
    for pattern, kind in _BY_TYPE:
        if pattern.search(words):
            return kind
    return None


def kind_of(source_type: str, title: str = "") -> str:
    """Our kind for an event of `source_type`; the title decides only when the type is generic or unknown."""
    kind = _kind_of_type(source_type)
    if kind is not None:
        return kind
    named = _words(title)
    if named and _QA.fullmatch(named):
        return QA
    if not any(word in named for word in _TITLE_WORDS):
        return TALK
    for pattern, kind in _BY_TITLE:
        if pattern.search(named):
            return kind
    return TALK
