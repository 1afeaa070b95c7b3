"""aegis: a trading engine for Binance USD-M perpetual futures that does not fail silently."""

__version__ = "0.1.0"
