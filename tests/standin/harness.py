"""Helpers to run a real discord.py client against a StandIn inside a test."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

TOKEN = "standin.bot.token"


@contextlib.asynccontextmanager
async def running_client(client: Any, *, token: str = TOKEN, timeout: float = 10.0) -> AsyncIterator[Any]:
    """Start ``client`` (``client.start(token)`` in a task), wait until it is ready, and
    always close it (and reap the task) on exit. Tip: ``guild_ready_timeout=0.05`` in the
    Client constructor makes ``on_ready`` fire ~2 s sooner."""
    task = asyncio.create_task(client.start(token), name="standin-client")
    try:
        waiter = asyncio.create_task(client.wait_until_ready())
        done, _ = await asyncio.wait({waiter, task}, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
        if waiter not in done:
            waiter.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await waiter
            if task in done:
                task.result()  # re-raise the start() failure
            raise TimeoutError("discord client did not become ready against the stand-in")
        yield client
    finally:
        await stop_client(client, task)


async def stop_client(client: Any, task: asyncio.Task | None = None) -> None:
    """Close a client and wait for its start() task; never raises for a dead task."""
    if not client.is_closed():
        await client.close()
    if task is not None:
        if not task.done():
            try:
                await asyncio.wait_for(task, 5)
            except (TimeoutError, asyncio.CancelledError):
                task.cancel()
        if task.done() and not task.cancelled():
            task.exception()  # mark retrieved


async def kill_client(client: Any, task: asyncio.Task) -> None:
    """Simulate a crash: cancel start() without a clean gateway close, then release the
    HTTP session so nothing leaks."""
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError, Exception):
        await task
    if not client.is_closed():
        await client.close()


async def stop_process(proc: Any, grace: float = 5.0) -> None:
    """Terminate a subprocess (asyncio), kill it if it is still there after `grace` seconds; never raises for one already gone."""
    if proc is None or proc.returncode is not None:
        return
    proc.terminate()
    with contextlib.suppress(asyncio.TimeoutError):
        await asyncio.wait_for(proc.wait(), grace)
    if proc.returncode is None:
        proc.kill()
        await proc.wait()
