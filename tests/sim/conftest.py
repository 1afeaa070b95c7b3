"""Fixtures shared by the simulator tests over HTTP.

Each module defines its own ``server`` (its own SimConfig); ``raw`` talks to whichever
``server`` the requesting module defines."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from aegis.sim.server import SimServer
from tests.sim.rest_helpers import Raw


@pytest.fixture
async def raw(server: SimServer) -> AsyncIterator[Raw]:
    r = Raw(server)
    yield r
    await r.close()
