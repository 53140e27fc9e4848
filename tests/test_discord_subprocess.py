"""`python -m bot` as a real process, redirected to the in-process stand-in (its sitecustomize)."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from pathlib import Path

import pytest

from tests.standin import StandIn, subprocess_env, would_ping

ROOT = Path(__file__).resolve().parent.parent
TOKEN = "U1VCUFJPQ0VTUw.subprocess-fake-token.never-logged-77"


def bot_env(standin: StandIn, tmp_path: Path) -> dict[str, str]:
    env = subprocess_env(standin.url)
    for name in list(env):
        if name.startswith(("DISCORD_", "REMINDER_", "BOT_", "SCHEDULE_")) and name != "DISCORD_STANDIN_URL":
            del env[name]
    env.update(
        DISCORD_TOKEN=TOKEN,
        DISCORD_GUILD_ID=str(standin.guild_id),
        REMINDER_CHANNEL_ID=str(standin.channel_id),
        STATE_PATH=str(tmp_path / "bot.sqlite3"),
        BOT_REPLAY_FROM="2020-12-10T06:05:00-08:00",
        LOG_LEVEL="DEBUG",
        PYTHONUNBUFFERED="1",
    )
    return env


async def run_bot(env: dict[str, str], *args: str) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bot", *args, cwd=ROOT, env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )


async def test_python_m_bot_answers_and_never_logs_the_token(tmp_path: Path) -> None:
    async with StandIn(token=TOKEN) as standin:
        proc = await run_bot(bot_env(standin, tmp_path))
        try:
            await _wait_for_commands(standin, proc)
            handle = await standin.invoke("talk", {"query": "hamiltonain"})
            body = await handle.wait_response(timeout=5)
            assert handle.acked_at is not None and handle.acked_at - handle.created < 1.0
            assert "Hamiltonian" in body["data"]["embeds"][0]["title"]
            assert not would_ping(body)
            choices = (await (await standin.autocomplete("author", "name", "finzi")).wait_response())["data"]["choices"]
            assert choices[0]["name"].startswith("Marc Finzi")
        finally:
            if proc.returncode is None:
                proc.send_signal(signal.SIGTERM)
            out, err = await asyncio.wait_for(proc.communicate(), 15)
    text = out.decode() + err.decode()
    assert proc.returncode == 0, text[-3000:]
    assert f"client_id={standin.app_id}&scope=bot+applications.commands&permissions=" in text
    assert "Schedule: track28" in text and "Next talk:" in text
    assert TOKEN not in text and TOKEN.partition(".")[0] not in text


async def _wait_for_commands(standin: StandIn, proc: asyncio.subprocess.Process, timeout: float = 20.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not (standin.commands.get(standin.guild_id) and standin.gateway.connected):
        if proc.returncode is not None or loop.time() > deadline:
            out, err = await proc.communicate() if proc.returncode is not None else (b"", b"")
            pytest.fail(f"bot did not sync and connect: rc={proc.returncode}\n{(out + err).decode()[-3000:]}")
        await asyncio.sleep(0.05)


async def test_python_m_bot_sync_publishes_globally(tmp_path: Path) -> None:
    async with StandIn(token=TOKEN) as standin:
        env = bot_env(standin, tmp_path)
        del env["DISCORD_GUILD_ID"]
        proc = await run_bot(env, "sync")
        out, err = await asyncio.wait_for(proc.communicate(), 30)
        text = out.decode() + err.decode()
        assert proc.returncode == 0, text[-3000:]
        assert {c["name"] for c in standin.commands.get(None, [])} >= {"next", "now", "schedule", "talk", "abstract", "author", "help"}
        assert not standin.gateway.identifies  # sync needs no gateway connection
        assert TOKEN not in text


@pytest.mark.skipif(os.name != "posix", reason="signals")
async def test_a_refused_token_exits_cleanly(tmp_path: Path) -> None:
    async with StandIn(token="only-this-token-is-accepted-123") as standin:
        proc = await run_bot(bot_env(standin, tmp_path))
        out, err = await asyncio.wait_for(proc.communicate(), 30)
    text = out.decode() + err.decode()
    assert proc.returncode == 2, text[-3000:]
    assert "DISCORD_TOKEN" in text and TOKEN not in text and "Traceback" not in text


@pytest.mark.parametrize("shards", [None, "1"])
async def test_too_few_shards_for_the_servers_exits_with_what_to_change(tmp_path: Path, shards: str | None) -> None:
    """Discord closes with 4011 when one shard would hold too many servers (2,500): no reconnect can fix it."""
    async with StandIn(token=TOKEN, guilds_per_shard=2) as standin:
        standin.add_guild(standin.guild_id + (1 << 22))  # two servers, and a shard may hold at most one here
        env = bot_env(standin, tmp_path)
        if shards:
            env["SHARD_COUNT"] = shards
        proc = await run_bot(env)
        out, err = await asyncio.wait_for(proc.communicate(), 30)
    text = out.decode() + err.decode()
    assert proc.returncode == 2, text[-3000:]
    assert ("Set SHARD_COUNT" if shards is None else "SHARD_COUNT=1 is too few") in text
    assert "Traceback" not in text and TOKEN not in text
