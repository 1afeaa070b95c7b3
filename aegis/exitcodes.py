"""Exit codes of the ``aegis`` command, defined once: supervisord and scripts read them.

``deploy/supervisord.conf`` lists EXIT_OK as expected and does not restart on EXIT_USAGE or
EXIT_AUTH: restarting cannot fix a configuration error or a key Binance refuses.
"""

from __future__ import annotations

from typing import Final

EXIT_OK: Final = 0  # a clean stop (SIGTERM/SIGINT after start-up, or the demo's end)
EXIT_FAILED: Final = 1  # a runtime failure: a critical task died, the exchange stayed unreachable
EXIT_USAGE: Final = 2  # bad usage or configuration: one line on stderr naming the field
EXIT_MISMATCH: Final = 1  # `aegis reconcile --once`: the account differs from the engine's view
EXIT_AUTH: Final = 3  # Binance refused the key (-2014/-2015, permissions, IP whitelist): fix the key
EXIT_INTERRUPTED: Final = 130  # SIGINT/SIGTERM before the engine was up
