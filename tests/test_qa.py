"""Session Q&A rules at fixed instants of Track 28: which talk, what text, how many, in what order, exactly counted."""

from __future__ import annotations

import asyncio
import datetime as dt
import threading

import pytest

from bot.core import qa
from bot.core.qa import OPEN_PER_TALK, PER_MINUTE, QUESTION_MAX, QaRefused
from tests.conftest import pst

GUILD = 1
SPOTLIGHTS_1 = ["hamiltonian-lagrangian-constraints", "power-laws-deep-ensembles", "wave-based-imaging", "early-time-learning-dynamics"]


@pytest.fixture
def store(make_store):
    """The Q&A rules on both state backends (SQLite and PostgreSQL, see conftest)."""
    return make_store()


# --- the text ---------------------------------------------------------------------------


def test_a_question_is_one_paragraph_of_visible_text():
    assert qa.clean_question("  Why\n\n does it\twork?\r\n ") == "Why does it work?"
    assert qa.clean_question("a\x00b\x07c\x1b[31mred\x7f") == "abc[31mred"
    assert qa.clean_question("right\u202eto left\u2066 \u200bhidden\ufeff") == "rightto left hidden"
    assert qa.clean_question("family 👨\u200d👩\u200d👧") == "family 👨\u200d👩\u200d👧"  # joiners stay
    assert qa.clean_question("line\u2028sep\u00a0nbsp") == "line sep nbsp"


def test_mentions_and_markdown_are_kept_as_text_for_the_renderer_to_escape():
    text = "@everyone <@123456789012345678> **bold** `code`"
    assert qa.clean_question(text) == text


def test_empty_and_too_long_questions_are_refused():
    for empty in ("", "   ", "\n\t\x00\u200b"):
        with pytest.raises(QaRefused, match="empty"):
            qa.clean_question(empty)
    assert len(qa.clean_question("x" * QUESTION_MAX)) == QUESTION_MAX
    assert qa.clean_question("x" * QUESTION_MAX + "   \n") == "x" * QUESTION_MAX  # trailing space is not counted
    with pytest.raises(QaRefused, match="501 characters; questions are at most 500"):
        qa.clean_question("x" * (QUESTION_MAX + 1))


# --- which talk -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("instant", "expected"),
    [
        (pst(6, 0), "shooting-formulation"),
        (pst(6, 14), "shooting-formulation"),
        (pst(6, 15), "l2-regularization-dynamics"),  # an item ends as the next starts
        (pst(7, 12), "power-laws-deep-ensembles"),
        (pst(7, 40), "qa-spotlights-1"),
        (pst(7, 49), "qa-spotlights-1"),
        (pst(8, 35), "qa-spotlights-2"),
    ],
)
def test_the_default_talk_is_the_item_on_now(schedule, instant, expected):
    assert qa.default_talk(schedule, instant).id == expected


@pytest.mark.parametrize("instant", [pst(5, 0), pst(6, 50), pst(8, 45), pst(10, 0), pst(7, 0, day=11)])
def test_outside_the_session_or_in_a_break_a_talk_is_asked_for(schedule, instant):
    with pytest.raises(QaRefused, match="No talk is on right now; pick one with the talk option"):
        qa.default_talk(schedule, instant)


def test_the_front_end_names_its_way_of_picking_a_talk(schedule):
    with pytest.raises(QaRefused, match="pick one with /ask QUERY :: QUESTION"):
        qa.default_talk(schedule, pst(5), how="with /ask QUERY :: QUESTION")


def test_a_joint_qa_covers_the_talks_it_follows(schedule):
    assert qa.covered(schedule, schedule.talk("qa-spotlights-1")) == ["qa-spotlights-1", *SPOTLIGHTS_1]
    assert qa.covered(schedule, schedule.talk("shooting-formulation")) == ["shooting-formulation"]


# --- asking -----------------------------------------------------------------------------


def test_ask_stores_a_clean_question_for_the_talk_on_now(store, schedule):
    asked = qa.ask(store, schedule, GUILD, 7, "  What about\nwidth? ", None, True, pst(7, 12))
    assert (asked.talk_id, asked.text, asked.anonymous, asked.user_id, asked.state, asked.votes) == (
        "power-laws-deep-ensembles",
        "What about width?",
        True,
        7,
        "open",
        0,
    )
    assert asked.created_at == pst(7, 12)
    assert store.question(asked.id) == asked


def test_ask_about_a_named_talk_at_any_time_but_never_a_break(store, schedule):
    assert qa.ask(store, schedule, GUILD, 7, "later?", schedule.talk("qa-spotlights-2"), False, pst(5)).talk_id == "qa-spotlights-2"
    with pytest.raises(QaRefused, match="is a break"):
        qa.ask(store, schedule, GUILD, 7, "coffee?", schedule.talk("break-1"), False, pst(6, 50))
    with pytest.raises(QaRefused, match="No talk is on right now"):
        qa.ask(store, schedule, GUILD, 7, "anyone?", None, False, pst(6, 50))
    assert store.questions_since(7, pst(0)) == 1


def test_three_questions_a_minute_then_a_kind_refusal_and_nothing_stored(store, schedule):
    for second in range(PER_MINUTE):
        qa.ask(store, schedule, GUILD, 7, f"q{second}", None, False, pst(6, 5) + dt.timedelta(seconds=second))
    with pytest.raises(QaRefused, match="3 questions in the last minute; please wait"):
        qa.check_limits(
            store,
            7,
            "shooting-formulation",
            pst(
                6,
                5,
            )
            + dt.timedelta(seconds=30),
        )
    with pytest.raises(QaRefused, match="please wait"):
        qa.ask(store, schedule, GUILD, 7, "one more", None, False, pst(6, 5) + dt.timedelta(seconds=30))
    assert store.questions_since(7, pst(0)) == PER_MINUTE
    qa.ask(
        store,
        schedule,
        GUILD,
        8,
        "another user may ask",
        None,
        False,
        pst(
            6,
            5,
        )
        + dt.timedelta(seconds=30),
    )
    assert qa.ask(store, schedule, GUILD, 7, "a minute later", None, False, pst(6, 6) + dt.timedelta(seconds=1)).text == "a minute later"


def test_fifty_open_questions_per_user_per_talk(store, schedule):
    oral = schedule.talk("shooting-formulation")
    first = None
    for i in range(OPEN_PER_TALK):
        asked = qa.ask(store, schedule, GUILD, 7, f"q{i}", oral, False, pst(5) + dt.timedelta(minutes=i))
        first = first or asked
    later = pst(5) + dt.timedelta(minutes=OPEN_PER_TALK)
    with pytest.raises(QaRefused, match="50 open questions for this talk"):
        qa.ask(store, schedule, GUILD, 7, "one too many", oral, False, later)
    assert store.open_questions(7, oral.id) == OPEN_PER_TALK
    qa.ask(store, schedule, GUILD, 7, "another talk is fine", schedule.talk("wave-based-imaging"), False, later)
    store.set_question_state(first.id, "answered")  # an answered question frees a place
    qa.check_limits(store, 7, oral.id, later + dt.timedelta(minutes=1))
    assert qa.ask(store, schedule, GUILD, 7, "now it fits", oral, False, later + dt.timedelta(minutes=1)).text == "now it fits"


def test_a_flood_from_one_user_in_many_threads_stores_only_three(store, schedule):
    results: list[object] = []

    def flood(i: int) -> None:
        try:
            results.append(qa.ask(store, schedule, GUILD, 7, f"flood {i}", None, False, pst(6, 5)))
        except QaRefused as err:
            results.append(err)

    threads = [threading.Thread(target=flood, args=(i,)) for i in range(50)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sum(not isinstance(r, QaRefused) for r in results) == PER_MINUTE
    assert store.questions_since(7, pst(0)) == PER_MINUTE


# --- chairs and their list -----------------------------------------------------------------


def test_chairs_have_manage_messages_or_the_chair_role():
    assert qa.is_chair(True, [], None)
    assert qa.is_chair(False, [5, 42], 42)
    assert not qa.is_chair(False, [5], 42)
    assert not qa.is_chair(False, [5], None)
    assert not qa.is_chair(False, [0], 0)


def test_top_questions_by_votes_then_age_and_a_joint_qa_gathers_its_talks(store, schedule):
    def ask(talk_id: str, minute: int, text: str, guild: int = GUILD) -> int:
        return qa.ask(store, schedule, guild, 100 + minute, text, schedule.talk(talk_id), False, pst(7, minute)).id

    old = ask("hamiltonian-lagrangian-constraints", 1, "old, one vote")
    young = ask("power-laws-deep-ensembles", 12, "young, one vote")
    popular = ask("wave-based-imaging", 22, "popular")
    joint = ask("qa-spotlights-1", 41, "asked in the Q&A")
    ask("sparse-continuous-attention", 51, "next block")
    ask("power-laws-deep-ensembles", 13, "another server", guild=2)
    done = ask("early-time-learning-dynamics", 33, "answered already")
    for user in (1, 2):
        store.toggle_vote(popular, user)
    store.toggle_vote(young, 1)
    store.toggle_vote(old, 1)
    store.set_question_state(done, "answered")
    top = qa.top_for(store, schedule, GUILD, schedule.talk("qa-spotlights-1"), 10)
    assert [q.id for q in top] == [popular, old, young, joint]
    assert [q.id for q in qa.top_for(store, schedule, GUILD, schedule.talk("qa-spotlights-1"), 2)] == [popular, old]
    assert [q.id for q in qa.top_for(store, schedule, GUILD, schedule.talk("power-laws-deep-ensembles"), 10)] == [young]


def test_digests_come_ten_minutes_before_each_qa_and_as_each_oral_ends(schedule):
    due = [(when.astimezone(pst(0).tzinfo).strftime("%H:%M"), talk.id) for when, talk in qa.digest_times(schedule)]
    assert due == [
        ("06:15", "shooting-formulation"),
        ("06:30", "l2-regularization-dynamics"),
        ("06:45", "compositional-explanations"),
        ("07:30", "qa-spotlights-1"),
        ("08:20", "qa-spotlights-2"),
    ]


# --- votes, exactly counted ----------------------------------------------------------------


def test_a_vote_toggles_and_the_asker_may_vote_once(store, schedule):
    asked = qa.ask(store, schedule, GUILD, 7, "mine", None, False, pst(6, 5))
    assert store.toggle_vote(asked.id, 7) == (True, 1)
    assert store.toggle_vote(asked.id, 8) == (True, 2)
    assert store.toggle_vote(asked.id, 7) == (False, 1)
    assert store.toggle_vote(asked.id, 8) == (False, 0)
    assert store.question(asked.id).votes == 0


def test_200_users_voting_at_once_from_threads_leave_exactly_200(store, schedule):
    asked = qa.ask(store, schedule, GUILD, 7, "popular?", None, False, pst(6, 5))
    start = threading.Barrier(200)

    def vote(user: int) -> None:
        start.wait()
        store.toggle_vote(asked.id, user)

    threads = [threading.Thread(target=vote, args=(user,)) for user in range(1000, 1200)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert store.question(asked.id).votes == 200
    counts = sorted(store.toggle_vote(asked.id, user)[1] for user in range(1000, 1200))  # each takes theirs back
    assert counts == list(range(200))
    assert store.question(asked.id).votes == 0


async def test_200_tasks_voting_at_once_leave_exactly_200_and_again_0(store, schedule):
    asked = qa.ask(store, schedule, GUILD, 7, "popular?", None, False, pst(6, 5))
    first = await asyncio.gather(*(asyncio.to_thread(store.toggle_vote, asked.id, user) for user in range(200)))
    assert all(voted for voted, _ in first) and sorted(count for _, count in first) == list(range(1, 201))
    assert store.question(asked.id).votes == 200
    second = await asyncio.gather(*(asyncio.to_thread(store.toggle_vote, asked.id, user) for user in range(200)))
    assert not any(voted for voted, _ in second)
    assert store.question(asked.id).votes == 0


# --- settings -------------------------------------------------------------------------------


def test_qa_settings_are_validated_and_named():
    from bot.config import ConfigError, settings_from

    default = settings_from({})
    assert (default.qa_channel_id, default.chair_role_id, default.talk_threads) == (None, None, False)
    chosen = settings_from({"QA_CHANNEL_ID": "123456789012345678", "CHAIR_ROLE_ID": " 223456789012345678 ", "TALK_THREADS": "on"})
    assert (chosen.qa_channel_id, chosen.chair_role_id, chosen.talk_threads) == (123456789012345678, 223456789012345678, True)
    for name, bad in (("QA_CHANNEL_ID", "#questions"), ("CHAIR_ROLE_ID", "12"), ("TALK_THREADS", "maybe")):
        with pytest.raises(ConfigError, match=name):
            settings_from({name: bad})
