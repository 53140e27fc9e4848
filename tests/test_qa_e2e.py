"""Session Q&A end to end: the real discord.py client against the stand-in, with many users.

/ask during a replayed session, hostile questions, 200 users upvoting at once, a killed client and
clicks on its old messages, the chair's /questions with "answered" and "hide", the top questions
before a Q&A slot, and talk threads.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest_asyncio

from bot.config import Secret, Settings
from bot.core.clock import Clock, FixedClock, ReplayClock
from bot.core.schedule import Schedule
from bot.core.search import SearchIndex
from bot.discord_ui.app import SessionBot
from bot.discord_ui.qa import CLOSED, NOT_CHAIR, QaExtension
from bot.discord_ui.reminders import ReminderExtension
from bot.state.store import State, Store
from tests.conftest import pst, wait_for
from tests.standin import StandIn, kill_client, running_client, would_ping
from tests.standin.components import custom_ids
from tests.standin.models import CREATE_PUBLIC_THREADS, MANAGE_MESSAGES, SEND_MESSAGES_IN_THREADS, RoleSpec
from tests.standin.routes_events import grant

TOKEN = "UUFfVE9LRU4.qa-fake-token.for-tests-only-7"
ALICE, BOB, CAROL, CHAIR = 941000000000000001, 941000000000000002, 941000000000000003, 941000000000000009
CHAIR_ROLE = 941000000000000777
WINDOW = 0.3  # the vote burst window in these tests (1 s in production)


@pytest_asyncio.fixture
async def standin() -> AsyncIterator[StandIn]:
    async with StandIn(token=TOKEN) as server:
        for uid, name in [(ALICE, "alice"), (BOB, "bob_**bold**"), (CAROL, "carol"), (CHAIR, "oriol")]:
            server.guild.members[uid] = (name, [])
        server.guild.roles.append(RoleSpec(CHAIR_ROLE, "Chairs", 0, position=1))
        with server.redirect():
            yield server
        assert server.internal_errors == [], server.internal_errors


def settings_for(standin: StandIn, state: Path, **extra: object) -> Settings:
    base = {"discord_token": Secret(TOKEN), "guild_id": standin.guild_id, "reminder_channel_id": standin.channel_id, "state_path": state}
    return Settings(**{**base, "reminder_grace_minutes": 10, **extra})  # type: ignore[arg-type]


def make_bot(tmp_path: Path, standin: StandIn, schedule: Schedule, clock: Clock, **extra: object) -> SessionBot:
    settings = settings_for(standin, tmp_path / "bot.sqlite3", **extra)
    extensions = [ReminderExtension(settings, schedule, clock), QaExtension(settings, clock, window=WINDOW)]
    return SessionBot(settings, schedule, SearchIndex(schedule), clock, extensions, guild_ready_timeout=0.05)


def qa_of(bot: SessionBot) -> QaExtension:
    return next(e for e in bot.extensions if isinstance(e, QaExtension))


def posted_questions(standin: StandIn, channel_id: int | None = None) -> list:
    return [m for m in standin.messages(channel_id) if any(c.startswith("qa:vote:") for c in custom_ids(m))]


def vote_label(message) -> str:
    return message.body["components"][0]["components"][0]["label"]


def digests(standin: StandIn) -> list:
    return [m for m in standin.messages(standin.channel_id) if m.embeds and m.embeds[0].get("title", "").startswith("Top questions")]


async def ask(standin: StandIn, user: int, question: str, **options: object) -> str:
    """/ask; the ephemeral text the asker sees (an error's embed, or the confirmation)."""
    handle = await standin.invoke("ask", {"question": question, **options}, user_id=user)
    body = await handle
    assert body["data"].get("flags", 0) & 64, "every /ask answer is ephemeral"
    if body["type"] == 5:
        await handle.wait_original_edit()
        return handle.content or ""
    return str(body["data"])


async def test_ask_during_a_replayed_session_goes_to_the_talk_on_now(standin, schedule, tmp_path):
    async with running_client(make_bot(tmp_path, standin, schedule, ReplayClock(pst(6, 5), 1.0)), token=TOKEN):
        command = standin.find_command("ask")
        assert next(o for o in command["options"] if o["name"] == "question")["max_length"] == 500
        confirm = await ask(standin, ALICE, "Why a shooting formulation rather than backprop?")
        anonymous = await ask(standin, BOB, "Does it scale to transformers?", anonymous=True)
        on_qa = await ask(standin, CAROL, "Which of the four spotlights generalises best?", talk="qa-spotlights-1")
        picked = await standin.autocomplete("ask", "talk", "wave", options={"question": "x"})
        assert any(c["value"] == "wave-based-imaging" for c in (await picked)["data"]["choices"])
    first, second, third = posted_questions(standin)
    assert "A shooting formulation of deep learning" in confirm and f"/{first.id}" in confirm
    assert "anonymously" in anonymous and "Joint Q&A" in on_qa
    embed = first.embeds[0]
    assert embed["description"] == "Why a shooting formulation rather than backprop?"
    assert embed["author"]["name"] == "Question from alice" and "A shooting formulation" in embed["fields"][0]["value"]
    assert second.embeds[0]["author"]["name"] == "Question from anonymous" and "bob" not in str(second.body)
    assert "Joint Q&A for Preceeding Spotlights" in third.embeds[0]["fields"][0]["value"]
    assert [vote_label(m) for m in (first, second, third)] == ["▲ 0"] * 3
    assert all(m.allowed_mentions == {"parse": []} and not would_ping(m.body) for m in (first, second, third))
    stored = Store(tmp_path / "bot.sqlite3").question(2)
    assert stored is not None and stored.user_id == BOB and stored.anonymous  # kept for moderation, never shown


async def test_outside_the_session_ask_wants_a_talk(standin, schedule, tmp_path):
    async with running_client(make_bot(tmp_path, standin, schedule, FixedClock(pst(5, 0))), token=TOKEN):
        refused = await ask(standin, ALICE, "Anyone there?")
        named = await ask(standin, ALICE, "Will the slides be online?", talk="compositional-explanations")
        unknown = await ask(standin, ALICE, "Hm?", talk="no such talk at all")
    assert "No talk is on right now" in refused
    assert "Compositional Explanations of Neurons" in named
    assert "No talk matches" in unknown
    assert len(posted_questions(standin)) == 1


async def test_hostile_questions_are_inert_and_a_flood_is_refused_kindly(standin, schedule, tmp_path):
    role = standin.guild.roles[2].id
    hostile = [
        f"@everyone @here <@{BOB}> <@!{BOB}> <@&{role}> <#{standin.channel_id}> ping!",
        "**bold** __under__ ~~gone~~ ||spoiler|| `code` [click](https://evil.example) # Heading\n> quote",
        "\x00\x07bell\u202eesrever\u200b\ttab\r\nnew line\x1b[31m red",
        "ä" * 500,
    ]
    async with running_client(make_bot(tmp_path, standin, schedule, FixedClock(pst(6, 20))), token=TOKEN):
        for i, text in enumerate(hostile):
            assert "is posted" in await ask(standin, 945000000000000000 + i, text)  # different users: the per-minute limit is per user
        try:
            await standin.invoke("ask", {"question": "x" * 501}, user_id=ALICE)
            raise AssertionError("Discord's client sends at most max_length characters")
        except ValueError:
            pass
        assert "empty" in await ask(standin, ALICE, "\x00\x01\u200b\u202e")
        flood = [await ask(standin, CAROL, f"question {i}") for i in range(4)]
    assert all("is posted" in text for text in flood[:3]) and "in the last minute" in flood[3], flood
    posts = posted_questions(standin)
    assert len(posts) == len(hostile) + 3
    described = [m.embeds[0]["description"] for m in posts]
    assert "@everyone" not in described[0] and f"<@{BOB}>" not in described[0] and f"<@&{role}>" not in described[0]
    assert "\\*\\*bold\\*\\*" in described[1] and "\\|\\|spoiler\\|\\|" in described[1]
    assert not any(ch in described[2] for ch in "\x00\x07\u202e\u200b\r\n\t\x1b")
    assert described[3] == "ä" * 500
    assert Store(tmp_path / "bot.sqlite3").questions_since(CAROL, pst(6, 0)) == 3  # the refused one was not stored
    assert not any(would_ping(r.message_body) for r in standin.outgoing() if r.message_body is not None)
    assert all(r.status < 400 for r in standin.requests if r.route), [(r.path, r.response) for r in standin.requests if r.status >= 400]


async def test_200_users_upvote_at_once_every_click_acknowledged_and_the_count_exact(standin, schedule, tmp_path):
    bot = make_bot(tmp_path, standin, schedule, FixedClock(pst(6, 20)))
    async with running_client(bot, token=TOKEN):
        await ask(standin, ALICE, "What is the memory cost?")
        (message,) = posted_questions(standin)
        custom_id = custom_ids(message)[0]
        users = [942000000000000000 + i for i in range(200)]
        started = time.monotonic()
        handles = []
        for i, user in enumerate(users):  # 200 different users within 2 seconds
            handles.append(await standin.click(message.id, custom_id, user_id=user))
            if i % 20 == 19:
                await asyncio.sleep(0.18)
        spread = time.monotonic() - started
        await asyncio.gather(*(h.wait_response(timeout=10) for h in handles))
        await wait_for(lambda: vote_label(standin.stored[message.id]) == "▲ 200", 5)
        await asyncio.sleep(WINDOW * 3)
        edits = qa_of(bot).bursts.edits
    acks = [h.ack_seconds for h in handles]
    assert spread < 2.0 and all(a is not None and a < 3.0 for a in acks), max(a or 99 for a in acks)
    assert all(len(h.attempts) == 1 for h in handles)  # one acknowledgement each, none refused
    types = [h.response_type for h in handles]
    assert set(types) <= {6, 7} and types.count(7) <= 1 + spread / WINDOW
    assert Store(tmp_path / "bot.sqlite3").question(1).votes == 200  # type: ignore[union-attr]
    assert vote_label(standin.stored[message.id]) == "▲ 200"
    assert edits <= 1 + spread / WINDOW + 1  # a handful of edits, not 200
    print(f"200 clicks in {spread:.2f} s: max ack {max(acks):.3f} s, {types.count(7)} type-7 answers, {edits} closing edits")  # type: ignore[type-var]


async def test_votes_toggle_and_old_buttons_work_after_a_kill(standin, schedule, tmp_path):
    clock = FixedClock(pst(6, 20))
    bot = make_bot(tmp_path, standin, schedule, clock)
    task = asyncio.create_task(bot.start(TOKEN))
    await wait_for(bot.is_ready, 10)
    await ask(standin, ALICE, "Is the code released?")
    (message,) = posted_questions(standin)
    custom_id = custom_ids(message)[0]
    for user in (ALICE, BOB, CAROL, BOB):  # Alice votes for her own question; Bob takes his vote back
        await (await standin.click(message.id, custom_id, user_id=user))
        await asyncio.sleep(WINDOW * 1.5)
    assert vote_label(standin.stored[message.id]) == "▲ 2"
    await kill_client(bot, task)  # as kill -9: no clean close
    async with running_client(make_bot(tmp_path, standin, schedule, clock), token=TOKEN):
        again = await standin.click(message.id, custom_id, user_id=BOB)
        assert (await again)["type"] == 7
        more = [await standin.click(message.id, custom_id, user_id=942100000000000000 + i) for i in range(5)]
        await asyncio.gather(*(h.wait_response() for h in more))
        await wait_for(lambda: vote_label(standin.stored[message.id]) == "▲ 8", 5)
    assert Store(tmp_path / "bot.sqlite3").question(1).votes == 8  # type: ignore[union-attr]


async def test_questions_for_chairs_only_with_answered_and_hide(standin, schedule, tmp_path):
    async with running_client(make_bot(tmp_path, standin, schedule, FixedClock(pst(7, 45)), chair_role_id=CHAIR_ROLE), token=TOKEN) as bot:
        for user, talk, text in [
            (ALICE, "hamiltonian-lagrangian-constraints", "Energy drift over long rollouts?"),
            (BOB, "wave-based-imaging", "How noisy can the data be?"),
            (CAROL, "power-laws-deep-ensembles", "Do the laws hold for small ensembles?"),
            (CAROL, "shooting-formulation", "Not for this Q&A"),
        ]:
            await ask(standin, user, text, talk=talk)
        posts = posted_questions(standin)
        for user in (ALICE, CAROL):
            await (await standin.click(posts[1].id, custom_ids(posts[1])[0], user_id=user))
        await asyncio.sleep(WINDOW * 1.5)
        refused = await (await standin.invoke("questions", user_id=ALICE))
        assert refused["data"]["content"] == NOT_CHAIR and refused["data"]["flags"] & 64
        by_role = await (await standin.invoke("questions", user_id=CHAIR, roles=[CHAIR_ROLE]))
        listing = await standin.invoke("questions", user_id=CHAIR, permissions=MANAGE_MESSAGES)  # during the joint Q&A: its talks' questions
        await listing
        embed = listing.original.embeds[0]
        listed = [f["value"].split("\n")[0] for f in embed["fields"]]
        assert listed == ["How noisy can the data be?", "Energy drift over long rollouts?", "Do the laws hold for small ensembles?"]
        assert embed["fields"][0]["name"].startswith("1. ▲ 2")
        assert by_role["data"]["embeds"][0]["fields"] == embed["fields"]
        assert len(listing.original.body["components"]) == 2 and len(custom_ids(listing.original)) == 6
        answered = await standin.click(listing.original.id, "qa:answered:2", user_id=CHAIR, permissions=MANAGE_MESSAGES)
        assert (await answered)["type"] == 7
        assert "How noisy" not in str(listing.original.embeds)
        await wait_for(lambda: standin.stored[posts[1].id].content == "✅ Answered", 5)
        assert standin.stored[posts[1].id].body["components"][0]["components"][0]["disabled"] is True
        late_vote = await (await standin.click(posts[0].id, custom_ids(posts[0])[0], user_id=BOB))  # still open: fine
        assert late_vote["type"] == 7
        hidden = await standin.click(listing.original.id, "qa:hide:1", user_id=CHAIR, permissions=MANAGE_MESSAGES)
        assert (await hidden)["type"] == 7
        await wait_for(lambda: standin.stored[posts[0].id].deleted, 5)
        demoted = await (await standin.click(listing.original.id, "qa:hide:3", user_id=CHAIR))  # no longer a chair
        assert demoted["data"]["content"] == NOT_CHAIR and demoted["data"]["flags"] & 64
        store = qa_of(bot).store
        assert [store.question(i).state for i in (1, 2, 3, 4)] == ["hidden", "answered", "open", "open"]  # type: ignore[union-attr]
    assert [f["value"].split("\n")[0] for f in listing.original.embeds[0]["fields"]] == ["Do the laws hold for small ensembles?"]


async def test_votes_on_an_answered_question_are_refused(standin, schedule, tmp_path):
    async with running_client(make_bot(tmp_path, standin, schedule, FixedClock(pst(6, 20))), token=TOKEN) as bot:
        await ask(standin, ALICE, "A question")
        (message,) = posted_questions(standin)
        qa_of(bot).store.set_question_state(1, "answered")
        refused = await (await standin.click(message.id, custom_ids(message)[0], user_id=BOB))
    assert refused["data"]["content"] == CLOSED and refused["data"]["flags"] & 64


async def test_top_questions_ten_minutes_before_the_qa_slot_exactly_once(standin, schedule, tmp_path):
    async with running_client(make_bot(tmp_path, standin, schedule, FixedClock(pst(7, 5))), token=TOKEN):
        talks = ["hamiltonian-lagrangian-constraints", "power-laws-deep-ensembles", "wave-based-imaging", "early-time-learning-dynamics"]
        for i in range(7):
            await ask(standin, 943000000000000000 + i, f"Spotlight question {i} <@{BOB}>", talk=talks[i % 4])
        posts = posted_questions(standin)
        for voters, post in zip((0, 3, 1, 5, 0, 2, 4), posts, strict=True):
            for v in range(voters):
                await (await standin.click(post.id, custom_ids(post)[0], user_id=944000000000000000 + v))
    clock = ReplayClock(pst(7, 29), 60.0)  # due at 07:30, one real second in
    async with running_client(make_bot(tmp_path, standin, schedule, clock), token=TOKEN):
        await wait_for(lambda: digests(standin), 10)
    async with running_client(make_bot(tmp_path, standin, schedule, ReplayClock(pst(7, 31), 60.0)), token=TOKEN):
        await asyncio.sleep(0.5)  # a restart inside the grace: the ledger says it was posted
    (digest,) = digests(standin)
    fields = digest.embeds[0]["fields"]
    assert "Joint Q&A for Preceeding Spotlights" in digest.embeds[0]["title"] and len(fields) == 5
    assert [f["value"].split(" <")[0] for f in fields] == [f"Spotlight question {i}" for i in (3, 6, 1, 5, 2)]
    assert not any(f"<@{BOB}>" in f["value"] for f in fields)
    assert [int(f["name"].split("▲ ")[1].split(" ")[0]) for f in fields] == [5, 4, 3, 2, 1]
    assert not would_ping(digest.body) and digest.allowed_mentions == {"parse": []}
    rows = [r for r in Store(tmp_path / "bot.sqlite3").rows() if "|qa-top|" in r.id]
    assert [(r.talk_id, r.state) for r in rows] == [("qa-spotlights-1", State.SENT)]


async def test_top_questions_when_an_oral_ends(standin, schedule, tmp_path):
    async with running_client(make_bot(tmp_path, standin, schedule, FixedClock(pst(6, 5))), token=TOKEN):
        await ask(standin, ALICE, "Oral question")
    async with running_client(make_bot(tmp_path, standin, schedule, ReplayClock(pst(6, 14), 60.0)), token=TOKEN):
        await wait_for(lambda: digests(standin), 10)
    (digest,) = digests(standin)
    assert "A shooting formulation" in digest.embeds[0]["title"] and "has ended" in digest.embeds[0]["description"]


async def test_with_talk_threads_a_thread_on_the_reminder_and_questions_go_there(standin, schedule, tmp_path):
    await grant(standin, CREATE_PUBLIC_THREADS | SEND_MESSAGES_IN_THREADS)
    clock = ReplayClock(pst(5, 54), 60.0)  # the 06:00 oral's reminder is due at 05:55
    async with running_client(make_bot(tmp_path, standin, schedule, clock, talk_threads=True), token=TOKEN):
        await wait_for(lambda: standin.threads(standin.channel_id), 10)
        (thread,) = standin.threads(standin.channel_id)
        reminder = standin.stored[thread.id]
        assert thread.name == "A shooting formulation of deep learning" and thread.type == 11
        assert reminder.embeds[0]["title"] == thread.name
        text = await ask(standin, ALICE, "In the thread?", talk="shooting-formulation")
        other = await ask(standin, BOB, "Not in a thread", talk="compositional-explanations")
    (in_thread,) = posted_questions(standin, thread.id)
    assert f"/{thread.id}/{in_thread.id}" in text and "is posted" in other
    assert [m.embeds[0]["description"] for m in posted_questions(standin, standin.channel_id)] == ["Not in a thread"]


async def test_ten_long_questions_fit_the_chair_list_and_the_top_post(standin, schedule, tmp_path):
    async with running_client(make_bot(tmp_path, standin, schedule, FixedClock(pst(7, 45))), token=TOKEN) as bot:
        for i in range(12):  # every character escaped: 1000 characters each once cleaned
            await ask(standin, 946000000000000000 + i, "*_`|" * 125, talk=["wave-based-imaging", "qa-spotlights-1"][i % 2])
        listing = await standin.invoke("questions", user_id=CHAIR, permissions=MANAGE_MESSAGES)
        await listing
        qa_ext = qa_of(bot)
        talk = schedule.talk("qa-spotlights-1")
        await qa_ext.post_digest(standin.guild_id, talk, pst(7, 30), set())
    assert listing.callback is not None and len(listing.original.embeds[0]["fields"]) == 10
    assert len(custom_ids(listing.original)) == 20 and len(listing.original.body["components"]) == 5
    (digest,) = digests(standin)
    assert len(digest.embeds[0]["fields"]) == 5
    assert all(r.status < 400 for r in standin.requests if r.route), [r.response for r in standin.requests if r.status >= 400]


async def test_with_talk_threads_the_dm_reminder_links_to_the_talks_thread(standin, schedule, tmp_path):
    from bot.discord_ui.remind import PersonalReminders
    from bot.discord_ui.render import jump_link
    from bot.state.store import Store

    await grant(standin, CREATE_PUBLIC_THREADS | SEND_MESSAGES_IN_THREADS)
    store = Store(tmp_path / "bot.sqlite3")
    store.follow(ALICE, "talk", "shooting-formulation", "A shooting formulation of deep learning", 4)  # after the channel's 5-minute one
    store.close()
    clock = ReplayClock(pst(5, 54), 60.0)
    bot = make_bot(tmp_path, standin, schedule, clock, talk_threads=True)
    bot.extensions.append(PersonalReminders(bot.settings, clock))
    async with running_client(bot, token=TOKEN):
        await wait_for(lambda: [m for m in standin.dms(ALICE) if m.embeds], 10)
    (thread,) = standin.threads(standin.channel_id)
    (dm,) = [m for m in standin.dms(ALICE) if m.embeds]
    fields = {f["name"]: f["value"] for f in dm.embeds[0]["fields"]}
    assert fields["Discussion"] == f"[The talk's thread]({jump_link(standin.guild_id, thread.id)})"
