"""Logging for an unattended engine: readable on a terminal, JSON lines for supervisord, secrets never.

Every sink is added with ``diagnose=False`` and ``backtrace=False``: loguru's diagnose mode
prints the values of local variables in tracebacks, and a frame that signs a request holds
the API secret. On top of that a patcher replaces every registered secret (API key and
secret, listenKeys; ``aegis.redact``) with ``***`` in the message, the bound context and the
exception text, before any sink sees the record. Exceptions are rendered here, by the
standard library's traceback module (no locals), so that text can be redacted too.

Standard-library logging (aiohttp, ccxt, asyncio) is routed into loguru so it gets the same
format, level and redaction.
"""

from __future__ import annotations

import inspect
import json
import logging
import sys
import traceback
from datetime import UTC
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

from loguru import logger

from aegis.redact import redact

if TYPE_CHECKING:
    from loguru import Record

    from aegis.config import LoggingSettings

__all__ = ["LogFileError", "setup_logging"]

_EXC_KEY = "exc_text"  # extra key holding the redacted traceback of a logged exception


def _redact_value(value: Any) -> Any:
    if isinstance(value, str):
        return redact(value)
    if value is None or isinstance(value, bool | int | float):
        return value
    return redact(str(value))


def _patch(record: Record) -> None:
    """Redact the record in place before any sink formats it."""
    record["message"] = redact(record["message"])
    extra = record["extra"]
    for key, value in list(extra.items()):
        extra[key] = _redact_value(value)
    if record["exception"] is not None:
        exc_type, exc_value, exc_tb = record["exception"]
        text = "".join(traceback.format_exception(exc_type, exc_value, exc_tb))
        extra[_EXC_KEY] = redact(text)
        # The sinks print our redacted text instead; loguru's own rendering is never emitted.
        record["exception"] = None


def _context(record: Record) -> dict[str, Any]:
    return {k: v for k, v in record["extra"].items() if k != _EXC_KEY and not k.startswith("_")}


def _text_format(record: Record) -> str:
    """``time | LEVEL | module:function:line - message key=value``, then the traceback if any."""
    context = _context(record)
    record["extra"]["_ctx"] = "".join(f" {k}={v}" for k, v in context.items())
    template = (
        "<green>{time:YYYY-MM-DD HH:mm:ss.SSS!UTC}Z</green> | <level>{level: <8}</level> | "
        "<cyan>{name}</cyan>:<cyan>{function}</cyan>:<cyan>{line}</cyan> - <level>{message}</level>"
        "{extra[_ctx]}\n"
    )
    if _EXC_KEY in record["extra"]:
        template += "{extra[" + _EXC_KEY + "]}"
    return template


def _json_format(record: Record) -> str:
    """One compact JSON object per line: stable keys for log shippers, already redacted."""
    entry: dict[str, Any] = {
        "ts": record["time"].astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z"),
        "level": record["level"].name,
        "msg": record["message"],
        "logger": record["name"],
        "function": record["function"],
        "line": record["line"],
    }
    context = _context(record)
    if context:
        entry["extra"] = context
    if _EXC_KEY in record["extra"]:
        entry["exc"] = record["extra"][_EXC_KEY]
    record["extra"]["_json"] = redact(json.dumps(entry, default=str, ensure_ascii=False))
    return "{extra[_json]}\n"


class _InterceptHandler(logging.Handler):
    """Route standard-library logging into loguru (the documented loguru recipe)."""

    def emit(self, record: logging.LogRecord) -> None:
        level: str | int
        try:
            level = logger.level(record.levelname).name
        except ValueError:
            level = record.levelno
        # Find the caller outside the logging module, so module:function:line name the real site.
        frame, depth = inspect.currentframe(), 0
        while frame is not None and (depth == 0 or frame.f_code.co_filename == logging.__file__):
            frame = frame.f_back
            depth += 1
        logger.opt(depth=depth, exception=record.exc_info).log(level, record.getMessage())


def _current_stderr(message: str) -> None:
    """Write to whatever sys.stderr is now: the live terminal view redirects it to print log lines
    above itself, and a sink bound to the original stream would draw through the view."""
    sys.stderr.write(message)


class LogFileError(Exception):
    """logging.file cannot be written: a configuration error (one line, exit 2)."""


def _check_writable(path: Path) -> None:
    """The log file's directory must exist (we never create directories the operator did not ask
    for) and the file must be writable by this process."""
    if not path.parent.is_dir():
        raise LogFileError(f"logging.file: directory {str(path.parent)!r} does not exist")
    try:
        with path.open("a", encoding="utf-8"):
            pass
    except OSError as exc:
        raise LogFileError(f"logging.file: cannot write {str(path)!r}: {exc.strerror or exc}") from None


def setup_logging(config: LoggingSettings, *, stream: TextIO | None = None) -> None:
    """Replace every loguru sink with ours: stderr (or ``stream``), plus ``config.file`` if set.

    Idempotent: call it again to apply a changed configuration.
    """
    fmt = _json_format if config.json_ else _text_format
    logger.remove()
    logger.configure(patcher=_patch)
    logger.add(
        stream if stream is not None else _current_stderr,
        level=config.level,
        format=fmt,
        colorize=stream is None and not config.json_ and sys.stderr.isatty(),
        diagnose=False,
        backtrace=False,
    )
    if config.file is not None:
        _check_writable(config.file)
        logger.add(
            config.file,
            level=config.level,
            format=fmt,
            colorize=False,
            diagnose=False,
            backtrace=False,
            rotation=config.rotation_mb * 1024 * 1024,
            retention=config.retention_files,
            encoding="utf-8",
        )
    logging.basicConfig(handlers=[_InterceptHandler()], level=logger.level(config.level).no, force=True)
