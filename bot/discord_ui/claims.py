"""Which process answers an interaction.

Discord sends each interaction to every session of its guild's shard. Two processes holding one
shard (a hot standby, or SHARD_IDS given twice by mistake) would both answer: the second answer
is refused (40060), a question would be asked twice and a vote counted twice, which takes it back.
With a shared state (STATE_URL), the first process to claim the interaction's id answers it and
the others stay silent. With SQLite (one process) nothing is claimed.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Protocol

import discord

from bot.state.base import StateError

log = logging.getLogger(__name__)


class Claims(Protocol):
    def claim_interaction(self, interaction_id: int) -> bool: ...


async def first_to_answer(interaction: discord.Interaction) -> bool:
    """True if this process answers `interaction`: it claimed it, or no claims are kept here.

    An unreachable database answers True: better a rare double answer than none.
    """
    claims: Claims | None = getattr(interaction.client, "interaction_claims", None)
    if claims is None:
        return True
    try:
        won = await asyncio.to_thread(claims.claim_interaction, interaction.id)
    except StateError as err:
        log.debug("interaction %s answered without a claim (the state cannot be reached: %s)", interaction.id, str(err)[:200])
        return True
    if not won:
        log.debug("interaction %s is answered by another process holding this shard", interaction.id)
    return won
