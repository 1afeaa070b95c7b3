"""Fuzzing the settings: a wrong value anywhere is one ConfigError line naming the field.

Hypothesis picks any field of any section (and the top-level ones) and a value that is often
wrong (wrong type, negative, zero, out of range, inf/nan, garbage text, a table where a number
goes), given through ``AEGIS_SECTION__FIELD`` or a settings.toml. Property: ``load_settings``
either raises ``ConfigError`` whose message is one line naming the field (and never the value of
a secret), or accepts the value, and then the settings rebuild from their own dump unchanged.
No other exception type escapes.
"""

from __future__ import annotations

import datetime
import json
import math
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import BaseModel

from aegis.config import SECRET_FIELDS, ConfigError, Settings, load_settings
from aegis.sim import fillmodel


def examples(n: int) -> int:
    """``n`` under the suite's profile (100 examples by default); as many more under a wider one
    (``pytest --hypothesis-profile=explore``: 20x)."""
    return max(1, n * settings.default.max_examples // 100)


FUZZ = settings(
    max_examples=examples(120), deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)


def fields() -> list[tuple[str, str | None, str]]:
    """(section or "", field alias, dotted name) for every leaf setting."""
    out: list[tuple[str, str | None, str]] = []
    for name, info in Settings.model_fields.items():
        model = info.annotation
        if isinstance(model, type) and issubclass(model, BaseModel):
            for sub, sub_info in model.model_fields.items():
                key = sub_info.alias or sub
                out.append((name, key, f"{name}.{key}"))
        else:
            out.append(("", None, name))
    return out


FIELDS = fields()
SECRET_TEXT = "s3cr3t-fuzz-value"

WRONG_TEXT = [
    "-1", "0", "-0.5", "1e309", "inf", "-inf", "nan", "NaN", "99999999999999999999999", "1.5", "65536",
    "true", "yes", "", " ", "null", "[]", "[1, 2]", "{}", '{"a": 1}', "http://", "ftp://x", "x" * 5000,
    "DEBUG", "refuse", "bps:2", "ticks:x", "impact:-1", "ws://127.0.0.1:1", "http://127.0.0.1:1/path",
    "BTCUSDT,", ",,", "0x10", "1_000",
]  # fmt: skip
TEXT_VALUES = st.one_of(
    st.sampled_from(WRONG_TEXT),
    st.text(max_size=12),
    st.integers(-(2**70), 2**70).map(str),
    st.floats().map(repr),
)
TOML_VALUES = st.recursive(
    st.one_of(
        st.booleans(),
        st.integers(-(2**63), 2**63 - 1),
        st.floats(),
        st.text(max_size=12),
        st.sampled_from([datetime.date(2026, 1, 1), datetime.time(1, 2, 3)]),
        TEXT_VALUES,
    ),
    lambda children: (
        st.lists(children, max_size=3)
        | st.dictionaries(st.from_regex(r"[a-z_]{1,6}", fullmatch=True), children, max_size=2)
    ),
    max_leaves=4,
)


def toml_value(value: Any) -> str:
    """A TOML literal (tomllib reads, tomli-w is not a dependency)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return (
            "nan"
            if math.isnan(value)
            else ("inf" if value > 0 else "-inf")
            if math.isinf(value)
            else repr(value)
        )
    if isinstance(value, int | datetime.date | datetime.time):
        return str(value)
    if isinstance(value, str):
        # a JSON string is a TOML basic string, once DEL is escaped and astral characters are not
        return json.dumps(value, ensure_ascii=False).replace("\x7f", "\\u007F")
    if isinstance(value, list):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    return "{" + ", ".join(f"{k} = {toml_value(v)}" for k, v in value.items()) + "}"


@pytest.fixture
def isolated() -> Iterator[Path]:
    """No AEGIS_* variable and no ./settings.toml from the machine running the tests."""
    saved = {k: v for k, v in os.environ.items() if k.upper().startswith("AEGIS_")}
    cwd = Path.cwd()
    with tempfile.TemporaryDirectory() as tmp:
        for name in saved:
            del os.environ[name]
        os.chdir(tmp)
        try:
            yield Path(tmp)
        finally:
            os.chdir(cwd)
            os.environ.update(saved)


def check(load: Any, dotted: str, secret: bool) -> None:
    try:
        loaded = load()
    except ConfigError as exc:
        message = str(exc)
        assert message and "\n" not in message, message
        section, _, key = dotted.rpartition(".")
        # the field itself, or a sibling whose bound it is ("reconcile.max_age_s: must be > interval_s")
        assert dotted in message or (section and f"{section}." in message and key in message), message
        if secret:
            assert SECRET_TEXT not in message, message
        return
    # Accepted: a valid setting, which the model takes back from its own dump unchanged, and which
    # the part of aegis that reads it later takes too (a refusal there would be a traceback at start).
    again = Settings.model_validate(loaded.model_dump(by_alias=True))
    assert again == loaded
    fillmodel.parse(loaded.sim.fill_model)


def is_secret(dotted: str) -> bool:
    return any(part in SECRET_FIELDS or "secret" in part or part == "urls" for part in dotted.split("."))


@FUZZ
@given(st.sampled_from(FIELDS), TEXT_VALUES, st.booleans())
def test_a_wrong_value_in_the_environment_is_one_line_naming_the_field(
    isolated: Path, field: tuple[str, str | None, str], value: str, as_secret: bool
) -> None:
    section, key, dotted = field
    secret = is_secret(dotted)
    if secret and as_secret:
        value = SECRET_TEXT + value
    var = f"AEGIS_{section.upper()}__{key.upper()}" if key else f"AEGIS_{dotted.upper()}"
    os.environ[var] = value.replace("\x00", "")  # the environment cannot hold a NUL
    try:
        check(lambda: load_settings(), dotted, secret)
    finally:
        del os.environ[var]


@FUZZ
@given(st.sampled_from([f for f in FIELDS if f[2] not in SECRET_FIELDS]), TOML_VALUES)
def test_a_wrong_value_in_settings_toml_is_one_line_naming_the_field(
    isolated: Path, field: tuple[str, str | None, str], value: Any
) -> None:
    section, key, dotted = field
    line = f"{key or dotted} = {toml_value(value)}\n"
    (isolated / "settings.toml").write_text(f"[{section}]\n{line}" if section else line, encoding="utf-8")
    check(lambda: load_settings(isolated / "settings.toml"), dotted, is_secret(dotted))
