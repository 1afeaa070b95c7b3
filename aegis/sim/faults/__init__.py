"""Fault injection: the exchange misbehaving the way Binance does, on demand, over loopback HTTP.

``book`` keeps the faults and starts them by kind (see its docstring for every kind), ``http``
answers requests in their place, ``streams`` filters the market and user streams.
"""

from aegis.sim.faults.book import FAULT_BOOK, KINDS, FaultBook, install, mount

__all__ = ["FAULT_BOOK", "KINDS", "FaultBook", "install", "mount"]
