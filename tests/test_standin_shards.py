"""The stand-in's gateway sharding, exercised with discord.py's real AutoShardedClient.

Several clients (as several bot processes would) connect to one stand-in holding guilds spread
over 4 shards. Discord's rules are kept: a guild's events go to ``(guild_id >> 22) % num_shards``,
DMs to shard 0, every live session of a shard gets its events, 4010 for an invalid shard, 4011
when a shard would hold too many guilds, one IDENTIFY per 5 s per bucket
``shard_id % max_concurrency`` (op 9 past that), and one acknowledgement per interaction.
"""

from __future__ import annotations

import asyncio
import contextlib
import sys
from pathlib import Path
from typing import Any

import aiohttp
import discord
import pytest
import pytest_asyncio
from discord import app_commands

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from tests.standin import TOKEN, ControlClient, StandIn, running_client, stop_process, subprocess_env  # noqa: E402
from tests.standin.gateway import guild_id_in_shard, shard_of  # noqa: E402

SHARDS = 4
NO_PINGS = discord.AllowedMentions.none()


@pytest_asyncio.fixture
async def standin():
    # max_concurrency 4: every shard is its own identify bucket, so two processes (and a
    # client's shards, one after the other) may IDENTIFY without waiting for each other.
    async with StandIn(interaction_deadline=2.0, shard_count_recommended=SHARDS, max_concurrency=SHARDS) as server:
        server.add_guilds_over_shards(SHARDS, per_shard=2)
        server.seed_commands([{"name": "where", "description": "Which process answers"}], None)
        with server.redirect():
            yield server
        assert server.internal_errors == []


class ShardBot:
    """An AutoShardedClient on some shards with one global command that names the process."""

    def __init__(self, name: str, shard_ids: list[int] | None, *, shard_count: int | None = SHARDS, identify_pause: float = 0.0) -> None:
        class Client(discord.AutoShardedClient):
            # discord.py sleeps 5 s before every IDENTIFY but a client's first; with
            # max_concurrency covering its shards a client may legitimately go faster
            async def before_identify_hook(self, shard_id: int | None, *, initial: bool = False) -> None:
                if not initial and identify_pause:
                    await asyncio.sleep(identify_pause)

        self.name = name
        self.client = Client(intents=discord.Intents.default(), shard_count=shard_count, shard_ids=shard_ids, guild_ready_timeout=0.05)
        self.tree = app_commands.CommandTree(self.client)
        self.seen: list[int] = []  # guild ids of the interactions this process got
        self.errors: list[BaseException] = []

        @self.tree.command(description="Which process answers")
        async def where(interaction: discord.Interaction) -> None:
            self.seen.append(interaction.guild_id or 0)
            await interaction.response.send_message(f"{name} shard {interaction.guild.shard_id if interaction.guild else 0}", allowed_mentions=NO_PINGS)

        @self.tree.error
        async def on_error(interaction: discord.Interaction, error: app_commands.AppCommandError) -> None:
            self.errors.append(error)


def guild_in(standin: StandIn, shard: int) -> int:
    return next(g for g in standin.guilds if shard_of(g, SHARDS) == shard)


def expected(standin: StandIn, shards: set[int]) -> set[int]:
    return {g for g in standin.guilds if shard_of(g, SHARDS) in shards}


@contextlib.asynccontextmanager
async def both(standin: StandIn, a_ids: list[int], b_ids: list[int], **kw: Any):
    a, b = ShardBot("A", a_ids, **kw), ShardBot("B", b_ids, **kw)
    async with running_client(a.client), running_client(b.client):
        await standin.gateway.wait_shards(set(a_ids) | set(b_ids))
        yield a, b


@pytest.mark.asyncio
async def test_two_processes_split_the_shards_and_each_gets_only_its_guilds(standin: StandIn) -> None:
    assert {shard_of(g, SHARDS) for g in standin.guilds} == set(range(SHARDS))
    async with both(standin, [0, 1], [2, 3]) as (a, b):
        assert {g.id for g in a.client.guilds} == expected(standin, {0, 1})
        assert {g.id for g in b.client.guilds} == expected(standin, {2, 3})
        assert standin.gateway.connected_shards() == {0: 1, 1: 1, 2: 1, 3: 1}
        for session in standin.gateway.live_sessions():
            ready = session.buffer[0]
            assert ready["t"] == "READY" and ready["d"]["shard"] == list(session.shard)
            assert {int(g["id"]) for g in ready["d"]["guilds"]} == expected(standin, {session.shard_id})
            creates = {int(p["d"]["id"]) for p in session.buffer if p["t"] == "GUILD_CREATE"}
            assert creates == expected(standin, {session.shard_id})

        # an interaction in a guild of shard 2 reaches only the process holding shard 2
        g2 = guild_in(standin, 2)
        handle = await standin.invoke("where", guild_id=g2)
        assert (await handle.wait_response())["data"]["content"] == "B shard 2"
        g0 = guild_in(standin, 0)
        assert (await (await standin.invoke("where", guild_id=g0)).wait_response())["data"]["content"] == "A shard 0"
        await asyncio.sleep(0.1)
        assert a.seen == [g0] and b.seen == [g2]

        # a guild joined later comes to its shard's process; DMs go to shard 0 only
        join = asyncio.ensure_future(b.client.wait_for("guild_join", timeout=5))
        joined = await standin.join(guild_id_in_shard(3, SHARDS))
        assert (await join).id == joined.id
        assert a.client.get_guild(joined.id) is None
        assert [s.shard for s in standin.gateway.targets(None)] == [(0, SHARDS)]

        # the control API shows the shards, for a stand-in in another process
        async with ControlClient(standin.url) as ctl:
            state = await ctl.wait_shards({0, 1, 2, 3}, timeout=2)
            assert state["shards"] == {"0": 1, "1": 1, "2": 1, "3": 1}
            assert state["guild_shards"][str(g2)] == 2


@pytest.mark.asyncio
async def test_two_processes_on_the_same_shard_both_get_it_and_the_second_answer_is_refused(standin: StandIn) -> None:
    # the second process's IDENTIFY for shard 2 comes within the bucket's window: Discord (and
    # the stand-in) answer op 9, and discord.py identifies again after its before_identify_hook
    standin.identify_window = 0.3
    async with both(standin, [2], [2], identify_pause=0.35) as (a, b):
        assert len(standin.gateway.rate_limited) >= 1
        assert standin.gateway.connected_shards() == {2: 2}
        handle = await standin.invoke("where", guild_id=guild_in(standin, 2))
        first = await handle.wait_attempt(1)
        second = await handle.wait_attempt(2)
        assert first.status < 300 and second.status == 400 and second.error_code == 40060
        assert a.seen == b.seen == [int(handle.payload["guild_id"])]
        await asyncio.sleep(0.05)
        assert len(a.errors) + len(b.errors) == 1  # discord.py raised HTTPException 40060 in one process


@pytest.mark.asyncio
async def test_invalid_shard_and_sharding_required_close_the_connection(standin: StandIn) -> None:
    for shard_id, count in ((SHARDS, SHARDS), (-1, SHARDS)):
        client = discord.Client(intents=discord.Intents.default(), shard_id=shard_id, shard_count=count)
        with pytest.raises(discord.ConnectionClosed) as caught:
            async with running_client(client, timeout=5):
                pass
        assert caught.value.code == 4010
    assert standin.gateway.closes[-1] == (4010, "Invalid shard.")

    # one shard may hold fewer than `guilds_per_shard` guilds: the unsharded bot has too many
    standin.guilds_per_shard = len(standin.guilds)
    standin.identify_window = 0.0
    client = discord.Client(intents=discord.Intents.default())
    with pytest.raises(discord.ConnectionClosed) as caught:
        async with running_client(client, timeout=5):
            pass
    assert caught.value.code == 4011
    bot = ShardBot("A", None, shard_count=SHARDS)  # the same guilds over 4 shards are fine
    async with running_client(bot.client):
        assert {g.id for g in bot.client.guilds} == set(standin.guilds)


@pytest.mark.asyncio
async def test_identify_over_the_limit_gets_op_9_and_discord_py_identifies_again() -> None:
    async with StandIn(shard_count_recommended=2, max_concurrency=1, identify_window=0.5) as standin:
        standin.add_guilds_over_shards(2)
        with standin.redirect():
            bot = ShardBot("A", None, shard_count=None, identify_pause=0.1)  # asks GET /gateway/bot
            async with running_client(bot.client):
                assert bot.client.shard_count == 2
                assert len(bot.client.guilds) == len(standin.guilds)
                assert [d["shard"] for d in standin.gateway.rate_limited] and all(d["shard"] == [1, 2] for d in standin.gateway.rate_limited)
                assert standin.gateway.connected_shards() == {0: 1, 1: 1}
                accepted = list(standin.gateway.sessions.values())
                assert len(accepted) == 2
            limits = standin.gateway.session_start_limit()
            assert limits["max_concurrency"] == 1 and limits["remaining"] == 1000 - len(standin.gateway.identifies)
        assert standin.internal_errors == []


@pytest.mark.asyncio
async def test_a_dropped_shard_resumes_alone_and_gets_what_it_missed(standin: StandIn) -> None:
    async with both(standin, [0, 1], [2, 3]) as (_a, b):
        resumed = asyncio.ensure_future(b.client.wait_for("shard_resumed", timeout=5))
        async with ControlClient(standin.url) as ctl:  # as a test driving bot processes would
            await ctl.drop_gateway(abrupt=True, shard_id=2)
        handle = await standin.invoke("where", guild_id=guild_in(standin, 2))  # buffered for RESUME
        assert (await handle.wait_response())["data"]["content"] == "B shard 2"
        assert await resumed == 2
        assert {s.shard_id: s.resumes for s in standin.gateway.live_sessions()} == {0: 0, 1: 0, 2: 1, 3: 0}


@pytest.mark.asyncio
async def test_a_plain_client_is_shard_0_of_1_and_gets_every_guild(standin: StandIn) -> None:
    client = discord.Client(intents=discord.Intents.default(), guild_ready_timeout=0.05)
    async with running_client(client):
        assert {g.id for g in client.guilds} == set(standin.guilds)
        ready = standin.gateway.current.buffer[0]  # type: ignore[union-attr]
        assert "shard" not in ready["d"] and standin.gateway.current.shard == (0, 1)  # type: ignore[union-attr]
        assert standin.gateway.connected


@pytest.mark.asyncio
async def test_past_the_daily_session_starts_every_session_ends_and_the_token_is_reset() -> None:
    async with StandIn(session_start_total=2, identify_window=0.0) as standin, aiohttp.ClientSession() as http:

        async def identify() -> tuple[aiohttp.ClientWebSocketResponse, Any]:
            ws = await http.ws_connect(standin.gateway_url + "?v=10&encoding=json")
            assert (await ws.receive_json())["op"] == 10
            await ws.send_json({"op": 2, "d": {"token": TOKEN, "intents": 1, "properties": {}}})
            return ws, await ws.receive()

        first, got = await identify()
        assert got.json()["t"] == "READY"
        second, got = await identify()
        assert got.json()["t"] == "READY"
        third, got = await identify()
        assert got.type == aiohttp.WSMsgType.CLOSE and got.data == 4004
        assert standin.gateway.live_sessions() == [] and standin.token_reset
        async with http.get(standin.api_base + "/gateway/bot", headers={"Authorization": f"Bot {TOKEN}"}) as resp:
            assert resp.status == 401
        for ws in (first, second, third):
            await ws.close()


SHARDED_BOT = """
import os, discord
from discord import app_commands

class Client(discord.AutoShardedClient):
    async def before_identify_hook(self, shard_id, *, initial=False):
        return None  # max_concurrency covers every shard: no 5 s pause between them

ids = [int(x) for x in os.environ["SHARD_IDS"].split(",")]
client = Client(intents=discord.Intents.default(), shard_count=4, shard_ids=ids, guild_ready_timeout=0.05)
tree = app_commands.CommandTree(client)

@tree.command(description="Which process answers")
async def where(interaction):
    await interaction.response.send_message(os.environ["NAME"], allowed_mentions=discord.AllowedMentions.none())

client.run("subprocess-token", log_handler=None)
"""


@pytest.mark.asyncio
async def test_two_bot_processes_on_one_standin_watched_through_the_control_api(standin: StandIn, tmp_path: Path) -> None:
    script = tmp_path / "bot.py"
    script.write_text(SHARDED_BOT)
    procs = []
    try:
        for name, ids in (("A", "0,1"), ("B", "2,3")):
            env = {**subprocess_env(standin.url), "SHARD_IDS": ids, "NAME": name}
            procs.append(await asyncio.create_subprocess_exec(sys.executable, str(script), env=env, cwd=tmp_path))
        async with ControlClient(standin.url) as ctl:
            state = await ctl.wait_shards({0, 1, 2, 3}, timeout=15)
            assert {tuple(s["shard"]) for s in state["sessions"] if s["connected"]} == {(i, SHARDS) for i in range(SHARDS)}
            for shard, name in ((1, "A"), (3, "B")):
                created = await ctl.invoke("where", guild_id=guild_in(standin, shard))
                result = await ctl.interaction(created["id"], wait=5)
                assert result["callback"]["data"]["content"] == name
    finally:
        for proc in procs:
            await stop_process(proc)
