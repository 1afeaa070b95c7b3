"""The virtual loop's pace can change mid-run (a benchmark skips a quiet stretch unpaced, then times
what follows paced again): from the change on, virtual time is held to the new pace only."""

from __future__ import annotations

import pytest

from aegis.virtualtime import VirtualTimeLoop


def test_set_pace_takes_effect_from_now_on() -> None:
    loop = VirtualTimeLoop(start=0.0, pace=1.0)
    try:
        assert loop.pacing_wait(3600.0) > 3000.0  # paced: an hour ahead waits for the wall
        loop.set_pace(None)
        assert loop.pacing_wait(3600.0) == 0.0
        loop.advance(3600.0)  # an unpaced hour later...
        loop.set_pace(1.0)
        assert loop.pacing_wait(0.0) == 0.0  # ...nothing is owed for it
        assert 0.5 < loop.pacing_wait(1.0) <= 1.0
        with pytest.raises(ValueError):
            loop.set_pace(0.0)
    finally:
        loop.close()
