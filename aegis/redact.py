"""One redaction for every text that leaves the process: logs, /state, reports, exceptions.

Two kinds of secrets: registered values (the API key and secret, every listenKey: a listenKey
is the bearer token of the account's stream) are replaced wherever they stand as a whole token,
and the values of ``signature=`` / ``listenKey=`` in a URL that an exception quotes, registered
or not. Whole tokens only (not inside a longer run of letters and digits), so a short secret
(a test account's "abc") does not mangle every log line that happens to contain those letters.
"""

from __future__ import annotations

import re
import threading

from pydantic import SecretStr

__all__ = ["REDACTED", "clear_secrets", "key_prefix", "redact", "register_secret"]

REDACTED = "***"

_URL_SECRET = re.compile(r"(signature|listenKey)=[^&\s'\"]+")
_lock = threading.Lock()
_secrets: frozenset[str] = frozenset()
_pattern: re.Pattern[str] | None = None


def register_secret(value: str | SecretStr | None) -> None:
    """Redact ``value`` from every text from now on (the engine registers key, secret, listenKeys)."""
    global _secrets, _pattern
    text = value.get_secret_value() if isinstance(value, SecretStr) else value
    if not text:
        return
    with _lock:
        _secrets = _secrets | {text}
        alternatives = sorted(_secrets, key=len, reverse=True)  # a secret containing another is replaced whole
        _pattern = re.compile(
            r"(?<![A-Za-z0-9])(?:" + "|".join(re.escape(s) for s in alternatives) + r")(?![A-Za-z0-9])"
        )


def clear_secrets() -> None:
    """Forget all registered secrets (tests)."""
    global _secrets, _pattern
    with _lock:
        _secrets, _pattern = frozenset(), None


def redact(text: str) -> str:
    """``text`` with every registered secret and every URL signature or listenKey masked."""
    pattern = _pattern
    if pattern is not None:
        text = pattern.sub(REDACTED, text)
    return _URL_SECRET.sub(r"\1=" + REDACTED, text)


def key_prefix(key: str | None) -> str:
    """What may name a listenKey in a log line or /state: its first 6 characters."""
    return "-" if not key else key[:6] + "…"
