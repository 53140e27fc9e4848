"""Vote clicks in bursts: every click acknowledged at once, one visible edit per burst."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import discord

log = logging.getLogger(__name__)

BURST_SECONDS = 1.0


@dataclass
class _Burst:
    latest: discord.Interaction
    first_sent: asyncio.Event
    dirty: bool = False


class VoteBursts:
    """One visible edit per burst of clicks on a question, every click acknowledged at once.

    The first click of a burst answers type 7 (the message, updated with the count). Clicks in the next
    `window` seconds answer type 6 (acknowledged, nothing shown), and the window ends with one edit
    through the latest click's token showing the count then; clicks meanwhile open another window.
    """

    def __init__(self, render_view: Callable[[int], Awaitable[discord.ui.View | None]], window: float = BURST_SECONDS) -> None:
        self.render_view, self.window = render_view, window
        self._bursts: dict[int, _Burst] = {}
        self._tasks: set[asyncio.Task] = set()
        self.edits = 0  # closing edits sent (type 7 answers not counted)

    async def clicked(self, interaction: discord.Interaction, qid: int) -> None:
        burst = self._bursts.get(qid)
        if burst is not None:
            burst.latest, burst.dirty = interaction, True
            await interaction.response.defer()
            return
        burst = self._bursts[qid] = _Burst(interaction, asyncio.Event())
        task = asyncio.create_task(self._close(qid, burst), name=f"qa-votes-{qid}")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        try:
            await interaction.response.edit_message(view=await self.render_view(qid))
        except discord.HTTPException:
            burst.dirty = True  # the closing edit shows the count instead
            raise
        finally:
            burst.first_sent.set()

    async def _close(self, qid: int, burst: _Burst) -> None:
        try:
            while True:
                await asyncio.sleep(self.window)
                await burst.first_sent.wait()
                if not burst.dirty:
                    return
                burst.dirty = False
                await self._edit(burst.latest, qid)
        finally:
            self._bursts.pop(qid, None)

    async def _edit(self, interaction: discord.Interaction, qid: int) -> None:
        self.edits += 1
        view = await self.render_view(qid)
        try:
            await interaction.edit_original_response(view=view)
        except discord.HTTPException as err:
            log.warning("qa: could not show the votes of question %s through the interaction (%s); editing the message", qid, err.status)
            if interaction.message is not None:
                try:
                    await interaction.message.edit(view=view)
                except discord.HTTPException as again:
                    log.warning("qa: could not edit the message of question %s: %s %s", qid, again.status, again.text[:200])

    async def close(self) -> None:
        """Stop the windows; a count not shown yet is shown now (a kill -9 leaves it to the next click)."""
        unshown = [(qid, burst) for qid, burst in self._bursts.items() if burst.dirty]
        for task in list(self._tasks):
            task.cancel()
        for qid, burst in unshown:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._edit(burst.latest, qid), 5)
