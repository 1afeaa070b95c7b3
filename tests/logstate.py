"""Process-wide logging state for the tests that reconfigure it (setup_logging, ``aegis run``)."""

from __future__ import annotations

import logging
import sys
from collections.abc import Iterator
from contextlib import contextmanager

from loguru import logger

from aegis.redact import clear_secrets


@contextmanager
def restored_logging() -> Iterator[None]:
    """Put loguru, the stdlib root logger and the registered secrets back as they were."""
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    try:
        yield
    finally:
        clear_secrets()
        logger.remove()
        logger.configure(patcher=lambda record: None)
        logger.add(sys.stderr)
        root.handlers[:] = handlers
        root.setLevel(level)


class LineSink:
    """A terminal-less stream for ``setup_logging`` that keeps what was written, to assert on."""

    def __init__(self, lines: list[str]) -> None:
        self.lines = lines

    def write(self, text: str) -> None:
        self.lines.append(text)

    def flush(self) -> None:
        pass

    def isatty(self) -> bool:
        return False
