"""The settings schema: every section, its types, bounds and meaning (settings.toml documents them).

Sources, lowest to highest priority: built-in defaults < ``settings.toml`` < ``AEGIS_*``
environment variables (nested with ``__``, e.g. ``AEGIS_OPS__PORT=0``) < CLI flags. The merge is
pydantic-settings' own; ``aegis.config.loading`` chooses the sources and words the errors.
Every model is frozen and forbids unknown keys: a typo must fail at start-up, not fall back to
a default.
"""

from __future__ import annotations

import json
from typing import Annotated, Any, Literal, NamedTuple
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationInfo, field_validator
from pydantic_settings import BaseSettings, NoDecode, PydanticBaseSettingsSource, SettingsConfigDict

from aegis.binance.constants import (
    LIVE_REST_URL,
    LIVE_WS_URL,
    TESTNET_REST_URL,
    TESTNET_WS_URL,
)
from aegis.config.sections import (
    AlertSettings,
    EngineSettings,
    ExchangeSettings,
    JournalSettings,
    LoggingSettings,
    MarketSettings,
    OpsSettings,
    OrderSettings,
    ReconcileSettings,
    RestSettings,
    RiskSettings,
    SimSettings,
    StrategySettings,
    UserStreamSettings,
    check_http_url,
)
from aegis.config.sources import ENV_PREFIX, SecretFileSource, TomlSource, config_file

EndpointProfile = Literal["sim", "testnet", "live"]


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
        parts = urlsplit(check_http_url(url))
        ws_scheme = "wss" if parts.scheme == "https" else "ws"
        return cls(rest_url=f"{parts.scheme}://{parts.netloc}", ws_url=f"{ws_scheme}://{parts.netloc}")


LIVE = Endpoints(rest_url=LIVE_REST_URL, ws_url=LIVE_WS_URL)
TESTNET = Endpoints(rest_url=TESTNET_REST_URL, ws_url=TESTNET_WS_URL)


class Credentials(NamedTuple):
    api_key: SecretStr
    api_secret: SecretStr


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

    exchange: ExchangeSettings = ExchangeSettings()
    sim: SimSettings = SimSettings()
    ops: OpsSettings = OpsSettings()
    engine: EngineSettings = EngineSettings()
    rest: RestSettings = RestSettings()
    market: MarketSettings = MarketSettings()
    userstream: UserStreamSettings = UserStreamSettings()
    reconcile: ReconcileSettings = ReconcileSettings()
    orders: OrderSettings = OrderSettings()
    risk: RiskSettings = RiskSettings()
    journal: JournalSettings = JournalSettings()
    alerts: AlertSettings = AlertSettings()
    strategy: StrategySettings = StrategySettings()
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
            SecretFileSource(settings_cls),
            TomlSource(settings_cls, config_file.get()),
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

    @field_validator("allow_live", mode="before")
    @classmethod
    def _real_boolean(cls, value: Any) -> Any:
        # Trading real money is not enabled by "yes", "1", "on" or 1: only a boolean, or the
        # environment's "true"/"false".
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.strip().lower() in ("true", "false"):
            return value.strip().lower() == "true"
        raise ValueError(f"must be true or false, got {value!r}")

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
        if self.profile in ("live", "testnet"):
            default = LIVE if self.profile == "live" else TESTNET
            return Endpoints(
                rest_url=self.exchange.rest_url or default.rest_url, ws_url=self.exchange.ws_url or default.ws_url
            )
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


