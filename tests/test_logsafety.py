"""No token reaches a log line: the filter alone, then the real discord.py client at DEBUG against the stand-in."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import AsyncIterator, Iterator

import discord
import pytest
import pytest_asyncio

from bot.__main__ import LOG_FORMAT, configure_logging
from bot.config import Secret, Settings
from bot.core.clock import FixedClock
from bot.core.schedule import Schedule
from bot.core.search import SearchIndex
from bot.discord_ui.app import SessionBot
from bot.logsafety import MASK, RedactingFilter, install, uninstall
from tests.conftest import pst
from tests.standin import StandIn, running_client

BOT_TOKEN = "TE9HU0FGRVRZ.bot-token-for-the-log-test.never-in-a-log-line-99"
INTERACTION_TOKEN = "aW50ZXJhY3Rpb24secret-interaction-token_0123456789-abcdef"


def masked(msg: str, *args: object, secrets: tuple[str, ...] = (BOT_TOKEN,), exc: bool = False) -> str:
    """The line a handler with the filter writes for one record."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logging.Formatter("%(message)s"))
    handler.addFilter(RedactingFilter(secrets))
    logger = logging.Logger("test.logsafety")
    logger.addHandler(handler)
    if exc:
        try:
            raise RuntimeError(msg % args)
        except RuntimeError:
            logger.exception("failed")
    else:
        logger.warning(msg, *args)
    return stream.getvalue()


# --------------------------------------------------------------------------- the filter


def test_a_gateway_event_dict_has_its_token_masked() -> None:
    event = {"t": "INTERACTION_CREATE", "d": {"id": "1", "token": INTERACTION_TOKEN, "data": {"name": "next"}}}
    line = masked("For Shard ID %s: WebSocket Event: %s", None, event)
    assert INTERACTION_TOKEN not in line
    assert f"'token': '{MASK}'" in line and "'name': 'next'" in line


def test_json_token_fields_are_masked_whatever_their_name() -> None:
    body = json.dumps({"token": INTERACTION_TOKEN, "access_token": "abc.def", "refresh_token": 'with "quotes"', "tokens_left": 3})
    line = masked("POST with %s", body)
    assert INTERACTION_TOKEN not in line and "abc.def" not in line and "quotes" not in line
    assert f'"token": "{MASK}"' in line and '"tokens_left": 3' in line


def test_tokens_in_interaction_and_webhook_paths_are_masked() -> None:
    base = discord.http.Route.BASE  # as discord.py writes its request lines (only a string here: nothing is contacted)
    callback = f"{base}/interactions/123456789/{INTERACTION_TOKEN}/callback?with_response=true"
    followup = f"{base}/webhooks/987654321/{INTERACTION_TOKEN}/messages/@original"
    line = masked("%s %s with %s has returned %s", "POST", callback, None, 204) + masked("Webhook ID %s with %s %s", 9, "PATCH", followup)
    assert INTERACTION_TOKEN not in line
    assert f"/interactions/123456789/{MASK}/callback?with_response=true" in line
    assert f"/webhooks/987654321/{MASK}/messages/@original" in line


def test_the_bot_token_is_masked_in_the_message_its_arguments_and_a_traceback() -> None:
    secret = Secret(BOT_TOKEN)
    assert BOT_TOKEN not in masked(f"header Bot {BOT_TOKEN}", secrets=(secret,))
    assert BOT_TOKEN not in masked("header %s", f"Bot {BOT_TOKEN}", secrets=(secret,))
    assert BOT_TOKEN not in masked("login with %s failed", BOT_TOKEN, secrets=(secret,), exc=True)
    assert masked("nothing secret here: %d talks", 15) == "nothing secret here: 15 talks\n"


def test_a_bad_format_string_is_masked_not_raised() -> None:
    assert BOT_TOKEN not in masked("two %s %s", BOT_TOKEN)


def test_installing_twice_replaces_the_filter() -> None:
    logger = logging.Logger("test.twice")
    handler = logging.StreamHandler(io.StringIO())
    logger.addHandler(handler)
    install([BOT_TOKEN], logger)
    second = install([BOT_TOKEN], logger)
    assert handler.filters == [second]
    uninstall(second, logger)
    assert handler.filters == []


# --------------------------------------------------------------------------- the real client at DEBUG


@pytest.fixture
def root_log() -> Iterator[io.StringIO]:
    """What a handler on the root logger writes, with the filter installed as `python -m bot` does."""
    root = logging.getLogger()
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logging.Formatter(LOG_FORMAT))
    level = root.level
    root.addHandler(handler)
    redactor = configure_logging("DEBUG", Secret(BOT_TOKEN))
    try:
        yield stream
    finally:
        uninstall(redactor)
        root.removeHandler(handler)
        root.setLevel(level)


class Followup:
    """An extension with a command that answers, then sends a follow-up through the webhook route."""

    async def setup(self, bot: SessionBot) -> None:
        @bot.tree.command(name="twice", description="Answers, then follows up")
        async def twice(interaction: discord.Interaction) -> None:
            await interaction.response.send_message("first", allowed_mentions=discord.AllowedMentions.none())
            await interaction.followup.send("second", allowed_mentions=discord.AllowedMentions.none())

    async def guilds_changed(self) -> None:
        pass

    async def close(self) -> None:
        pass


@pytest_asyncio.fixture
async def standin() -> AsyncIterator[StandIn]:
    async with StandIn(token=BOT_TOKEN) as server:
        with server.redirect():
            yield server


async def test_no_token_reaches_the_log_at_debug(standin: StandIn, schedule: Schedule, index: SearchIndex, root_log: io.StringIO) -> None:
    settings = Settings(discord_token=Secret(BOT_TOKEN), guild_id=standin.guild_id)
    bot = SessionBot(settings, schedule, index, FixedClock(pst(6, 5)), [Followup()], guild_ready_timeout=0.05)
    async with running_client(bot, token=BOT_TOKEN):
        answered = await standin.invoke("next")
        await answered.wait_response()
        followed = await standin.invoke("twice")
        await followed.wait_followups(1)
    text = root_log.getvalue()
    assert "WebSocket Event" in text and "INTERACTION_CREATE" in text, "discord.py logged no gateway events: the test would prove nothing"
    assert "/callback" in text and "/webhooks/" in text
    for token in (answered.token, followed.token, BOT_TOKEN):
        assert token not in text
    assert f"'token': '{MASK}'" in text
