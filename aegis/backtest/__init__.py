"""``aegis backtest``: the simulator and the unchanged live engine, one process, one virtual clock.

``plan`` (what is replayed, checked against the candle files), ``runner`` (both sides on an
unpaced ``VirtualTimeLoop``), ``engine`` (the live engine with a replay's cadences), ``outputs``
(the reproducible files), ``chart`` and ``progress``; ``command`` is the CLI's part.
"""
