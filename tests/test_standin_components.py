"""The stand-in's buttons and threads keep Discord's rules, exercised with the real discord.py client."""

from __future__ import annotations

import asyncio
import re
from typing import Any

import discord
import pytest
import pytest_asyncio
from discord.http import Route

from tests.standin import StandIn, running_client
from tests.standin.components import check_components
from tests.standin.models import CREATE_PUBLIC_THREADS, SEND_MESSAGES_IN_THREADS
from tests.standin.routes_events import grant

NO_PINGS = discord.AllowedMentions.none()
ALICE, BOB = 931000000000000001, 931000000000000002


@pytest_asyncio.fixture
async def standin():
    async with StandIn(interaction_deadline=0.5) as server:
        with server.redirect():
            yield server
        assert server.internal_errors == []


class Counter(discord.ui.DynamicItem[discord.ui.Button], template=r"count:(?P<n>\d+)"):
    """Answers type 7 (the count + 1), or type 6 then an @original edit when n is odd."""

    def __init__(self, n: int) -> None:
        super().__init__(discord.ui.Button(label=f"n={n}", custom_id=f"count:{n}"))
        self.n = n

    @classmethod
    async def from_custom_id(cls, interaction: discord.Interaction, item: discord.ui.Item, match: re.Match[str], /) -> Counter:
        return cls(int(match["n"]))

    async def callback(self, interaction: discord.Interaction) -> None:
        nxt = discord.ui.View(timeout=None).add_item(Counter(self.n + 1))
        if self.n % 2:
            await interaction.response.defer()
            await interaction.edit_original_response(view=nxt)
        else:
            await interaction.response.edit_message(view=nxt)


class Slow(discord.ui.DynamicItem[discord.ui.Button], template=r"slow"):
    def __init__(self) -> None:
        super().__init__(discord.ui.Button(label="slow", custom_id="slow"))

    @classmethod
    async def from_custom_id(cls, interaction: discord.Interaction, item: discord.ui.Item, match: re.Match[str], /) -> Slow:
        return cls()

    async def callback(self, interaction: discord.Interaction) -> None:
        await asyncio.sleep(0.7)  # past this stand-in's 0.5 s deadline
        await interaction.response.defer()


class Twice(discord.ui.DynamicItem[discord.ui.Button], template=r"twice"):
    def __init__(self) -> None:
        super().__init__(discord.ui.Button(label="twice", custom_id="twice"))

    @classmethod
    async def from_custom_id(cls, interaction: discord.Interaction, item: discord.ui.Item, match: re.Match[str], /) -> Twice:
        return cls()

    async def callback(self, interaction: discord.Interaction) -> None:
        await interaction.response.defer()
        await interaction.client.http.request(  # bypass discord.py's InteractionResponded guard: what does Discord say?
            Route("POST", "/interactions/{interaction_id}/{token}/callback", interaction_id=interaction.id, token=interaction.token), json={"type": 6}
        )


def client() -> discord.Client:
    bot = discord.Client(intents=discord.Intents.default(), guild_ready_timeout=0.05)
    bot.add_dynamic_items(Counter, Slow, Twice)
    return bot


async def post(bot: discord.Client, standin: StandIn, *items: discord.ui.Item) -> int:
    view = discord.ui.View(timeout=None)
    for item in items:
        view.add_item(item)
    message = await bot.get_partial_messageable(standin.channel_id, guild_id=standin.guild_id).send("pick", view=view, allowed_mentions=NO_PINGS)
    return message.id


async def raw_post(bot: discord.Client, channel_id: int, components: list[dict[str, Any]]) -> None:
    await bot.http.request(Route("POST", "/channels/{channel_id}/messages", channel_id=channel_id), json={"content": "x", "components": components})


def row(*buttons: dict[str, Any]) -> dict[str, Any]:
    return {"type": 1, "components": list(buttons)}


def button(custom_id: str, label: str = "ok") -> dict[str, Any]:
    return {"type": 2, "style": 1, "label": label, "custom_id": custom_id}


# --- clicks ----------------------------------------------------------------------------


async def test_type_7_and_type_6_with_an_original_edit_update_the_clicked_message(standin: StandIn) -> None:
    async with running_client(client()) as bot:
        mid = await post(bot, standin, Counter(0))
        first = await standin.click(mid, "count:0", user_id=ALICE)
        assert (await first)["type"] == 7 and first.ack_seconds is not None and first.ack_seconds < 0.5
        message = standin.stored[mid]
        assert message.body["components"][0]["components"][0]["custom_id"] == "count:1"
        assert message.content == "pick"  # an update without content keeps it
        second = await standin.click(mid, "count:1", user_id=BOB)
        assert (await second)["type"] == 6
        await second.wait_original_edit()
        assert standin.stored[mid].body["components"][0]["components"][0]["custom_id"] == "count:2"
        assert second.original is message and second.payload["message"]["id"] == str(mid)


async def test_only_buttons_the_message_shows_can_be_clicked(standin: StandIn) -> None:
    async with running_client(client()) as bot:
        mid = await post(bot, standin, Counter(0))
        with pytest.raises(ValueError, match="no component"):
            await standin.click(mid, "count:7")
        await bot.get_partial_messageable(standin.channel_id).get_partial_message(mid).delete()
        with pytest.raises(ValueError, match="deleted"):
            await standin.click(mid, "count:0")
        disabled = discord.ui.Button(label="off", custom_id="count:3", disabled=True)
        view = discord.ui.View(timeout=None).add_item(disabled)
        sent = await bot.get_partial_messageable(standin.channel_id).send("x", view=view)
        with pytest.raises(ValueError, match="disabled"):
            await standin.click(sent.id, "count:3")


async def test_a_late_or_second_acknowledgement_is_refused(standin: StandIn) -> None:
    async with running_client(client()) as bot:
        mid = await post(bot, standin, Slow(), Twice())
        late = await standin.click(mid, "slow")
        attempt = await late.wait_attempt()
        assert (attempt.status, attempt.error_code) == (404, 10062) and late.callback is None
        twice = await standin.click(mid, "twice")
        second = await twice.wait_attempt(2)
        assert (second.status, second.error_code) == (400, 40060)


async def test_an_ephemeral_message_is_clicked_only_by_its_user(standin: StandIn) -> None:
    bot = client()
    tree = discord.app_commands.CommandTree(bot)

    @tree.command(guild=discord.Object(standin.guild_id), description="A private counter")
    async def mine(interaction: discord.Interaction) -> None:
        await interaction.response.send_message("yours", view=discord.ui.View(timeout=None).add_item(Counter(0)), ephemeral=True)

    async def setup_hook() -> None:
        await tree.sync(guild=discord.Object(standin.guild_id))

    bot.setup_hook = setup_hook
    async with running_client(bot):
        handle = await standin.invoke("mine", user_id=ALICE)
        await handle
        assert handle.original is not None and handle.ephemeral
        with pytest.raises(ValueError, match="only shown to user"):
            await standin.click(handle.original.id, "count:0", user_id=BOB)
        click = await standin.click(handle.original.id, "count:0", user_id=ALICE)
        assert (await click)["type"] == 7 and click.payload["message"]["flags"] & 64


# --- component limits --------------------------------------------------------------------


def test_component_limits_count_like_discord() -> None:
    assert check_components([row(*(button(f"b{r}{i}") for i in range(5))) for r in range(5)]) == []
    assert check_components([row(button(f"r{r}")) for r in range(6)])[0][1] == "BASE_TYPE_MAX_LENGTH"
    assert check_components([row(*(button(f"b{i}") for i in range(6)))])[0][1] == "BASE_TYPE_MAX_LENGTH"
    assert check_components([row(button("x" * 100))]) == []
    assert check_components([row(button("x" * 101))])[0][1] == "BASE_TYPE_BAD_LENGTH"
    assert check_components([row(button("a", "l" * 80))]) == []
    assert check_components([row(button("a", "l" * 81))])[0][1] == "BASE_TYPE_MAX_LENGTH"
    assert check_components([row(button("a"), button("a"))])[0][1] == "COMPONENT_CUSTOM_ID_DUPLICATED"
    assert check_components([row({"type": 2, "style": 5, "label": "site", "url": "https://example.org"})]) == []
    assert check_components([button("loose")])[0][1] == "UNION_TYPE_CHOICES"  # buttons live in action rows


async def test_messages_and_updates_past_the_limits_are_refused(standin: StandIn) -> None:
    async with running_client(client()) as bot:
        for components in ([row(button(f"r{r}")) for r in range(6)], [row(button("x" * 101))], [row(button("a", "l" * 81))]):
            with pytest.raises(discord.HTTPException) as info:
                await raw_post(bot, standin.channel_id, components)
            assert (info.value.status, info.value.code) == (400, 50035)
        assert standin.messages(standin.channel_id) == []


# --- threads -----------------------------------------------------------------------------


async def test_a_public_thread_on_a_message_once_with_the_permissions(standin: StandIn) -> None:
    async with running_client(client()) as bot:
        channel = bot.get_channel(standin.channel_id)
        assert isinstance(channel, discord.TextChannel)
        message = await channel.send("talk starts soon")
        with pytest.raises(discord.Forbidden):
            await message.create_thread(name="A talk")  # the bot's role lacks Create Public Threads
        await grant(standin, CREATE_PUBLIC_THREADS)
        await asyncio.sleep(0.05)
        with pytest.raises(discord.HTTPException) as info:
            await message.create_thread(name="n" * 101)
        assert info.value.code == 50035
        thread = await message.create_thread(name="A talk")
        assert thread.id == message.id and thread.type is discord.ChannelType.public_thread and thread.parent_id == channel.id
        with pytest.raises(discord.HTTPException) as info:
            await message.create_thread(name="Again")
        assert (info.value.status, info.value.code) == (400, 160004)
        assert [t.name for t in standin.threads(channel.id)] == ["A talk"]
        await asyncio.sleep(0.05)
        assert isinstance(bot.get_channel(thread.id), discord.Thread)  # THREAD_CREATE reached the client
        with pytest.raises(discord.Forbidden):
            await thread.send("in the thread")  # Send Messages is not Send Messages in Threads
        await grant(standin, SEND_MESSAGES_IN_THREADS)
        sent = await bot.get_partial_messageable(thread.id, guild_id=standin.guild_id).send("in the thread")
        assert [m.id for m in standin.messages(thread.id)] == [sent.id]
        with pytest.raises(discord.HTTPException) as info:
            await bot.http.start_thread_with_message(thread.id, sent.id, name="nested", auto_archive_duration=1440)
        assert info.value.code == 50024  # no thread inside a thread


async def test_a_thread_without_a_message_is_private_unless_told(standin: StandIn) -> None:
    await grant(standin, CREATE_PUBLIC_THREADS)
    async with running_client(client()) as bot:
        with pytest.raises(discord.Forbidden):  # private threads need Create Private Threads
            await bot.http.start_thread_without_message(standin.channel_id, name="side room", auto_archive_duration=1440, type=12)
        public = await bot.http.start_thread_without_message(standin.channel_id, name="lobby", auto_archive_duration=1440, type=11)
        assert public["type"] == 11
        with pytest.raises(discord.HTTPException) as info:
            await bot.http.request(Route("POST", "/channels/{channel_id}/threads", channel_id=standin.channel_id), json={"name": "default type"})
        assert info.value.status == 403  # no type given: a private thread, which the bot may not open
