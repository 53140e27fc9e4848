"""End to end: the real discord.py client (SessionBot) against the local Discord stand-in, in-process."""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator
from typing import Any

import discord
import pytest
import pytest_asyncio
from discord import app_commands

from bot.config import Secret, Settings
from bot.core.clock import FixedClock
from bot.core.schedule import Schedule
from bot.core.search import SearchIndex
from bot.discord_ui.app import SessionBot
from bot.discord_ui.commands import safe_autocomplete
from tests.conftest import pst
from tests.standin import StandIn, running_client, would_ping
from tests.standin.interactions import AUTOCOMPLETE_RESULT, CHANNEL_MESSAGE
from tests.standin.validation import check_message, embed_length
from tests.test_discord_render import huge_index, huge_schedule

TOKEN = "Tk9UQVJFQUxUT0tFTg.fake-bot-token.for-tests-only-42"
PRIVILEGED = (1 << 1) | (1 << 8) | (1 << 15)  # members, presences, message content


class Boom:
    """An extension that adds a command which always fails (and records its lifecycle)."""

    def __init__(self) -> None:
        self.events: list[str] = []

    async def setup(self, bot: SessionBot) -> None:
        self.events.append("setup")

        @bot.tree.command(name="boom", description="Always fails")
        async def boom(interaction: discord.Interaction) -> None:
            raise RuntimeError("kaboom")

        @bot.tree.command(name="lateboom", description="Answers, then fails")
        async def lateboom(interaction: discord.Interaction) -> None:
            await interaction.response.send_message("working", allowed_mentions=discord.AllowedMentions.none())
            raise RuntimeError("late kaboom")

        bot.tree.add_command(app_commands.Group(name="reminders", description="An extension's group"))

    async def close(self) -> None:
        self.events.append("close")


@pytest_asyncio.fixture
async def standin() -> AsyncIterator[StandIn]:
    async with StandIn(token=TOKEN) as server:
        with server.redirect():
            yield server


def make_bot(standin: StandIn, schedule: Schedule, clock: FixedClock, *, guild: bool = True, extensions: list | None = None) -> SessionBot:
    settings = Settings(discord_token=Secret(TOKEN), guild_id=standin.guild_id if guild else None)
    return SessionBot(settings, schedule, SearchIndex(schedule), clock, extensions or [], guild_ready_timeout=0.05)


@pytest.fixture
def clock() -> FixedClock:
    return FixedClock(pst(6, 5))


@pytest.fixture
def boom() -> Boom:
    return Boom()


@pytest_asyncio.fixture
async def bot(standin: StandIn, schedule: Schedule, index: SearchIndex, clock: FixedClock, boom: Boom) -> AsyncIterator[SessionBot]:
    client = make_bot(standin, schedule, clock, extensions=[boom])
    async with running_client(client, token=TOKEN):
        yield client


async def ask(standin: StandIn, name: str, options: dict[str, Any] | None = None, *, followups: int = 0) -> Any:
    """Invoke a command; assert it was acknowledged once, fast, within limits and without pings."""
    handle = await standin.invoke(name, options)
    await handle.wait_attempt(1)
    if followups:
        await handle.wait_followups(followups)
    first = handle.attempts[0]
    assert first.status in (200, 204), first.response
    assert handle.callback is not None
    assert handle.acked_at - handle.created < 1.0
    for body in [handle.callback, *(m.body for m in handle.followups)]:
        data = body.get("data", body) if "type" in body else body
        assert not check_message(data), check_message(data)
        assert data.get("allowed_mentions", {}).get("parse") == []
        assert not would_ping(body)
    return handle


async def complete(standin: StandIn, name: str, focused: str, value: str) -> list[dict[str, Any]]:
    return (await complete_handle(standin, name, focused, value)).choices


async def complete_handle(standin: StandIn, name: str, focused: str, value: str) -> Any:
    """Autocomplete; assert it was answered once, with choices Discord accepts."""
    handle = await standin.autocomplete(name, focused, value)
    await handle.wait_attempt(1)
    assert handle.attempts[0].status in (200, 204), handle.attempts[0].response
    assert handle.response_type == AUTOCOMPLETE_RESULT
    choices = handle.choices
    assert len(choices) <= 25
    assert all(1 <= len(c["name"]) <= 100 and len(c["value"]) <= 100 for c in choices)
    return handle


def embeds(handle: Any) -> list[dict[str, Any]]:
    return handle.data.get("embeds") or []


def text_of(handle: Any) -> str:
    parts = [handle.data.get("content") or ""]
    for embed in embeds(handle):
        parts += [embed.get("title") or "", embed.get("description") or ""]
        parts += [f"{f['name']} {f['value']}" for f in embed.get("fields") or []]
        parts.append((embed.get("footer") or {}).get("text") or "")
    return "\n".join(parts)


# --------------------------------------------------------------------------- start-up


async def test_identify_has_no_privileged_intent(standin: StandIn, bot: SessionBot) -> None:
    assert standin.gateway.intents is not None
    assert standin.gateway.intents & PRIVILEGED == 0
    assert standin.gateway.intents == discord.Intents.default().value


async def test_commands_synced_to_the_guild_only(standin: StandIn, bot: SessionBot, boom: Boom) -> None:
    names = {c["name"] for c in standin.commands.get(standin.guild_id, [])}
    assert {"next", "now", "schedule", "talk", "abstract", "author", "help", "reminders"} <= names
    assert not standin.commands.get(None)
    assert boom.events == ["setup"]
    talk = standin.find_command("talk")
    assert talk["options"][0]["autocomplete"] is True


async def test_without_guild_id_nothing_is_synced(standin: StandIn, schedule: Schedule, clock: FixedClock, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    async with running_client(make_bot(standin, schedule, clock, guild=False), token=TOKEN):
        pass
    assert not standin.commands.get(standin.guild_id) and not standin.commands.get(None)
    assert "python -m bot sync" in caplog.text
    assert not [r for r in standin.requests if "/commands" in r.path and r.method == "PUT"]


async def test_start_logs_invite_summary_next_talk_and_never_the_token(
    standin: StandIn, schedule: Schedule, clock: FixedClock, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    client = make_bot(standin, schedule, clock)
    async with running_client(client, token=TOKEN):
        handle = await ask(standin, "next")
    log_text = caplog.text
    assert f"client_id={standin.app_id}&scope=bot+applications.commands&permissions=" in log_text
    assert "Schedule: track28" in log_text
    assert "Next talk:" in log_text and "Lagrangian" not in log_text.split("Next talk:")[0][-5:]
    assert TOKEN not in log_text
    assert TOKEN.partition(".")[0] not in log_text
    assert TOKEN not in repr(client.settings) and TOKEN not in str(client.settings)
    assert handle.callback is not None


async def test_close_closes_extensions(standin: StandIn, schedule: Schedule, clock: FixedClock) -> None:
    ext = Boom()
    async with running_client(make_bot(standin, schedule, clock, extensions=[ext]), token=TOKEN):
        pass
    assert ext.events == ["setup", "close"]


# --------------------------------------------------------------------------- commands


async def test_next_lists_upcoming_talks_with_timestamps(standin: StandIn, bot: SessionBot) -> None:
    handle = await ask(standin, "next")
    assert handle.response_type == CHANNEL_MESSAGE
    text = text_of(handle)
    assert "<t:" in text and ":f>" in text and ":R>" in text
    assert "America/Los_Angeles" in text
    assert "Compositional Explanations of Neurons" in text  # 06:30, third of the next talks after 06:05


async def test_next_before_and_after_the_session(standin: StandIn, bot: SessionBot, clock: FixedClock) -> None:
    clock.instant = pst(5, 0)
    assert "starts on" in text_of(await ask(standin, "next"))
    clock.instant = pst(23, 0)
    assert "no more talks" in text_of(await ask(standin, "next"))


async def test_now_shows_the_running_talk(standin: StandIn, bot: SessionBot) -> None:
    text = text_of(await ask(standin, "now"))
    assert "A shooting formulation of deep learning" in text
    assert "Then:" in text


async def test_now_between_talks_says_nothing_is_on(standin: StandIn, bot: SessionBot, clock: FixedClock) -> None:
    clock.instant = pst(4, 0)
    assert "Nothing is on right now" in text_of(await ask(standin, "now"))


async def test_schedule_lists_every_item(standin: StandIn, bot: SessionBot, schedule: Schedule) -> None:
    handle = await ask(standin, "schedule")
    text = text_of(handle) + "".join(text_of_message(m.body) for m in handle.followups)
    assert text.count("<t:") >= len(schedule.talks)
    assert "America/Los_Angeles" in text


def text_of_message(body: dict[str, Any]) -> str:
    return "\n".join((e.get("description") or "") for e in body.get("embeds") or [])


async def test_talk_free_text_and_typo(standin: StandIn, bot: SessionBot) -> None:
    text = text_of(await ask(standin, "talk", {"query": "hamiltonain lagrangain"}))
    assert "Simplifying Hamiltonian and Lagrangian Neural Networks" in text
    assert "Marc Finzi" in text and "<t:" in text and "America/Los_Angeles" in text


async def test_talk_picked_choice_resolves_exactly(standin: StandIn, bot: SessionBot) -> None:
    handle = await ask(standin, "talk", {"query": "compositional-explanations"})
    assert embeds(handle)[0]["title"] == "Compositional Explanations of Neurons"


async def test_abstract_shows_the_full_abstract(standin: StandIn, bot: SessionBot, schedule: Schedule) -> None:
    talk = schedule.talk("shooting-formulation")
    assert talk is not None
    text = text_of(await ask(standin, "abstract", {"query": "shooting-formulation"}))
    assert "fertile area of research in deep learning parameterization" in text
    assert "/abstract" not in text


async def test_author_lists_their_talks(standin: StandIn, bot: SessionBot) -> None:
    handle = await ask(standin, "author", {"name": "andreas"})
    assert embeds(handle)[0]["title"] == "Jacob Andreas"
    assert "Compositional Explanations of Neurons" in text_of(handle)


async def test_author_picked_key_resolves_exactly(standin: StandIn, bot: SessionBot, index: SearchIndex) -> None:
    author = index.author_named("Marc Finzi")
    assert author is not None
    handle = await ask(standin, "author", {"name": author.key})
    assert embeds(handle)[0]["title"] == "Marc Finzi"


async def test_help_is_ephemeral(standin: StandIn, bot: SessionBot) -> None:
    handle = await ask(standin, "help")
    assert handle.ephemeral
    assert "/talk" in text_of(handle)


# --------------------------------------------------------------------------- errors


async def test_not_found_is_ephemeral_and_escapes_user_text(standin: StandIn, bot: SessionBot) -> None:
    handle = await ask(standin, "talk", {"query": "@everyone <@&123456789012345678> zzzqqq"})
    assert handle.ephemeral
    text = text_of(handle)
    assert "@everyone" not in text and "<@&" not in text
    assert "Not found" in text


async def test_unknown_author_is_ephemeral(standin: StandIn, bot: SessionBot) -> None:
    handle = await ask(standin, "author", {"name": "Zyxwvut Qqqq"})
    assert handle.ephemeral and "Not found" in text_of(handle)


async def test_misspelt_author_is_found(standin: StandIn, bot: SessionBot) -> None:
    handle = await ask(standin, "author", {"name": "niethamer"})
    assert embeds(handle)[0]["title"] == "Marc Niethammer"


async def test_ambiguous_query_lists_candidates(standin: StandIn, bot: SessionBot) -> None:
    handle = await ask(standin, "talk", {"query": "deep"})  # several titles mention "deep"
    assert handle.ephemeral
    text = text_of(handle)
    assert "Please be more specific" in text and text.count("•") >= 2


async def test_empty_query_is_ephemeral(standin: StandIn, bot: SessionBot) -> None:
    handle = await ask(standin, "abstract", {"query": "   "})
    assert handle.ephemeral


async def test_unexpected_error_apologises_and_the_bot_keeps_running(standin: StandIn, bot: SessionBot, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    handle = await ask(standin, "boom")
    assert handle.ephemeral and "Sorry" in (handle.content or "")
    tracebacks = [r for r in caplog.records if r.exc_info and "kaboom" in str(r.exc_info[1])]
    assert len(tracebacks) == 1
    assert len(handle.attempts) == 1
    assert "Compositional" in text_of(await ask(standin, "talk", {"query": "compositional"}))


async def test_error_after_responding_is_answered_by_followup(standin: StandIn, bot: SessionBot) -> None:
    handle = await ask(standin, "lateboom", followups=1)
    assert len(handle.attempts) == 1
    assert "Sorry" in handle.followups[0].content
    assert handle.followups[0].flags & 64


# --------------------------------------------------------------------------- autocomplete


async def test_autocomplete_empty_lists_next_talks(standin: StandIn, bot: SessionBot) -> None:
    choices = await complete(standin, "talk", "query", "")
    assert choices and choices[0]["value"] == "l2-regularization-dynamics"
    assert all(c["value"] != "shooting-formulation" for c in choices)  # already started


async def test_autocomplete_typo_finds_the_talk(standin: StandIn, bot: SessionBot) -> None:
    choices = await complete(standin, "abstract", "query", "hamiltonain")
    assert choices[0]["value"] == "hamiltonian-lagrangian-constraints"


async def test_autocomplete_author(standin: StandIn, bot: SessionBot) -> None:
    assert (await complete(standin, "author", "name", "vialard"))[0]["name"].startswith("François-Xavier Vialard")
    assert await complete(standin, "author", "name", "")


async def test_query_options_are_capped_at_200_characters(standin: StandIn, bot: SessionBot) -> None:
    for command, option in [("talk", "query"), ("abstract", "query"), ("author", "name")]:
        (definition,) = standin.find_command(command)["options"]
        assert definition["name"] == option and definition["max_length"] == 200
        with pytest.raises(ValueError, match="Discord's client would not send this"):
            await standin.invoke(command, {option: "neural network " * 400})
        await ask(standin, command, {option: "x" * 200})  # the longest allowed is still answered
    t0 = time.monotonic()
    choices = await complete(standin, "talk", "query", "Compositional Explanations of Neurons " * 150)
    assert time.monotonic() - t0 < 1.0
    assert choices[0]["value"] == "compositional-explanations"


async def test_a_chair_is_found_and_named(standin: StandIn, bot: SessionBot, clock: FixedClock) -> None:
    (first, *_) = await complete(standin, "author", "name", "Oriol Vinyals")
    assert first["name"] == "Oriol Vinyals · chair of Orals & Spotlights Track 28: Deep Learning"
    handle = await ask(standin, "author", {"name": first["value"]})
    assert embeds(handle)[0]["title"] == "Oriol Vinyals"
    assert "Chair** of Orals & Spotlights Track 28: Deep Learning" in text_of(handle)
    assert embeds(await ask(standin, "author", {"name": "oriol vinyals"}))[0]["title"] == "Oriol Vinyals"
    for command in ["schedule", "now", "help"]:
        assert "Oriol Vinyals, Guido Montufar" in text_of(await ask(standin, command)), command


async def test_next_after_the_last_talk_says_when_the_session_ends(standin: StandIn, bot: SessionBot, clock: FixedClock) -> None:
    clock.instant = pst(8, 45)
    assert "There are no more talks: Orals & Spotlights Track 28: Deep Learning ends at" in text_of(await ask(standin, "next"))


async def test_autocomplete_odd_input_never_fails(standin: StandIn, bot: SessionBot) -> None:
    for value in ["@everyone", "x" * 500, "💥" * 30, "$$\\frac{", "   "]:
        await complete(standin, "talk", "query", value)


# --------------------------------------------------------------------------- huge schedule


async def test_huge_schedule_answers_stay_within_limits(standin: StandIn, clock: FixedClock) -> None:
    big = huge_schedule()
    index = huge_index()
    clock.instant = big.talks[0].start
    client = SessionBot(Settings(discord_token=Secret(TOKEN), guild_id=standin.guild_id), big, index, clock, [], guild_ready_timeout=0.05)
    async with running_client(client, token=TOKEN):
        handle = await ask(standin, "schedule")
        await handle.wait_followups(4)
        bodies = [handle.callback["data"], *(m.body for m in handle.followups)]
        assert len(bodies) == 5
        assert all(sum(embed_length(e) for e in b.get("embeds", [])) <= 6000 for b in bodies)
        assert "not shown" in (bodies[-1].get("content") or "")
        talk = big.talks[1]
        for name, options in [("talk", {"query": talk.id}), ("abstract", {"query": talk.id}), ("next", None), ("now", None)]:
            assert not (await ask(standin, name, options)).ephemeral
        author = index.authors[0]
        assert not (await ask(standin, "author", {"name": author.key})).ephemeral
        await ask(standin, "talk", {"query": "zzzz qqqq"})
        t0 = time.monotonic()
        for value in ["", "word", "lorem ipsum dolor"]:
            await complete(standin, "talk", "query", value)
            await complete(standin, "author", "name", value)
        assert time.monotonic() - t0 < 3


async def test_reconnect_does_not_sync_again(standin: StandIn, bot: SessionBot) -> None:
    puts = [r for r in standin.requests if r.method == "PUT" and r.path.endswith("/commands")]
    assert len(puts) == 1
    await standin.drop_gateway(4000)
    await standin.gateway.wait_resumed(1)
    await ask(standin, "help")
    assert len([r for r in standin.requests if r.method == "PUT" and r.path.endswith("/commands")]) == 1


async def test_failing_autocomplete_logs_and_offers_nothing(caplog: pytest.LogCaptureFixture) -> None:
    def broken(text: str) -> list:
        raise ValueError("index exploded")

    complete_fn = safe_autocomplete(broken, "talks")
    assert await complete_fn(None, "anything") == []  # type: ignore[arg-type]
    assert "index exploded" in caplog.text


async def test_ack_times_are_fast_for_every_kind_of_interaction(standin: StandIn, bot: SessionBot) -> None:
    commands = [("next", None), ("now", None), ("schedule", None), ("help", None)]
    commands += [("talk", {"query": "hamiltonain"}), ("abstract", {"query": "compositional-explanations"}), ("author", {"name": "andreas"})]
    commands += [("talk", {"query": "zzzz qqqq"}), ("boom", None)]
    handles = [await ask(standin, name, options) for name, options in commands]
    for name, focused, value in [("talk", "query", ""), ("abstract", "query", "power laws"), ("author", "name", "vin"), ("talk", "query", "x" * 500)]:
        handles.append(await complete_handle(standin, name, focused, value))
    ack_times = [h.acked_at - h.created for h in handles if h.acked_at is not None]
    assert len(ack_times) == len(commands) + 4
    assert max(ack_times) < 1.0, ack_times
