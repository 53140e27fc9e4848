"""The Discord stand-in, exercised with the real discord.py client."""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import io
import os
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

import aiohttp
import discord
import pytest
import pytest_asyncio
from discord import app_commands
from discord.webhook.async_ import async_context

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # tests/ may not be a package; make `tests.standin` importable
    sys.path.insert(0, str(ROOT))

from tests.standin import (  # noqa: E402
    TOKEN,
    ControlClient,
    StandIn,
    kill_client,
    running_client,
    stop_process,
    subprocess_env,
    would_ping,
)
from tests.standin.gateway import PRIVILEGED_INTENTS  # noqa: E402
from tests.standin.validation import check_autocomplete, check_embeds, check_message, embed_length, form_error, valid_chat_name  # noqa: E402

NO_PINGS = discord.AllowedMentions.none()


@pytest_asyncio.fixture
async def standin():
    async with StandIn(interaction_deadline=0.5) as server:
        with server.redirect():
            yield server
        assert server.internal_errors == []


class Bot:
    """A small real client + CommandTree; exceptions seen inside commands land in ``errors``."""

    def __init__(self, standin: StandIn, **client_kw: Any) -> None:
        intents = client_kw.pop("intents", discord.Intents.default())
        self.client = discord.Client(intents=intents, guild_ready_timeout=0.05, **client_kw)
        self.tree = app_commands.CommandTree(self.client)
        self.errors: asyncio.Queue[BaseException] = asyncio.Queue()
        self.seen: list[discord.Interaction] = []
        guild = discord.Object(standin.guild_id)
        tree, errors, seen = self.tree, self.errors, self.seen

        @tree.command(guild=guild, description="Look up a talk")
        @app_commands.describe(talk="Talk title")
        async def talk(interaction: discord.Interaction, talk: str) -> None:
            seen.append(interaction)
            await interaction.response.send_message(f"Talk: {talk}", allowed_mentions=NO_PINGS)

        @talk.autocomplete("talk")
        async def talk_autocomplete(interaction: discord.Interaction, current: str):
            count = 26 if current == "many" else 3
            return [app_commands.Choice(name=f"Talk {i}", value=f"talk-{i}") for i in range(count)]

        @tree.command(guild=guild, description="Deferred answer")
        async def slow(interaction: discord.Interaction) -> None:
            await interaction.response.defer(thinking=True)
            await interaction.followup.send("Here is the schedule", allowed_mentions=NO_PINGS)

        @tree.command(guild=guild, description="Answers twice")
        async def twice(interaction: discord.Interaction) -> None:
            await interaction.response.send_message("first", allowed_mentions=NO_PINGS)
            params = discord.webhook.async_.interaction_response_params(4, {"content": "second"})
            try:  # bypass discord.py's own InteractionResponded guard: what does Discord say?
                await async_context.get().create_interaction_response(interaction.id, interaction.token, session=interaction._session, params=params)
            except discord.HTTPException as exc:
                errors.put_nowait(exc)

        @tree.command(guild=guild, description="Too big an embed")
        async def bigembed(interaction: discord.Interaction) -> None:
            try:
                await interaction.response.send_message(embed=discord.Embed(description="x" * 4097))
            except discord.HTTPException as exc:
                errors.put_nowait(exc)

        @tree.command(guild=guild, description="Answers too late")
        async def late(interaction: discord.Interaction) -> None:
            await asyncio.sleep(0.7)
            try:
                await interaction.response.send_message("sorry", allowed_mentions=NO_PINGS)
            except discord.HTTPException as exc:
                errors.put_nowait(exc)

        async def setup_hook() -> None:
            await tree.sync(guild=guild)

        self.client.setup_hook = setup_hook

    def channel(self, standin: StandIn) -> discord.TextChannel:
        channel = self.client.get_channel(standin.channel_id)
        assert isinstance(channel, discord.TextChannel)
        return channel


@contextlib.asynccontextmanager
async def bot_running(standin: StandIn, **kw: Any):
    bot = Bot(standin, **kw)
    async with running_client(bot.client):
        yield bot


# --- login, ready, sync --------------------------------------------------------------


@pytest.mark.asyncio
async def test_login_ready_and_guild_sync(standin: StandIn) -> None:
    async with bot_running(standin) as bot:
        client = bot.client
        assert client.user is not None and client.user.id == standin.bot_id
        assert client.application_id == standin.app_id
        guild = client.get_guild(standin.guild_id)
        assert guild is not None and {c.id for c in guild.text_channels} == set(standin.channel_ids)
        synced = {c["name"]: c for c in standin.commands[standin.guild_id]}
        assert set(synced) == {"talk", "slow", "twice", "bigembed", "late"}
        assert all(c["id"] and c["guild_id"] == str(standin.guild_id) for c in synced.values())
        assert synced["talk"]["options"][0]["autocomplete"] is True
        assert standin.gateway.intents is not None
        assert standin.gateway.intents & PRIVILEGED_INTENTS == 0
        assert standin.gateway.connections[0].compress  # discord.py asks for zlib-stream
        assert standin.unknown_routes() == []


@pytest.mark.asyncio
async def test_privileged_intents_are_refused(standin: StandIn) -> None:
    client = discord.Client(intents=discord.Intents.all())
    with pytest.raises(discord.PrivilegedIntentsRequired):
        async with running_client(client, timeout=5):
            pass
    assert client.is_closed()


@pytest.mark.asyncio
async def test_sync_refuses_invalid_command_names(standin: StandIn) -> None:
    url = f"{standin.api_base}/applications/{standin.app_id}/guilds/{standin.guild_id}/commands"
    bad = [{"name": "Schedule", "description": "x", "type": 1}, {"name": "ok", "description": "", "type": 1}]
    async with aiohttp.ClientSession(headers={"Authorization": f"Bot {TOKEN}"}) as http, http.put(url, json=bad) as resp:
        body = await resp.json()
    assert resp.status == 400 and body["code"] == 50035
    assert "name" in body["errors"]["0"] and "description" in body["errors"]["1"]


# --- interactions --------------------------------------------------------------------


@pytest.mark.asyncio
async def test_command_answered_without_pings(standin: StandIn) -> None:
    async with bot_running(standin):
        handle = await standin.invoke("talk", {"talk": "Keynote"})
        body = await handle
        assert body["type"] == 4 and body["data"]["content"] == "Talk: Keynote"
        assert body["data"]["allowed_mentions"] == {"parse": []}
        assert not would_ping(body)
        assert handle.original is not None and handle.original.content == "Talk: Keynote"


@pytest.mark.asyncio
async def test_member_permissions_channel_and_required_options(standin: StandIn) -> None:
    async with bot_running(standin) as bot:
        member_id, channel_id = next(iter(standin.guild.members)), standin.channel_ids[1]
        handle = await standin.invoke("talk", {"talk": "x"}, permissions=1 << 5, channel_id=channel_id, user_id=member_id)
        await handle
        interaction = bot.seen[-1]
        assert interaction.permissions.manage_guild and not interaction.permissions.administrator
        assert interaction.channel_id == channel_id and interaction.user.id == member_id
        assert interaction.guild_id == standin.guild_id
        with pytest.raises(ValueError, match="required"):
            await standin.invoke("talk")


@pytest.mark.asyncio
async def test_deferred_command_followup(standin: StandIn) -> None:
    async with bot_running(standin):
        handle = await standin.invoke("slow")
        assert (await handle)["type"] == 5
        (followup,) = await handle.wait_followups(1)
        assert followup.content == "Here is the schedule"
        assert followup.allowed_mentions == {"parse": []}


@pytest.mark.asyncio
async def test_autocomplete_answered(standin: StandIn) -> None:
    async with bot_running(standin):
        handle = await standin.autocomplete("talk", focused="talk", value="Key")
        body = await handle
        assert body["type"] == 8
        assert [c["value"] for c in handle.choices] == ["talk-0", "talk-1", "talk-2"]
        focused = handle.payload["data"]["options"][0]
        assert focused == {"name": "talk", "type": 3, "value": "Key", "focused": True}


@pytest.mark.asyncio
async def test_autocomplete_with_26_choices_refused(standin: StandIn) -> None:
    async with bot_running(standin):
        handle = await standin.autocomplete("talk", focused="talk", value="many")
        attempt = await handle.wait_attempt()
        assert attempt.status == 400 and attempt.error_code == 50035
        assert "choices" in attempt.response["errors"]["data"]
        assert handle.callback is None


@pytest.mark.asyncio
async def test_double_ack_refused(standin: StandIn) -> None:
    async with bot_running(standin) as bot:
        handle = await standin.invoke("twice")
        exc = await asyncio.wait_for(bot.errors.get(), 5)
        assert isinstance(exc, discord.HTTPException) and exc.status == 400 and exc.code == 40060
        assert handle.callback is not None and handle.callback["data"]["content"] == "first"
        assert [a.status for a in handle.attempts] == [200, 400]


@pytest.mark.asyncio
async def test_too_long_embed_refused(standin: StandIn) -> None:
    async with bot_running(standin) as bot:
        handle = await standin.invoke("bigembed")
        exc = await asyncio.wait_for(bot.errors.get(), 5)
        assert isinstance(exc, discord.HTTPException) and exc.status == 400 and exc.code == 50035
        assert handle.callback is None
        # the same limits apply to channel messages: 6000 characters over all embeds
        embeds = [discord.Embed(title="t", description="d" * 3000) for _ in range(2)]
        with pytest.raises(discord.HTTPException) as info:
            await bot.channel(standin).send(embeds=embeds)
        assert info.value.code == 50035
        with pytest.raises(discord.HTTPException):
            await bot.channel(standin).send("x" * 2001)
        assert standin.messages(standin.channel_id) == []


@pytest.mark.asyncio
async def test_late_callback_refused(standin: StandIn) -> None:
    async with bot_running(standin) as bot:
        handle = await standin.invoke("late")  # deadline is 0.5 s in this fixture
        exc = await asyncio.wait_for(bot.errors.get(), 5)
        assert isinstance(exc, discord.NotFound) and exc.code == 10062
        assert handle.callback is None and handle.attempts[0].status == 404


# --- channel messages, faults, nonces ------------------------------------------------


@pytest.mark.asyncio
async def test_429_is_retried_by_discord_py(standin: StandIn) -> None:
    async with bot_running(standin) as bot:
        fault = standin.inject("POST", r"^/channels/\d+/messages$", 429, retry_after=0.05)
        started = time.monotonic()
        message = await bot.channel(standin).send("Talk starts in 10 minutes", allowed_mentions=NO_PINGS)
        assert time.monotonic() - started >= 0.05
        assert fault.hits == 1
        posts = [r for r in standin.requests if r.method == "POST" and r.path.endswith("/messages")]
        assert [r.status for r in posts] == [429, 200]
        stored = standin.messages(standin.channel_id)
        assert [m.id for m in stored] == [message.id]
        assert stored[0].allowed_mentions == {"parse": []} and not stored[0].would_ping


@pytest.mark.asyncio
async def test_forbidden_and_unknown_channel_faults(standin: StandIn) -> None:
    async with bot_running(standin) as bot:
        standin.inject("POST", r"/messages$", 403)
        with pytest.raises(discord.Forbidden) as forbidden:
            await bot.channel(standin).send("x")
        assert forbidden.value.code == 50013
        standin.inject("POST", r"/messages$", 404)
        with pytest.raises(discord.NotFound) as missing:
            await bot.channel(standin).send("x")
        assert missing.value.code == 10003
        assert standin.messages() == []


@pytest.mark.asyncio
async def test_502_is_retried_by_discord_py(standin: StandIn) -> None:
    async with bot_running(standin) as bot:
        standin.inject("POST", r"/messages$", 502)
        await bot.channel(standin).send("after a hiccup")  # discord.py sleeps 1 s, then retries
        assert [r.status for r in standin.requests if r.path.endswith("/messages")] == [502, 200]
        assert len(standin.messages()) == 1


@pytest.mark.asyncio
async def test_multipart_messages_are_parsed(standin: StandIn) -> None:
    async with bot_running(standin) as bot:
        await bot.channel(standin).send("slides <@123>", file=discord.File(io.BytesIO(b"pdf"), "slides.pdf"))
        (stored,) = standin.messages(standin.channel_id)
        assert stored.content == "slides <@123>" and stored.attachments[0]["filename"] == "slides.pdf"
        assert stored.allowed_mentions is None and stored.would_ping  # no allowed_mentions: it pings
        assert [would_ping(r.message_body) for r in standin.outgoing()] == [True]


@pytest.mark.asyncio
async def test_scheduled_event_limits(standin: StandIn) -> None:
    async with bot_running(standin) as bot:
        guild = bot.client.get_guild(standin.guild_id)
        assert guild is not None
        start = discord.utils.utcnow() + dt.timedelta(days=1)
        common = {
            "start_time": start,
            "end_time": start + dt.timedelta(hours=1),
            "entity_type": discord.EntityType.external,
            "privacy_level": discord.PrivacyLevel.guild_only,
            "location": "Hall A",
        }
        with pytest.raises(discord.HTTPException) as info:
            await guild.create_scheduled_event(name="x" * 101, **common)
        assert info.value.code == 50035
        event = await guild.create_scheduled_event(name="Keynote", description="Opening", **common)
        assert standin.events[str(event.id)]["entity_metadata"] == {"location": "Hall A"}


@pytest.mark.asyncio
async def test_nonce_dedupe(standin: StandIn) -> None:
    async with bot_running(standin) as bot:
        channel = bot.channel(standin)
        first = await channel.send("Reminder: keynote", nonce="talk-42-10min")
        second = await channel.send("Reminder: keynote", nonce="talk-42-10min")
        other = await channel.send("Reminder: lunch", nonce="talk-43-10min")
        assert first.id == second.id != other.id
        assert [m.content for m in standin.messages(standin.channel_id)] == ["Reminder: keynote", "Reminder: lunch"]
        assert standin.messages(standin.channel_id)[0].nonce == "talk-42-10min"


@pytest.mark.asyncio
async def test_unknown_routes_are_recorded(standin: StandIn) -> None:
    async with bot_running(standin) as bot:
        with pytest.raises(discord.NotFound):
            await bot.client.http.request(discord.http.Route("GET", "/guilds/{guild_id}/bans", guild_id=1))
        assert [(r.method, r.path) for r in standin.unknown_routes()] == [("GET", "/guilds/1/bans")]


def test_validation_counts_like_discord() -> None:
    embed = {"title": "t" * 256, "description": "d" * 4096, "fields": [{"name": "n", "value": "v" * 1024}] * 25}
    assert embed_length(embed) == 256 + 4096 + 25 * 1025
    errors = form_error(check_message({"embeds": [embed]}))["errors"]
    assert errors["embeds"]["_errors"][0]["code"] == "MAX_EMBED_SIZE_EXCEEDED"
    bad = {"title": "t" * 257, "fields": [{"name": "", "value": "v"}] * 26, "footer": {"text": "f" * 2049}, "author": {"name": "a" * 257}}
    paths = {p for p, _, _ in check_embeds([bad])}
    assert {("embeds", "0", "title"), ("embeds", "0", "fields"), ("embeds", "0", "fields", "0", "name")} <= paths
    assert {("embeds", "0", "footer", "text"), ("embeds", "0", "author", "name")} <= paths
    assert check_message({"embeds": [{}] * 11}) and check_message({"content": "x" * 2001})
    assert not check_message({"content": "x" * 2000, "embeds": [{}] * 10})
    assert check_message({"content": "<@1>", "allowed_mentions": {"parse": ["users"], "users": ["1"]}})
    choices = [{"name": "n" * 100, "value": "v" * 100}] * 25
    assert not check_autocomplete({"choices": choices})
    assert check_autocomplete({"choices": [{"name": "", "value": "v"}]})
    assert check_autocomplete({"choices": [{"name": "n", "value": "v" * 101}]})
    assert not check_autocomplete({"choices": [{"name": "n", "value": 10**12}]})
    assert valid_chat_name("über-talk_1") and valid_chat_name("n'importe")
    assert not valid_chat_name("Talk") and not valid_chat_name("two words") and not valid_chat_name("x" * 33)


def test_would_ping_semantics() -> None:
    assert would_ping({"content": "hi <@123>"})
    assert would_ping({"content": "@everyone"})
    assert not would_ping({"content": "hi <@123> @everyone", "allowed_mentions": {"parse": []}})
    assert would_ping({"content": "<@&5> talk", "allowed_mentions": {"parse": [], "roles": ["5"]}})
    assert not would_ping({"content": "<@&6> talk", "allowed_mentions": {"parse": [], "roles": ["5"]}})
    assert not would_ping({"content": "no mentions"})
    assert not would_ping({"type": 4, "data": {"content": "<@1>", "allowed_mentions": {"parse": []}}})


# --- gateway ---------------------------------------------------------------------------


@pytest.mark.asyncio
async def test_gateway_drop_and_resume(standin: StandIn) -> None:
    async with bot_running(standin) as bot:
        resumed = asyncio.ensure_future(bot.client.wait_for("resumed", timeout=5))
        await standin.drop_gateway(4000)
        await resumed
        assert len(standin.gateway.identifies) == 1 and len(standin.gateway.resumes) == 1
        assert standin.gateway.connections[-1].path == "/resume-gateway"
        # events dispatched while the connection is down are replayed on RESUME
        await standin.drop_gateway(abrupt=True)
        handle = await standin.invoke("talk", {"talk": "After resume"})
        assert (await handle.wait_response(timeout=5))["data"]["content"] == "Talk: After resume"
        assert len(standin.gateway.resumes) == 2


@pytest.mark.asyncio
async def test_invalid_session_makes_the_client_identify_again(standin: StandIn) -> None:
    async with bot_running(standin) as bot:
        # discord.py waits 5 s before a non-initial IDENTIFY (Client.before_identify_hook), which
        # is Discord's identify window (max_concurrency 1); shorten both together
        standin.identify_window = 0.2

        async def short_wait(shard_id: int | None, *, initial: bool = False) -> None:
            await asyncio.sleep(0.25)

        bot.client.before_identify_hook = short_wait  # type: ignore[method-assign]
        await standin.gateway.send_op(9, False)  # INVALID_SESSION, not resumable
        await standin.gateway.wait_identified(2)
        await standin.gateway.wait_until(lambda: standin.gateway.connected)
        handle = await standin.invoke("talk", {"talk": "again"})
        assert (await handle)["data"]["content"] == "Talk: again"
        assert standin.gateway.resumes == []


@pytest.mark.asyncio
async def test_standin_outlives_a_killed_client(standin: StandIn) -> None:
    # the restart IDENTIFYs within Discord's 5 s identify window: Discord (max_concurrency 1)
    # answers op 9 and discord.py waits 5 s; this test is about the nonce, so shorten the window
    standin.identify_window = 0.0
    first = Bot(standin)
    task = asyncio.create_task(first.client.start(TOKEN))
    await asyncio.wait_for(first.client.wait_until_ready(), 5)
    await first.channel(standin).send("before crash", nonce="n1")
    await kill_client(first.client, task)
    async with bot_running(standin) as second:
        again = await second.channel(standin).send("before crash", nonce="n1")
        assert [m.id for m in standin.messages(standin.channel_id)] == [again.id]
        assert len(standin.gateway.identifies) == 2
        handle = await standin.invoke("talk", {"talk": "x"})
        assert (await handle)["type"] == 4


# --- standalone process + sitecustomize redirect ----------------------------------------

BOT_SCRIPT = """
import os, discord
from discord import app_commands
client = discord.Client(intents=discord.Intents.default(), guild_ready_timeout=0.05)
tree = app_commands.CommandTree(client)
G = discord.Object(int(os.environ["GUILD"]))

@tree.command(guild=G, description="ping")
async def ping(interaction):
    await interaction.response.send_message("pong", allowed_mentions=discord.AllowedMentions.none())

async def setup_hook():
    await tree.sync(guild=G)
client.setup_hook = setup_hook

@client.event
async def on_ready():
    await client.get_channel(int(os.environ["CHANNEL"])).send("online")

client.run("subprocess-token", log_handler=None)
"""


@pytest.mark.asyncio
async def test_standalone_process_with_subprocess_bot(tmp_path: Path) -> None:
    guild, channel = 1111111111111111111, 2222222222222222222
    server = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "tests.standin", "--port", "0", "--guild", str(guild), "--channel", str(channel),
        cwd=ROOT, stdout=asyncio.subprocess.PIPE,
    )  # fmt: skip
    bot = None
    try:
        line = (await asyncio.wait_for(server.stdout.readline(), 10)).decode().strip()  # type: ignore[union-attr]
        assert line.startswith("STANDIN_URL=")
        url = line.split("=", 1)[1]
        script = tmp_path / "bot.py"
        script.write_text(textwrap.dedent(BOT_SCRIPT))
        env = {**subprocess_env(url), "GUILD": str(guild), "CHANNEL": str(channel)}
        bot = await asyncio.create_subprocess_exec(sys.executable, str(script), env=env, cwd=tmp_path)
        async with ControlClient(url) as ctl:
            await ctl.wait_connected(commands=True, timeout=15)
            created = await ctl.invoke("ping")
            result = await ctl.interaction(created["id"], wait=5)
            assert result["callback"]["data"]["content"] == "pong"
            for _ in range(100):
                messages = await ctl.messages(channel)
                if messages:
                    break
                await asyncio.sleep(0.05)
            assert [m["content"] for m in messages] == ["online"]
            assert messages[0]["would_ping"] is False
            assert await ctl.requests(unknown=True) == []
    finally:
        for proc in (bot, server):
            await stop_process(proc)


def test_no_real_discord_hosts_in_tests() -> None:
    forbidden = ("discord" + ".com", "discord" + "app.com")
    for path in [*Path(__file__).parent.joinpath("standin").rglob("*.py"), Path(__file__)]:
        text = path.read_text()
        assert not any(host in text for host in forbidden), path


if os.environ.get("STANDIN_DEBUG"):  # pragma: no cover
    import logging

    logging.basicConfig(level=logging.DEBUG)
