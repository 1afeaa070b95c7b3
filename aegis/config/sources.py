"""Where settings come from besides defaults and CLI flags: settings.toml and secret files.

The API key and secret come only from the environment (``AEGIS_API_KEY``/``AEGIS_API_SECRET``)
or from files named there (``AEGIS_API_KEY_FILE``/``AEGIS_API_SECRET_FILE``): a config file
gets copied, committed and pasted into tickets, so a secret found in it is an error.
"""

from __future__ import annotations

import os
import tomllib
from contextvars import ContextVar
from pathlib import Path
from typing import Any

from pydantic.fields import FieldInfo
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, TomlConfigSettingsSource

__all__ = ["ENV_PREFIX", "SECRET_FIELDS", "ConfigError", "SecretFileSource", "TomlSource", "config_file"]

ENV_PREFIX = "AEGIS_"
SECRET_FIELDS = ("api_key", "api_secret")


class ConfigError(Exception):
    """A configuration mistake, as one line for stderr: ``<dotted.field>: <what is wrong>``."""


config_file: ContextVar[Path | None] = ContextVar("aegis_config_file", default=None)


class TomlSource(TomlConfigSettingsSource):
    """settings.toml, refusing secrets and reporting syntax errors as a ConfigError."""

    def __init__(self, settings_cls: type[BaseSettings], path: Path | None) -> None:
        try:
            super().__init__(settings_cls, toml_file=path)
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"{path}: invalid TOML: {exc}") from None
        except UnicodeDecodeError as exc:
            raise ConfigError(f"{path}: not UTF-8 text (byte {exc.start}: {exc.reason})") from None
        except OSError as exc:
            raise ConfigError(f"{path}: cannot read: {exc.strerror or exc}") from None
        for name in SECRET_FIELDS:
            if name in self.toml_data:
                raise ConfigError(
                    f"{name}: not allowed in {path}; set {ENV_PREFIX}{name.upper()} or "
                    f"{ENV_PREFIX}{name.upper()}_FILE in the environment"
                )


class SecretFileSource(PydanticBaseSettingsSource):
    """``AEGIS_API_KEY_FILE`` / ``AEGIS_API_SECRET_FILE``: a path whose stripped content is the value.

    Files suit systemd credentials, Docker secrets and supervisord without putting the
    secret in the process environment.
    """

    def get_field_value(self, field: FieldInfo, field_name: str) -> tuple[Any, str, bool]:
        return None, field_name, False  # unused: __call__ does the work

    def __call__(self) -> dict[str, Any]:
        values: dict[str, Any] = {}
        for name in SECRET_FIELDS:
            var = f"{ENV_PREFIX}{name.upper()}_FILE"
            path = os.environ.get(var)
            if not path:
                continue
            if os.environ.get(f"{ENV_PREFIX}{name.upper()}"):
                raise ConfigError(f"{name}: both {ENV_PREFIX}{name.upper()} and {var} are set; use one")
            try:
                content = Path(path).read_text(encoding="utf-8").strip()
            except OSError as exc:
                raise ConfigError(f"{name}: cannot read {var}={path}: {exc.strerror or exc}") from None
            if not content:
                raise ConfigError(f"{name}: {var}={path} is empty")
            values[name] = content
        return values


