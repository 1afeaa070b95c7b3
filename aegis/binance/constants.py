"""Binance USD-M futures facts the engine depends on, in one place (see binance-usdm-facts.md).

Anything here is Binance's rule, not our choice: a value the exchange changes is changed here
and nowhere else. Our own tuning lives in ``aegis.config``.
"""

from __future__ import annotations

from typing import Final

# --- hosts (section 1) -----------------------------------------------------------------
LIVE_REST_URL: Final = "https://fapi.binance.com"
LIVE_WS_URL: Final = "wss://fstream.binance.com"
# Binance's docs now name demo-fapi for the futures testnet's REST API; its streams are served
# on fstream.binancefuture.com (nautilus_trader and hummingbot connect there). Both are
# overridable in settings for every profile, because Binance has moved them before.
TESTNET_REST_URL: Final = "https://demo-fapi.binance.com"
TESTNET_WS_URL: Final = "wss://fstream.binancefuture.com"

# --- klines (section 6) ----------------------------------------------------------------
KLINES_MAX_LIMIT: Final = 1500
KLINES_DEFAULT_LIMIT: Final = 500
# Weight of one klines request by its limit: [1,100) -> 1, [100,500) -> 2, [500,1000] -> 5, >1000 -> 10.
KLINES_WEIGHT_STEPS: Final = ((99, 1), (499, 2), (1000, 5), (1500, 10))

# --- streams and the user data stream (sections 1, 9) ------------------------------------
MAX_STREAMS_PER_CONNECTION: Final = 1024
MAX_INCOMING_PER_SECOND: Final = 10  # what a client may send per connection per second
LISTEN_KEY_LIFETIME_S: Final = 3600.0  # a key expires 60 min after its last keepalive
CONNECTION_LIFETIME_S: Final = 24 * 3600.0  # Binance cuts every stream connection at 24 h

# --- signing (section 2) ------------------------------------------------------------------
DEFAULT_RECV_WINDOW_MS: Final = 5000
MAX_RECV_WINDOW_MS: Final = 60000
TIMESTAMP_AHEAD_LIMIT_MS: Final = 1000  # a timestamp more than this ahead of the server is -1021

# --- orders (section 7) -------------------------------------------------------------------
CLIENT_ORDER_ID_PATTERN: Final = r"^[\.A-Z\:/a-z0-9_-]{1,36}$"


def klines_weight(limit: int) -> int:
    """The request weight Binance charges for one klines request of ``limit`` rows."""
    for largest, weight in KLINES_WEIGHT_STEPS:
        if limit <= largest:
            return weight
    return KLINES_WEIGHT_STEPS[-1][1]
