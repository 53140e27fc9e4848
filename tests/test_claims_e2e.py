"""Two bots holding the same shard, on one PostgreSQL: Discord sends every interaction to both.

Each command, autocomplete and click must be answered once: no second answer refused with 40060,
one question per /ask, and a vote counted once (twice would take it back).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest_asyncio

from bot.config import Secret, Settings
from bot.core.clock import ReplayClock
from bot.core.schedule import Schedule
from bot.core.search import SearchIndex
from bot.discord_ui.app import SessionBot
from bot.discord_ui.qa import QaExtension
from bot.discord_ui.reminders import ReminderExtension
from bot.state.postgres import PostgresStore
from tests.conftest import pst, wait_for
from tests.standin import StandIn, running_client
from tests.standin.components import custom_ids

TOKEN = "Q0xBSU1T.claims-fake-token.for-tests-only-3"
ALICE, BOB = 951000000000000001, 951000000000000002


@pytest_asyncio.fixture
async def standin() -> AsyncIterator[StandIn]:
    # Both bots connect within a second; Discord's 5 s identify window is tested in test_standin_shards.
    async with StandIn(token=TOKEN, identify_window=0.0) as server:
        for uid, name in [(ALICE, "alice"), (BOB, "bob")]:
            server.guild.members[uid] = (name, [])
        with server.redirect():
            yield server
        assert server.internal_errors == [], server.internal_errors


def make_bot(standin: StandIn, schedule: Schedule, state_url: str, tmp_path, name: str) -> SessionBot:
    settings = Settings(
        discord_token=Secret(TOKEN),
        guild_id=standin.guild_id,
        reminder_channel_id=standin.channel_id,
        state_path=tmp_path / name / "bot.sqlite3",
        state_url=Secret(state_url),
    )
    clock = ReplayClock(pst(6, 5), 1.0)
    extensions = [ReminderExtension(settings, schedule, clock), QaExtension(settings, clock, window=0.2)]
    return SessionBot(settings, schedule, SearchIndex(schedule), clock, extensions, guild_ready_timeout=0.05)


def callbacks(standin: StandIn) -> list:
    return [r for r in standin.requests if r.method == "POST" and r.path.startswith("/interactions/")]


async def test_two_processes_on_one_shard_answer_each_interaction_once(standin, schedule, postgres_database, tmp_path):
    async with (
        running_client(make_bot(standin, schedule, postgres_database, tmp_path, "a"), token=TOKEN),
        running_client(make_bot(standin, schedule, postgres_database, tmp_path, "b"), token=TOKEN),
    ):
        assert len(standin.gateway.sessions_for(0, connected=True)) == 2  # both hold shard 0: both get every event
        talk = await (await standin.invoke("talk", {"query": "hamiltonian"}, user_id=ALICE))
        assert "Hamiltonian" in talk["data"]["embeds"][0]["title"]
        choices = await (await standin.autocomplete("talk", "query", "wave"))
        assert choices["data"]["choices"]
        asked = await standin.invoke("ask", {"question": "Does the shooting formulation scale?"}, user_id=ALICE)
        await asked
        await asked.wait_original_edit()
        await wait_for(lambda: any(c.startswith("qa:vote:") for m in standin.messages(standin.channel_id) for c in custom_ids(m)), 5)
        (question,) = [m for m in standin.messages(standin.channel_id) if any(c.startswith("qa:vote:") for c in custom_ids(m))]
        vote = next(c for c in custom_ids(question) if c.startswith("qa:vote:"))
        await (await standin.click(question.id, vote, user_id=BOB))
        await asyncio.sleep(0.5)  # the other process would have counted it by now
    refused = [r for r in callbacks(standin) if r.status == 400]
    assert refused == [], [(r.path, r.status) for r in refused]  # nobody answered an interaction twice
    assert len(callbacks(standin)) == 4  # /talk, autocomplete, /ask (deferred), the click
    store = PostgresStore(postgres_database)
    try:
        (only,) = store.top_questions(standin.guild_id, ["shooting-formulation"], states=("open",))
        assert only.votes == 1 and store.voted(only.id, BOB)
    finally:
        store.close()
