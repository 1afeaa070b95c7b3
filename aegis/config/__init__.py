"""aegis configuration: one validated, immutable ``Settings`` for the whole engine.

``schema`` defines it, ``sources`` reads settings.toml and secret files, ``loading`` merges
everything and words the errors, ``dump`` prints the effective configuration.
"""

from aegis.config.dump import MASK, masked_dump
from aegis.config.loading import DEFAULT_CONFIG_FILE, load_settings, resolve_config_path
from aegis.config.schema import (
    LIVE,
    TESTNET,
    Credentials,
    EndpointProfile,
    Endpoints,
    Settings,
)
from aegis.config.sections import (
    DEMO_API_KEY,
    DEMO_API_SECRET,
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
)
from aegis.config.sources import ENV_PREFIX, SECRET_FIELDS, ConfigError

__all__ = [
    "DEFAULT_CONFIG_FILE",
    "DEMO_API_KEY",
    "DEMO_API_SECRET",
    "ENV_PREFIX",
    "LIVE",
    "MASK",
    "SECRET_FIELDS",
    "TESTNET",
    "AlertSettings",
    "ConfigError",
    "Credentials",
    "EndpointProfile",
    "Endpoints",
    "EngineSettings",
    "ExchangeSettings",
    "JournalSettings",
    "LoggingSettings",
    "MarketSettings",
    "OpsSettings",
    "OrderSettings",
    "ReconcileSettings",
    "RestSettings",
    "RiskSettings",
    "Settings",
    "SimSettings",
    "StrategySettings",
    "UserStreamSettings",
    "load_settings",
    "masked_dump",
    "resolve_config_path",
]
