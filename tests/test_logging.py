"""Logging: formats, and above all that no registered secret ever reaches a log line."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from loguru import logger
from pydantic import SecretStr

from aegis.config import LoggingSettings
from aegis.ops.logs import setup_logging
from aegis.redact import REDACTED, redact, register_secret
from tests.logstate import restored_logging

SECRET = "sEcReT-0123456789-abcdef"
API_KEY = "kEy-9876543210-fedcba"


@pytest.fixture(autouse=True)
def restore_logging() -> Iterator[None]:
    """setup_logging reconfigures process-wide state; put loguru and stdlib logging back after."""
    with restored_logging():
        yield


def configure(**fields: Any) -> io.StringIO:
    stream = io.StringIO()
    register_secret(SECRET)
    register_secret(SecretStr(API_KEY))
    setup_logging(LoggingSettings.model_validate(fields), stream=stream)
    return stream


def sign_request(secret: str) -> None:
    """Raises while a local variable holds the secret, like a failing signing path would."""
    payload = f"symbol=BTCUSDT&secret={secret}"  # a local that diagnose=True would print
    raise ValueError(f"signature failed for {secret} with {payload}")


def log_everything() -> None:
    logger.info("loaded key {} and secret {}", API_KEY, SECRET)
    logger.bind(api_key=API_KEY, symbol="BTCUSDT").warning("bound context")
    try:
        sign_request(SECRET)
    except ValueError:
        logger.exception("request failed")
    logging.getLogger("aiohttp.client").error("stdlib says %s", SECRET)
    logger.opt(colors=True).info("<red>colored</red> " + SECRET)


@pytest.mark.parametrize("as_json", [False, True], ids=["text", "json"])
def test_secrets_never_reach_the_log(as_json: bool) -> None:
    stream = configure(json=as_json)
    log_everything()
    out = stream.getvalue()
    assert SECRET not in out and API_KEY not in out
    assert out.count(REDACTED) >= 6
    assert "Traceback" in out and "sign_request" in out  # the traceback itself is kept


@pytest.mark.parametrize("as_json", [False, True], ids=["text", "json"])
def test_traceback_has_no_local_variables(as_json: bool) -> None:
    """diagnose=False: a local's value (not registered as a secret) is not printed either."""
    stream = configure(json=as_json)
    canary = "canary-local-value-42"

    def fail() -> None:
        local = canary + "!"
        raise RuntimeError("boom" if local else "")

    try:
        fail()
    except RuntimeError:
        logger.exception("failed")
    out = stream.getvalue()
    assert "boom" in out and canary not in out


def test_secret_in_file_sink_is_redacted(tmp_path: Path) -> None:
    (tmp_path / "logs").mkdir()
    path = tmp_path / "logs" / "aegis.log"
    configure(file=path)
    log_everything()
    logger.remove()  # flush and close the file
    text = path.read_text(encoding="utf-8")
    assert "request failed" in text
    assert SECRET not in text and API_KEY not in text


def test_json_lines_are_parseable_with_stable_keys() -> None:
    stream = configure(json=True, level="DEBUG")
    logger.bind(task="market").debug("hello {}", 1)
    try:
        raise KeyError("x")
    except KeyError:
        logger.exception("oops")
    lines = stream.getvalue().splitlines()
    assert len(lines) == 2
    first, second = (json.loads(line) for line in lines)
    assert first["level"] == "DEBUG" and first["msg"] == "hello 1"
    assert first["extra"]["task"] == "market" and first["ts"].endswith("Z")
    assert first["logger"] == __name__
    assert "KeyError" in second["exc"]


def test_text_format_is_one_readable_line() -> None:
    stream = configure()
    logger.bind(task="market").info("candle closed")
    line = stream.getvalue()
    assert line.count("\n") == 1
    assert "| INFO     |" in line and "candle closed" in line and "task=market" in line
    assert "\x1b[" not in line  # no colour codes when not a terminal


def test_level_filters() -> None:
    stream = configure(level="warning")
    logger.info("quiet")
    logging.getLogger("ccxt").info("quiet too")
    logger.warning("loud")
    out = stream.getvalue()
    assert "quiet" not in out and "loud" in out


def test_setup_is_idempotent() -> None:
    configure()
    stream = configure()
    logger.info("once")
    assert stream.getvalue().count("once") == 1


def test_redact_prefers_the_longest_secret() -> None:
    register_secret("abc")
    register_secret("abcdef")
    register_secret("")
    register_secret(None)
    assert redact("xx abcdef abc") == f"xx {REDACTED} {REDACTED}"
