"""aegis.sim: a Binance USD-M futures exchange on loopback.

It speaks Binance's real REST and WebSocket protocol so that aegis, python-binance and ccxt
work against it unchanged. It imports nothing from the engine side of aegis.
"""
