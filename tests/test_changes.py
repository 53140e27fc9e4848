"""Programme changes: the diff by item id, and the announcement that says what changed."""

from __future__ import annotations

import dataclasses

from bot.core.changes import What, diff
from bot.core.schedule import Schedule
from bot.discord_ui.changes import MAX_LINES, render_changes
from tests.conftest import moved, pst
from tests.standin import would_ping
from tests.standin.validation import check_message


def without(schedule: Schedule, talk_id: str) -> Schedule:
    sessions = tuple(dataclasses.replace(s, items=tuple(t for t in s.items if t.id != talk_id)) for s in schedule.sessions)
    return Schedule(sessions, schedule.conference, schedule.source)


def edited(schedule: Schedule, talk_id: str, **fields) -> Schedule:
    sessions = tuple(
        dataclasses.replace(s, items=tuple(dataclasses.replace(t, **fields) if t.id == talk_id else t for t in s.items)) for s in schedule.sessions
    )
    return Schedule(sessions, schedule.conference, schedule.source)


def test_no_change_is_no_change(schedule):
    assert not diff(schedule, schedule)
    assert diff(schedule, schedule).summary() == "no changes"


def test_moved_cancelled_added_retitled_and_speakers(schedule):
    new = moved(schedule, "compositional-explanations", pst(8, 50))
    new = without(new, "l2-regularization-dynamics")
    new = edited(new, "shooting-formulation", title="A shooting formulation of deep learning (updated)", authors=("Susan Wei",))
    added_talk = dataclasses.replace(schedule.talk("shooting-formulation"), id="late-breaking", title="Late-breaking result")
    new = Schedule((dataclasses.replace(new.sessions[0], items=(*new.sessions[0].items, added_talk)),), new.conference, new.source)
    changes = diff(schedule, new)
    assert [c.talk.id for c in changes.of(What.REMOVED)] == ["l2-regularization-dynamics"]
    assert [c.talk.id for c in changes.of(What.MOVED)] == ["compositional-explanations"]
    assert [c.talk.id for c in changes.of(What.ADDED)] == ["late-breaking"]
    assert [c.talk.id for c in changes.of(What.RETITLED)] == ["shooting-formulation"]
    assert [c.talk.id for c in changes.of(What.SPEAKERS)] == ["shooting-formulation"]
    assert changes.moved == {"compositional-explanations": pst(6, 30)}
    assert changes.summary() == "1 added, 1 removed, 1 moved, 1 retitled, 1 speakers"
    text = render_changes(changes).embeds[0].to_dict()["description"]
    assert text.index("Cancelled") < text.index("Moved") < text.index("Added")
    assert f"<t:{int(pst(8, 50).timestamp())}:f>" in text and f"<t:{int(pst(6, 30).timestamp())}:f>" in text
    assert "Susan Wei" in text


def test_a_big_change_is_cut_to_ten_lines_and_says_how_many_more(schedule):
    new = schedule
    for i, talk in enumerate(t for t in schedule.talks if t.kind.value != "break"):
        new = edited(new, talk.id, title=f"@everyone <@123> **Renamed {i}**")
    changes = diff(schedule, new)
    reply = render_changes(changes)
    body = {"embeds": [e.to_dict() for e in reply.embeds], "allowed_mentions": reply.allowed_mentions.to_dict()}
    description = body["embeds"][0]["description"]
    assert description.count("• ") == MAX_LINES
    assert f"and {len(changes) - MAX_LINES} more changes" in description
    assert not check_message(body) and not would_ping(body)
    assert "@everyone" not in description.replace("@\u200beveryone", "")
