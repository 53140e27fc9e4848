"""pytest fixtures. Use with ``from tests.standin.fixtures import standin  # noqa: F401``
(or list ``pytest_plugins = ["tests.standin.fixtures"]`` in the root conftest)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest_asyncio

from .server import StandIn


@pytest_asyncio.fixture
async def standin() -> AsyncIterator[StandIn]:
    """A started StandIn with discord.py redirected to it; deadline 3 s (Discord's)."""
    async with StandIn() as server:
        with server.redirect():
            yield server
        assert server.internal_errors == [], server.internal_errors


@pytest_asyncio.fixture
async def fast_standin() -> AsyncIterator[StandIn]:
    """Like ``standin`` but with a 0.5 s interaction deadline (for late-response tests)."""
    async with StandIn(interaction_deadline=0.5) as server:
        with server.redirect():
            yield server
        assert server.internal_errors == [], server.internal_errors
