"""aegis configuration: one validated, immutable ``Settings`` for the whole engine.

Sources, lowest to highest priority: built-in defaults < ``settings.toml`` < ``AEGIS_*``
environment variables (nested with ``__``, e.g. ``AEGIS_OPS__PORT=0``) < CLI flags. The
merge is pydantic-settings' own; this module only chooses the sources and words the errors.

The API key and secret come only from the environment (``AEGIS_API_KEY``/``AEGIS_API_SECRET``)
or from files named there (``AEGIS_API_KEY_FILE``/``AEGIS_API_SECRET_FILE``): a config file
gets copied, committed and pasted into tickets, so a secret found in it is an error.

Every mistake is reported as one ``ConfigError`` line naming the dotted field, because an
unattended engine under supervisord must fail at start-up, loudly and legibly, never later.
"""

from __future__ import annotations

import ipaddress
import json
import math
import os
import tomllib
from collections.abc import Iterator, Mapping, Sequence
from contextvars import ContextVar
from pathlib import Path
from typing import Annotated, Any, Literal, NamedTuple
from urllib.parse import urlsplit

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    ValidationInfo,
    field_validator,
)
from pydantic.fields import FieldInfo
from pydantic_settings import (
    BaseSettings,
    NoDecode,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    SettingsError,
    TomlConfigSettingsSource,
)

from aegis.sim.config import DEMO_API_KEY, DEMO_API_SECRET

__all__ = [
    "DEFAULT_CONFIG_FILE",
    "ENV_PREFIX",
    "LIVE",
    "MASK",
    "SECRET_FIELDS",
    "TESTNET",
    "ConfigError",
    "Credentials",
    "EndpointProfile",
    "Endpoints",
    "EngineSettings",
    "LoggingSettings",
    "MarketSettings",
    "OpsSettings",
    "RestSettings",
    "Settings",
    "SimSettings",
    "UserStreamSettings",
    "load_settings",
    "masked_dump",
    "resolve_config_path",
]

ENV_PREFIX = "AEGIS_"
DEFAULT_CONFIG_FILE = Path("settings.toml")
MASK = "**********"  # what SecretStr prints; `aegis config` shows it for a secret that is set
SECRET_FIELDS = ("api_key", "api_secret")

EndpointProfile = Literal["sim", "testnet", "live"]


class ConfigError(Exception):
    """A configuration mistake, as one line for stderr: ``<dotted.field>: <what is wrong>``."""


# --------------------------------------------------------------------------- endpoints


class Endpoints(BaseModel):
    """REST and WebSocket base URLs of one exchange.

    Stream routes (``/market/stream``, ``/private/ws``) are the adapter's: aegis.binance.ws.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    rest_url: str
    ws_url: str

    @classmethod
    def from_sim_url(cls, url: str) -> Endpoints:
        """Endpoints of a simulator at ``http://host:port``: its streams are on the same host and port."""
        parts = urlsplit(_check_http_url(url))
        ws_scheme = "wss" if parts.scheme == "https" else "ws"
        return cls(rest_url=f"{parts.scheme}://{parts.netloc}", ws_url=f"{ws_scheme}://{parts.netloc}")


LIVE = Endpoints(rest_url="https://fapi.binance.com", ws_url="wss://fstream.binance.com")
# Binance's docs now name demo-fapi; the older https://testnet.binancefuture.com still answers
# and some clients keep it. Streams for both stay on fstream.binancefuture.com.
TESTNET = Endpoints(rest_url="https://demo-fapi.binance.com", ws_url="wss://fstream.binancefuture.com")


class Credentials(NamedTuple):
    api_key: SecretStr
    api_secret: SecretStr


# --------------------------------------------------------------------------- field types

# Intervals and timeouts: a zero or negative one would spin or never fire; inf/nan likewise.
PositiveSeconds = Annotated[float, Field(gt=0, allow_inf_nan=False)]
Port = Annotated[int, Field(ge=0, le=65535)]


def _check_http_url(url: str) -> str:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"expected http://HOST:PORT, got {url!r}")
    try:
        parts.port  # noqa: B018 - property access validates the port
    except ValueError as exc:
        raise ValueError(f"bad port in {url!r}") from exc
    if parts.path not in ("", "/") or parts.query or parts.fragment:
        raise ValueError(f"expected a base URL without path or query, got {url!r}")
    return url


def _is_loopback(host: str) -> bool:
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class _Section(BaseModel):
    """A settings table: frozen, and an unknown key is an error (typos must not pass silently)."""

    model_config = ConfigDict(extra="forbid", frozen=True, validate_default=True)


# --------------------------------------------------------------------------- sections


class SimSettings(_Section):
    url: str | None = None
    speed: PositiveSeconds = 1.0
    host: str = "127.0.0.1"
    port: Port = 0
    data: Path | None = None
    # The simulator's public demo account (aegis.sim owns the values; not Binance credentials).
    demo_api_key: str = DEMO_API_KEY
    demo_api_secret: SecretStr = SecretStr(DEMO_API_SECRET)

    @field_validator("url")
    @classmethod
    def _url(cls, value: str | None) -> str | None:
        return None if value is None else _check_http_url(value).rstrip("/")

    @field_validator("host")
    @classmethod
    def _host(cls, value: str) -> str:
        if not _is_loopback(value):
            raise ValueError(f"the simulator serves on loopback only, got {value!r}")
        return value

    @field_validator("data")
    @classmethod
    def _data(cls, value: Path | None) -> Path | None:
        if value is not None and not value.is_dir():
            raise ValueError(f"not a directory: {str(value)!r}")
        return value


class OpsSettings(_Section):
    host: str = "127.0.0.1"
    port: Port = 8787

    @field_validator("host")
    @classmethod
    def _host(cls, value: str) -> str:
        # /state and POST /reconcile have no authentication: loopback is the access control.
        if not _is_loopback(value):
            raise ValueError(f"must be a loopback address (127.0.0.1, ::1, localhost), got {value!r}")
        return value


class EngineSettings(_Section):
    shutdown_timeout_s: PositiveSeconds = 10.0
    restart_backoff_initial_s: PositiveSeconds = 0.5
    restart_backoff_max_s: PositiveSeconds = 30.0

    @field_validator("restart_backoff_max_s")
    @classmethod
    def _backoff_order(cls, value: float, info: ValidationInfo) -> float:
        initial = info.data.get("restart_backoff_initial_s")
        if initial is not None and value < initial:
            raise ValueError(f"must be >= restart_backoff_initial_s ({initial}), got {value}")
        return value


class RestSettings(_Section):
    timeout_s: PositiveSeconds = 10.0
    recv_window_ms: Annotated[int, Field(ge=1, le=60000)] = 5000
    weight_share: Annotated[float, Field(gt=0, le=1, allow_inf_nan=False)] = 0.8


class MarketSettings(_Section):
    history_candles: Annotated[int, Field(gt=0)] = 1000
    max_candles: Annotated[int, Field(gt=0)] = 5000
    stale_after_s: PositiveSeconds = 30.0
    skip_dirty_windows: bool = True

    @field_validator("max_candles")
    @classmethod
    def _bounds(cls, value: int, info: ValidationInfo) -> int:
        history = info.data.get("history_candles")
        if history is not None and value < history:
            raise ValueError(f"must be >= history_candles ({history}), got {value}")
        return value


class UserStreamSettings(_Section):
    # Binance expires a listenKey 60 min after its last keepalive and cuts every connection
    # after 24 h, so both intervals must stay strictly below those limits.
    keepalive_interval_s: Annotated[float, Field(gt=0, lt=3600, allow_inf_nan=False)] = 1800.0
    rotate_after_s: Annotated[float, Field(gt=0, lt=86400, allow_inf_nan=False)] = 82800.0
    silence_threshold_s: PositiveSeconds = 300.0


LogLevel = Literal["TRACE", "DEBUG", "INFO", "SUCCESS", "WARNING", "ERROR", "CRITICAL"]


class LoggingSettings(_Section):
    model_config = ConfigDict(populate_by_name=True)

    level: LogLevel = "INFO"
    # `json` is the key in TOML and env; the attribute is json_ because BaseModel.json exists.
    json_: bool = Field(default=False, alias="json")
    file: Path | None = None
    rotation_mb: Annotated[int, Field(gt=0)] = 100
    retention_files: Annotated[int, Field(ge=1)] = 10

    @field_validator("level", mode="before")
    @classmethod
    def _upper(cls, value: Any) -> Any:
        return value.upper() if isinstance(value, str) else value


# --------------------------------------------------------------------------- sources

_config_file: ContextVar[Path | None] = ContextVar("aegis_config_file", default=None)


class _TomlSource(TomlConfigSettingsSource):
    """settings.toml, refusing secrets and reporting syntax errors as a ConfigError."""

    def __init__(self, settings_cls: type[BaseSettings], path: Path | None) -> None:
        try:
            super().__init__(settings_cls, toml_file=path)
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"{path}: invalid TOML: {exc}") from None
        except OSError as exc:
            raise ConfigError(f"{path}: cannot read: {exc.strerror or exc}") from None
        for name in SECRET_FIELDS:
            if name in self.toml_data:
                raise ConfigError(
                    f"{name}: not allowed in {path}; set {ENV_PREFIX}{name.upper()} or "
                    f"{ENV_PREFIX}{name.upper()}_FILE in the environment"
                )


class _SecretFileSource(PydanticBaseSettingsSource):
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


# --------------------------------------------------------------------------- settings


class Settings(BaseSettings):
    """The engine's whole configuration; see settings.toml for every key with its meaning."""

    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX,
        env_nested_delimiter="__",
        case_sensitive=False,
        extra="forbid",
        frozen=True,
        validate_default=True,
    )

    profile: EndpointProfile = "sim"
    allow_live: bool = False
    # NoDecode: AEGIS_SYMBOLS=BTCUSDT,ETHUSDT is accepted as well as a JSON list.
    symbols: Annotated[list[str], NoDecode] = Field(default_factory=lambda: ["BTCUSDT", "ETHUSDT"])
    api_key: SecretStr | None = None
    api_secret: SecretStr | None = None

    sim: SimSettings = SimSettings()
    ops: OpsSettings = OpsSettings()
    engine: EngineSettings = EngineSettings()
    rest: RestSettings = RestSettings()
    market: MarketSettings = MarketSettings()
    userstream: UserStreamSettings = UserStreamSettings()
    logging: LoggingSettings = LoggingSettings()

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        """CLI overrides (init kwargs) > environment > secret files > settings.toml > defaults."""
        return (
            init_settings,
            env_settings,
            _SecretFileSource(settings_cls),
            _TomlSource(settings_cls, _config_file.get()),
        )

    @field_validator("symbols", mode="before")
    @classmethod
    def _split_symbols(cls, value: Any) -> Any:
        if isinstance(value, str):
            text = value.strip()
            if text.startswith("["):
                return json.loads(text)
            return [part for part in (p.strip() for p in text.split(",")) if part]
        return value

    @field_validator("symbols")
    @classmethod
    def _check_symbols(cls, value: list[str]) -> list[str]:
        symbols = [s.strip().upper() for s in value]
        if not symbols:
            raise ValueError("at least one symbol is required")
        for symbol in symbols:
            if not symbol or not symbol.isascii() or not symbol.isalnum():
                raise ValueError(f"{symbol!r} is not a symbol (expected letters and digits, e.g. BTCUSDT)")
        if len(set(symbols)) != len(symbols):
            raise ValueError(f"duplicate symbols in {symbols}")
        return symbols

    @field_validator("profile", mode="before")
    @classmethod
    def _lower_profile(cls, value: Any) -> Any:
        return value.strip().lower() if isinstance(value, str) else value

    @field_validator("allow_live")
    @classmethod
    def _live_is_deliberate(cls, value: bool, info: ValidationInfo) -> bool:
        # Checked here, not in the CLI, so no path (settings.toml, env, flag) reaches live by accident.
        if info.data.get("profile") == "live" and not value:
            raise ValueError(
                "profile 'live' trades real money: set allow_live = true in settings.toml "
                f"(or {ENV_PREFIX}ALLOW_LIVE=true) to allow it"
            )
        return value

    @field_validator("api_key", "api_secret")
    @classmethod
    def _secret_present(cls, value: SecretStr | None, info: ValidationInfo) -> SecretStr | None:
        var = f"{ENV_PREFIX}{str(info.field_name).upper()}"
        if value is not None:
            stripped = value.get_secret_value().strip()
            if not stripped:
                raise ValueError(f"is empty (check {var} / {var}_FILE)")
            return SecretStr(stripped)
        profile = info.data.get("profile")
        if profile in ("testnet", "live"):
            raise ValueError(f"required for profile {profile!r}: set {var} or {var}_FILE")
        return None

    @property
    def embedded_sim(self) -> bool:
        """True when the engine must start its own simulator (profile sim, no sim.url)."""
        return self.profile == "sim" and self.sim.url is None

    def endpoint(self, sim_url: str | None = None) -> Endpoints:
        """Base URLs for this profile; for the embedded simulator pass the URL it listens on."""
        if self.profile == "live":
            return LIVE
        if self.profile == "testnet":
            return TESTNET
        url = sim_url or self.sim.url
        if url is None:
            raise ValueError("profile 'sim' without sim.url: pass the embedded simulator's URL")
        return Endpoints.from_sim_url(url)

    def credentials(self) -> Credentials:
        """The API key pair to sign with; on the simulator, the demo account unless keys are set."""
        if self.api_key is not None and self.api_secret is not None:
            return Credentials(self.api_key, self.api_secret)
        if self.profile != "sim":  # unreachable after validation; kept for type narrowing
            raise ValueError(f"profile {self.profile!r} has no API credentials")
        return Credentials(SecretStr(self.sim.demo_api_key), self.sim.demo_api_secret)


# --------------------------------------------------------------------------- loading


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
    token = _config_file.set(path)
    try:
        return Settings(**dict(overrides or {}))
    except ValidationError as exc:
        raise ConfigError(_describe(exc, path, overrides or {})) from None
    except SettingsError as exc:
        raise ConfigError(str(exc).splitlines()[0]) from None
    finally:
        _config_file.reset(token)


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


# --------------------------------------------------------------------------- dumping


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
        yield ""
        yield f"[{name}]"
        yield from _toml_scalars(f"{name}.", table, secret_paths)


def _toml_scalars(prefix: str, table: Mapping[str, Any], secret_paths: set[str]) -> Iterator[str]:
    for key, value in table.items():
        if isinstance(value, dict):
            continue
        if prefix + key in secret_paths:
            state = f" = {_toml_value(value)}  # set" if value is not None else ": not set"
            yield f"# {key}{state} (secret: environment or file only)"
        elif value is None:
            yield f"# {key}: not set"
        else:
            yield f"{key} = {_toml_value(value)}"


def _secret_paths(settings: Settings) -> set[str]:
    paths = set(SECRET_FIELDS)
    for section, model in settings:
        if isinstance(model, BaseModel):
            for name, field in type(model).model_fields.items():
                if field.annotation in (SecretStr, SecretStr | None):
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

