"""Loading settings from every source, and wording each mistake as one line naming the field.

An unattended engine under supervisord must fail at start-up, loudly and legibly, never later:
every validation error becomes one ``ConfigError`` line with the dotted field, what is wrong,
the offending value (never for a secret) and where it came from.
"""

from __future__ import annotations

import json
import os
import re
import tomllib
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from pydantic import ValidationError
from pydantic_settings import SettingsError

from aegis.config.schema import Settings
from aegis.config.sources import ENV_PREFIX, SECRET_FIELDS, ConfigError, config_file

__all__ = ["DEFAULT_CONFIG_FILE", "load_settings", "resolve_config_path"]

DEFAULT_CONFIG_FILE = Path("settings.toml")


def resolve_config_path(config_path: Path | None) -> Path | None:
    """``--config``, else ``AEGIS_CONFIG``, else ``./settings.toml`` if present, else none."""
    if config_path is None:
        env = os.environ.get(f"{ENV_PREFIX}CONFIG")
        config_path = Path(env) if env else None
    if config_path is None:
        return DEFAULT_CONFIG_FILE if DEFAULT_CONFIG_FILE.is_file() else None
    if not config_path.is_file():
        raise ConfigError(f"config: no such file: {config_path}")
    return config_path


def load_settings(config_path: Path | None = None, overrides: Mapping[str, Any] | None = None) -> Settings:
    """Build Settings from all sources, or raise ConfigError with one line naming the field.

    ``overrides`` are the CLI flags as a nested dict (``{"ops": {"port": 0}}``); they win over
    everything else and are deep-merged, so one flag does not reset its section.
    """
    path = resolve_config_path(config_path)
    _refuse_unknown_environment()
    token = config_file.set(path)
    try:
        return Settings(**dict(overrides or {}))
    except ValidationError as exc:
        raise ConfigError(_describe(exc, path, overrides or {})) from None
    except SettingsError as exc:
        raise ConfigError(_describe_source_error(str(exc).splitlines()[0])) from None
    finally:
        config_file.reset(token)


# AEGIS_* variables that are not settings but are read by aegis (the config path, secret files).
_KNOWN_ENV = frozenset({"CONFIG", "API_KEY_FILE", "API_SECRET_FILE"})


def _refuse_unknown_environment() -> None:
    """``AEGIS_SYMBOL=...`` (a typo of AEGIS_SYMBOLS) must fail like an unknown key in settings.toml,
    not be ignored; pydantic-settings only rejects unknown *nested* names."""
    fields = {name.upper() for name in Settings.model_fields}
    unknown = sorted(
        var
        for var in os.environ
        if var.upper().startswith(ENV_PREFIX)
        and (rest := var.upper()[len(ENV_PREFIX):]) not in _KNOWN_ENV
        and rest.split("__", 1)[0] not in fields
    )
    if unknown:
        raise ConfigError(f"{unknown[0]}: unknown setting (see settings.toml for every setting)")


_SOURCE_ERROR = re.compile(r'field "([^"]+)" from source "EnvSettingsSource"')


def _describe_source_error(first_line: str) -> str:
    """pydantic-settings' 'error parsing value for field "alerts" from source "EnvSettingsSource"'
    (a list or table setting whose variable is not JSON) as the variable and what it must be.
    The value is not repeated: it may be a secret (alerts.urls)."""
    match = _SOURCE_ERROR.search(first_line)
    if match is None:
        return first_line
    prefix = ENV_PREFIX + match.group(1).upper()
    names = sorted(v for v in os.environ if v.upper() == prefix or v.upper().startswith(prefix + "__"))
    var = next((v for v in names if not _is_json(os.environ[v])), names[0] if names else prefix)
    dotted = var.upper().removeprefix(ENV_PREFIX).lower().replace("__", ".")
    return f"{dotted}: expected JSON (a list such as [\"a\", \"b\"] or a table such as {{\"k\": 1}}) [from {var}]"


def _is_json(text: str) -> bool:
    try:
        json.loads(text)
    except ValueError:
        return False
    return True


def _describe(exc: ValidationError, path: Path | None, overrides: Mapping[str, Any]) -> str:
    """One line for all validation errors: ``ops.port: Input should be ... (got 'x') [AEGIS_OPS__PORT]``."""
    toml_data = _read_toml(path)
    parts = []
    for err in exc.errors(include_url=False):
        loc = _dotted(err["loc"])
        if err["type"] == "extra_forbidden":
            msg = "unknown setting"
        else:
            msg = str(err["msg"]).removeprefix("Value error, ")
            secret = "secret" in loc or any(str(part) in SECRET_FIELDS for part in err["loc"])
            if err["type"] not in ("value_error", "assertion_error") and not secret:
                msg += f" (got {_short(err['input'])})"
        origin = _origin(err["loc"], overrides, toml_data, path)
        parts.append(f"{loc}: {msg}{origin}" if loc else f"{msg}{origin}")
    return "; ".join(parts).replace("\n", " ")


def _read_toml(path: Path | None) -> dict[str, Any]:
    if path is None:
        return {}
    try:
        with path.open("rb") as fh:
            return tomllib.load(fh)
    except (OSError, tomllib.TOMLDecodeError):
        return {}


def _origin(
    loc: tuple[int | str, ...], overrides: Mapping[str, Any], toml_data: Mapping[str, Any], path: Path | None
) -> str:
    """Where a bad value came from, checked in source priority order, so the right place gets fixed."""
    keys = [str(part) for part in loc if isinstance(part, str)]
    if not keys:
        return ""
    if _has_path(overrides, keys):
        return " [from the command line]"
    var = ENV_PREFIX + "__".join(keys).upper()
    if var in os.environ or (len(keys) > 1 and ENV_PREFIX + keys[0].upper() in os.environ):
        return f" [from {var}]"
    return f" [from {path}]" if _has_path(toml_data, keys) else ""


def _has_path(data: Mapping[str, Any], keys: Sequence[str]) -> bool:
    node: Any = data
    for key in keys:
        if not isinstance(node, Mapping) or key not in node:
            return False
        node = node[key]
    return True


def _dotted(loc: tuple[int | str, ...]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


