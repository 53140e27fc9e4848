"""A Schedule written as our YAML, so an organiser can start from any export and edit by hand.

Every value goes through yaml's own emitter (the C one when present), which quotes and escapes what
needs it; nothing is joined by hand. What is written passes `python -m bot check` and reads back to
the same schedule: each time is written in its session's zone, and a file whose rooms hold
overlapping items (real exports do) says so with `allow_overlaps: true`.
"""

from __future__ import annotations

import datetime as dt
import itertools
from typing import Any, TextIO

import yaml

from bot.core.schedule import Schedule, Session, Talk
from bot.sources.build import NO_ROOM

_BaseDumper = getattr(yaml, "CSafeDumper", yaml.SafeDumper)


class _Dumper(_BaseDumper):  # type: ignore[misc, valid-type]
    """yaml's safe dumper, without anchors; multi-line texts as literal blocks when that keeps every character."""

    def ignore_aliases(self, data: Any) -> bool:
        return True


def _text(dumper: Any, value: str) -> yaml.ScalarNode:
    if "\n" in value and all(c == "\n" or c.isprintable() for c in value):
        return dumper.represent_scalar("tag:yaml.org,2002:str", value, style="|")  # the emitter quotes if a block cannot hold it
    if not value.isprintable():  # line breaks other than \n, controls: only double quotes keep them exactly
        return dumper.represent_scalar("tag:yaml.org,2002:str", value, style='"')
    return dumper.represent_str(value)


class _Names(list):
    """A list of names, written on one line: `authors: [Ada Lovelace, Charles Babbage]`."""


def _names(dumper: Any, value: _Names) -> yaml.SequenceNode:
    return dumper.represent_sequence("tag:yaml.org,2002:seq", value, flow_style=True)


def _moment(dumper: Any, value: dt.datetime) -> yaml.ScalarNode:
    return dumper.represent_scalar("tag:yaml.org,2002:timestamp", value.isoformat())  # 2020-12-10T06:00:00-08:00


_Dumper.add_representer(str, _text)
_Dumper.add_representer(dt.datetime, _moment)
_Dumper.add_representer(_Names, _names)


def schedule_document(schedule: Schedule) -> dict[str, Any]:
    """The schedule as plain data in our YAML's shape: optional fields only when they hold something."""
    doc: dict[str, Any] = {}
    if schedule.conference:
        doc["conference"] = schedule.conference
    if has_overlaps(schedule):
        doc["allow_overlaps"] = True
    doc["sessions"] = [_session(s) for s in schedule.sessions]
    return doc


def _session(session: Session) -> dict[str, Any]:
    out: dict[str, Any] = {"id": session.id, "name": session.name, "date": session.date, "timezone": session.timezone.key}
    if session.room:
        out["room"] = session.room
    if session.chairs:
        out["chairs"] = _Names(session.chairs)
    out["items"] = [_item(t, session) for t in session.items]
    return out


def _item(talk: Talk, session: Session) -> dict[str, Any]:
    tz = session.timezone
    out: dict[str, Any] = {
        "id": talk.id,
        "kind": talk.kind.value,
        "start": talk.start.astimezone(tz),  # the offset the session's zone has then, as the loader requires
        "end": talk.end.astimezone(tz),
        "title": talk.title,
    }
    optional = {"authors": _Names(talk.authors), "abstract": talk.abstract, "url": talk.url, "track": talk.track, "follows": _Names(talk.follows)}
    out.update((key, value) for key, value in optional.items() if value)
    return out


def has_overlaps(schedule: Schedule) -> bool:
    """Whether two items in one room overlap (a session without a room is a room of its own)."""
    rooms: dict[str, list[Talk]] = {}
    for session in schedule.sessions:
        key = session.room if session.room and session.room != NO_ROOM else f"session {session.id}"
        rooms.setdefault(key, []).extend(session.items)
    for talks in rooms.values():
        talks.sort(key=lambda t: t.start)
        if any(b.start < a.end for a, b in itertools.pairwise(talks)):
            return True
    return False


def _comment(text: str) -> str:
    """One comment line; a file name is not trusted to be free of line breaks."""
    return "# " + "".join(c if c.isprintable() else "?" for c in text)


def dump_yaml(schedule: Schedule, stream: TextIO, *, header: str = "") -> None:
    """Write our YAML for `schedule` to `stream`, after `header` as comment lines."""
    for line in header.splitlines():
        stream.write(_comment(line) + "\n")
    yaml.dump(schedule_document(schedule), stream, Dumper=_Dumper, allow_unicode=True, sort_keys=False, default_flow_style=False, width=100)


def to_yaml(schedule: Schedule, *, header: str = "") -> str:
    """Our YAML for `schedule`, as text."""
    import io

    out = io.StringIO()
    dump_yaml(schedule, out, header=header)
    return out.getvalue()
