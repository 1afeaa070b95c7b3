"""``aegis config``: the effective configuration as a valid settings.toml (or JSON), secrets masked."""

from __future__ import annotations

import json
import math
from collections.abc import Iterator, Mapping
from typing import Any, Literal

from pydantic import BaseModel, SecretStr

from aegis.config.schema import Settings
from aegis.config.sources import SECRET_FIELDS

__all__ = ["MASK", "masked_dump"]

MASK = "**********"  # what SecretStr prints; `aegis config` shows it for a secret that is set


def masked_dump(settings: Settings, fmt: Literal["toml", "json"] = "toml") -> str:
    """The effective configuration for ``aegis config``; secrets show only whether they are set.

    The TOML form is itself a valid settings.toml: secret lines are comments, because secrets
    never belong in that file.
    """
    data = settings.model_dump(mode="json", by_alias=True)  # SecretStr dumps as MASK
    if fmt == "json":
        return json.dumps(data, indent=2) + "\n"
    if fmt != "toml":
        raise ValueError(f"unknown format {fmt!r}")
    return "\n".join(_toml_lines(data, settings)) + "\n"


def _toml_lines(data: Mapping[str, Any], settings: Settings) -> Iterator[str]:
    secret_paths = _secret_paths(settings)
    tables = {k: v for k, v in data.items() if isinstance(v, dict)}
    yield from _toml_scalars("", data, secret_paths)
    for name, table in tables.items():
        yield from _toml_table(name, table, secret_paths)


def _toml_table(name: str, table: Mapping[str, Any], secret_paths: set[str]) -> Iterator[str]:
    """``[name]`` with its scalars, then its sub-tables (``[strategy.params]``) below it."""
    yield ""
    yield f"[{name}]"
    yield from _toml_scalars(f"{name}.", table, secret_paths)
    for key, value in table.items():
        if isinstance(value, dict):
            yield from _toml_table(f"{name}.{key}", value, secret_paths)


def _toml_scalars(prefix: str, table: Mapping[str, Any], secret_paths: set[str]) -> Iterator[str]:
    for key, value in table.items():
        if isinstance(value, dict):
            continue
        if prefix + key in secret_paths:
            state = f" = {_toml_value(value)}  # set" if value not in (None, []) else ": not set"
            yield f"# {key}{state} (secret: not shown)"
        elif value is None:
            yield f"# {key}: not set"
        else:
            yield f"{key} = {_toml_value(value)}"


def _secret_paths(settings: Settings) -> set[str]:
    paths = set(SECRET_FIELDS)
    for section, model in settings:
        if isinstance(model, BaseModel):
            for name, field in type(model).model_fields.items():
                if field.annotation in (SecretStr, SecretStr | None, list[SecretStr]):
                    paths.add(f"{section}.{field.alias or name}")
    return paths


def _toml_value(value: Any) -> str:
    """A TOML literal for the scalar and list values our models hold."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if math.isnan(value):
            return "nan"
        if math.isinf(value):
            return "inf" if value > 0 else "-inf"
        return repr(value)
    if isinstance(value, str):
        return _toml_string(value)
    if isinstance(value, list):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    raise TypeError(f"cannot write {type(value).__name__} as TOML")


def _toml_string(value: str) -> str:
    escapes = {'"': '\\"', "\\": "\\\\", "\b": "\\b", "\t": "\\t", "\n": "\\n", "\f": "\\f", "\r": "\\r"}
    out = []
    for ch in value:
        if ch in escapes:
            out.append(escapes[ch])
        elif ord(ch) < 0x20 or ord(ch) == 0x7F:
            out.append(f"\\u{ord(ch):04X}")
        else:
            out.append(ch)
    return '"' + "".join(out) + '"'

