"""Discord rendering: every answer inside Discord's limits, escaped, timestamps and zone written out."""

from __future__ import annotations

import datetime as dt
import functools
import json
from typing import Any

import discord
import pytest

from bot.core import answers
from bot.core.errors import AmbiguousQuery, QueryTooLong, TalkNotFound
from bot.core.schedule import Schedule
from bot.core.search import SearchIndex
from bot.discord_ui import render
from bot.discord_ui.commands import to_choices
from bot.sources import parse_schedule
from tests.conftest import pst
from tests.standin.validation import check_message, embed_length

WORDS = "lorem ipsum dolor sit amet consectetur adipiscing elit sed do eiusmod tempor incididunt labore dolore magna aliqua".split()


@functools.cache
def huge_schedule(count: int = 300) -> Schedule:
    """300 one-minute talks with very long titles, abstracts and author lists, some hostile text."""
    start = dt.datetime(2020, 12, 10, 6, 0, tzinfo=dt.timezone(dt.timedelta(hours=-8)))
    items = []
    for i in range(count):
        begin = start + dt.timedelta(minutes=i)
        words = [WORDS[(i * 7 + k) % len(WORDS)] for k in range(60)]
        title = f"Talk {i} @everyone <@&123> **bold** _{' '.join(words)}_ " + "x" * 200
        authors = [f"Author{(i * 13 + k) % 400} {'Long' * 10} @here" for k in range(60)]
        items.append(
            {
                "id": f"t{i:03d}",
                "kind": ["oral", "spotlight", "qa", "break"][i % 4] if i % 4 != 3 else "oral",
                "start": begin.isoformat(),
                "end": (begin + dt.timedelta(minutes=1)).isoformat(),
                "title": title,
                "authors": authors,
                "abstract": " ".join(words) * 13 + " `code` *stars* @everyone",
            }
        )
    doc = {
        "conference": "Huge",
        "sessions": [
            {
                "id": "huge",
                "name": "A very long session " * 20,
                "timezone": "America/Los_Angeles",
                "date": "2020-12-10",
                "chairs": [f"Chair{k} {'Long' * 10} @everyone" for k in range(40)],
                "items": items,
            }
        ],
    }
    return parse_schedule(json.dumps(doc), "<huge>")  # JSON is YAML


@functools.cache
def huge_index() -> SearchIndex:
    return SearchIndex(huge_schedule())


def payload(reply: render.Reply) -> dict[str, Any]:
    body: dict[str, Any] = {"embeds": [e.to_dict() for e in reply.embeds], "allowed_mentions": reply.allowed_mentions.to_dict()}
    if reply.content:
        body["content"] = reply.content
    return body


def assert_valid(replies: list[render.Reply]) -> None:
    assert replies
    for reply in replies:
        body = payload(reply)
        assert not check_message(body), check_message(body)
        assert sum(embed_length(e) for e in body["embeds"]) <= 6000
        assert len(body["embeds"]) <= 10
        assert body["allowed_mentions"]["parse"] == []


def all_text(replies: list[render.Reply]) -> str:
    return json.dumps([payload(r) for r in replies], ensure_ascii=False)


# --------------------------------------------------------------------------- helpers


def test_fit_cuts_with_an_ellipsis_and_no_dangling_backslash() -> None:
    assert render.fit("short", 10) == "short"
    assert render.fit("a" * 20, 10) == "a" * 9 + "…"
    cut = render.fit("abcdefgh\\*zz", 10)
    assert len(cut) <= 10 and not cut.rstrip("…").endswith("\\")


def test_join_fitting_notes_what_was_left_out() -> None:
    names = [f"Name {i}" for i in range(200)]
    text = render.join_fitting(names, 100)
    assert len(text) <= 100 and text.endswith("more")
    assert render.join_fitting(["a", "b"], 100) == "a, b"


def test_clean_neutralises_mentions_and_markdown() -> None:
    text = render.clean("@everyone @here <@&123> <@456> <#789> **x** _y_")
    assert "@everyone" not in text and "@here" not in text
    assert "<@&" not in text and "<@4" not in text and "<#" not in text
    assert "\\*\\*x\\*\\*" in text


# --------------------------------------------------------------------------- real schedule


def test_talk_has_timestamps_zone_authors_and_abstract(schedule: Schedule) -> None:
    talk = schedule.talk("shooting-formulation")
    assert talk is not None
    replies = render.render_talk(talk, schedule)
    assert_valid(replies)
    embed = replies[0].embeds[0]
    stamp = int(talk.start.timestamp())
    fields = {f.name: f.value for f in embed.fields}
    assert f"<t:{stamp}:f>" in fields["When"] and f"<t:{stamp}:R>" in fields["When"]
    assert "06:00–06:15 PST (America/Los_Angeles)" in fields["When"]
    assert "Roland Kwitt" in fields["Authors"]
    assert embed.description and "Oral" in embed.description and "/abstract" in embed.description


def test_next_and_now_render(schedule: Schedule) -> None:
    for now in (pst(5), pst(6, 5), pst(6, 50), pst(23)):
        assert_valid(render.render_next(answers.next_talks(schedule, now), schedule, now))
        assert_valid(render.render_now(answers.on_now(schedule, now), schedule, now))


def test_agenda_of_the_real_schedule_is_one_message(schedule: Schedule) -> None:
    replies = render.render_agenda(answers.agenda(schedule))
    assert_valid(replies)
    assert len(replies) == 1 and not replies[0].content
    assert sum((e.description or "").count("<t:") for e in replies[0].embeds) == len(schedule.talks)


def test_user_error_is_ephemeral_and_escaped() -> None:
    replies = render.render_user_error(TalkNotFound("@everyone <@&1>", ("**Bold** title", "@here x")))
    assert_valid(replies)
    assert replies[0].ephemeral
    text = all_text(replies)
    assert "@everyone" not in text and "@here" not in text and "<@&" not in text
    assert_valid(render.render_user_error(AmbiguousQuery("x" * 5000, tuple("y" * 3000 for _ in range(50)))))


def test_help_and_apology(schedule: Schedule) -> None:
    assert_valid(render.render_help(schedule))
    assert render.render_apology().ephemeral


def test_schedule_now_and_help_name_the_chairs(schedule: Schedule) -> None:
    chairs = "Chairs: Oriol Vinyals, Guido Montufar"
    assert chairs in all_text(render.render_agenda(answers.agenda(schedule)))
    assert chairs in all_text(render.render_now(answers.on_now(schedule, pst(7, 12)), schedule, pst(7, 12)))
    assert "Chaired by Oriol Vinyals and Guido Montufar" in all_text(render.render_now(answers.on_now(schedule, pst(5)), schedule, pst(5)))
    assert chairs in all_text(render.render_help(schedule))


def test_a_chair_is_shown_as_the_chair_of_their_session(schedule: Schedule, index: SearchIndex) -> None:
    replies = render.render_author(answers.find_author(index, "Oriol Vinyals"), schedule)
    assert_valid(replies)
    embed = replies[0].embeds[0]
    assert embed.title == "Oriol Vinyals"
    assert "**Chair** of Orals & Spotlights Track 28: Deep Learning" in (embed.description or "")
    assert "chair of Orals & Spotlights Track 28: Deep Learning" in (embed.footer.text or "")


def test_next_after_the_last_talk_says_when_the_session_ends(schedule: Schedule) -> None:
    now = pst(8, 45)
    replies = render.render_next(answers.next_talks(schedule, now), schedule, now)
    assert_valid(replies)
    assert "There are no more talks: Orals & Spotlights Track 28: Deep Learning ends at 09:00 PST (in 15 min)." in all_text(replies)


def test_an_overlong_query_is_answered_as_such() -> None:
    replies = render.render_user_error(QueryTooLong(6000, 200))
    assert_valid(replies)
    assert replies[0].ephemeral and replies[0].embeds[0].title == "Query too long"


# --------------------------------------------------------------------------- huge schedule


def test_huge_agenda_is_split_then_cut_with_a_note() -> None:
    big = huge_schedule()
    replies = render.render_agenda(answers.agenda(big))
    assert_valid(replies)
    assert len(replies) == render.MAX_MESSAGES
    assert "not shown" in (replies[-1].content or "")
    shown = sum(e.description.count("<t:") for r in replies for e in r.embeds)
    assert f"{len(big.talks) - shown} more items are not shown" in replies[-1].content
    assert sum(len(r.embeds) for r in replies) > render.MAX_MESSAGES  # several embeds per message
    assert "(continued)" in all_text(replies)


def test_small_enough_agenda_is_split_without_a_note() -> None:
    big = huge_schedule()
    session = big.sessions[0]
    part = type(session)(session.id, session.name, session.timezone, session.date, session.items[:60])
    replies = render.render_agenda([part])
    assert_valid(replies)
    assert len(replies) >= 2 and not any(r.content for r in replies)
    assert sum(e.description.count("<t:") for r in replies for e in r.embeds if e.description) == 60


def test_huge_chairs_stay_within_limits() -> None:
    big = huge_schedule()
    for replies in (
        render.render_agenda(answers.agenda(big)),
        render.render_help(big),
        render.render_now(answers.on_now(big, big.talks[5].start), big, big.talks[5].start),
        render.render_next(answers.next_talks(big, big.talks[0].start - dt.timedelta(hours=1)), big, big.talks[0].start - dt.timedelta(hours=1)),
    ):
        assert_valid(replies)
        assert "Chair" in all_text(replies) and "@everyone" not in all_text(replies)


def test_huge_talks_and_authors_stay_within_limits() -> None:
    big = huge_schedule()
    index = huge_index()
    for talk in big.talks[:20]:
        assert_valid(render.render_talk(talk, big))
        replies = render.render_talk(talk, big, full_abstract=True)
        assert_valid(replies)
        assert "cut to fit" in all_text(replies)
        assert "@everyone" not in all_text(replies)
    now = big.talks[5].start
    assert_valid(render.render_next(answers.next_talks(big, now), big, now))
    assert_valid(render.render_now(answers.on_now(big, now), big, now))
    for author in index.authors[:5]:
        assert_valid(render.render_author(author, big))


def test_an_author_with_hundreds_of_talks() -> None:
    big = huge_schedule()
    author = huge_index().authors[0]
    many = type(author)(author.key, author.name, big.talks, big.sessions * 50)
    replies = render.render_author(many, big)
    assert_valid(replies)
    assert "more" in all_text(replies)
    assert "Chair" in replies[0].embeds[0].description


@pytest.mark.parametrize("query", ["", "lorem", "x" * 300, "Author17"])
def test_choices_fit_discord(query: str) -> None:
    big = huge_schedule()
    index = huge_index()
    for suggestions in (answers.suggest_talks(index, query, big.talks[0].start), answers.suggest_authors(index, query, big.talks[0].start)):
        choices = to_choices(suggestions)
        assert len(choices) <= 25
        assert all(1 <= len(c.name) <= 100 and len(c.value) <= 100 for c in choices)


def test_to_choices_caps_at_25() -> None:
    many = [answers.Suggestion(f"id{i}", "n" * 300) for i in range(40)]
    choices = to_choices(many)
    assert len(choices) == 25 and all(len(c.name) == 100 for c in choices)
    assert isinstance(choices[0], discord.app_commands.Choice)
