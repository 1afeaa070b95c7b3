"""Every async test runs on virtual time unless it is marked ``wallclock``.

On a ``VirtualTimeLoop`` the simulator and the engine share one clock that stands still while
either has work to do and jumps to the next timer when both are idle, so a test of a 24-hour
cut takes the CPU time it needs, and the machine's load cannot change what it observes. Tests
that wait on something outside the loop (a subprocess, a real-time client) are marked
``wallclock`` and run on the standard loop.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping

import pytest
from hypothesis import settings

from aegis.virtualtime import VirtualTimeLoop

# Property tests draw the same examples on every machine and every run, as hypothesis's own CI
# profile does: a clone's `make test` and CI see one suite, and a red run is a defect, not a draw.
# Wider exploration is a deliberate act: `pytest --hypothesis-profile=explore`.
settings.register_profile("deterministic", derandomize=True, deadline=None)
settings.register_profile("explore", deadline=None, max_examples=2000)
settings.load_profile("deterministic")


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "wallclock: run on a real-time event loop (waits on another process)")


def pytest_asyncio_loop_factories(
    config: pytest.Config, item: pytest.Item
) -> Mapping[str, Callable[[], asyncio.AbstractEventLoop]]:
    if item.get_closest_marker("wallclock"):
        return {"wallclock": asyncio.new_event_loop}
    return {"virtual": VirtualTimeLoop}
