"""Every section of the settings: its fields, types, bounds (settings.toml says what each means)."""

from __future__ import annotations

import ipaddress
from decimal import Decimal
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationInfo, field_validator

from aegis.binance.constants import MAX_STREAMS_PER_CONNECTION
from aegis.sim import fillmodel

# The simulator's documented public demo account (aegis.sim.config holds the same values; a test
# keeps them equal). Not Binance credentials.
DEMO_API_KEY = "aegis-demo-key"
DEMO_API_SECRET = "aegis-demo-secret"


# --------------------------------------------------------------------------- field types

# Intervals and timeouts: a zero or negative one would spin or never fire; inf/nan likewise.
PositiveSeconds = Annotated[float, Field(gt=0, allow_inf_nan=False)]
Port = Annotated[int, Field(ge=0, le=65535)]


def check_http_url(url: str) -> str:
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
    # Exchange time when the embedded simulator starts (epoch ms; unset: now), and whether real
    # candles sit at their own times (true: starting in the packaged data's span replays it in
    # order) or are mapped onto any epoch (false).
    start_ms: Annotated[int, Field(ge=1_500_000_000_000, le=4_100_000_000_000)] | None = None
    replay_aligned: bool = False
    # How the simulator prices taker fills: "none", "ticks:N", "bps:N" or "impact:K".
    fill_model: str = "none"
    # The simulator's public demo account (aegis.sim owns the values; not Binance credentials).
    demo_api_key: str = DEMO_API_KEY
    demo_api_secret: SecretStr = SecretStr(DEMO_API_SECRET)

    @field_validator("url")
    @classmethod
    def _url(cls, value: str | None) -> str | None:
        return None if value is None else check_http_url(value).rstrip("/")

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

    @field_validator("fill_model")
    @classmethod
    def _fill_model(cls, value: str) -> str:
        fillmodel.parse(value)  # at start-up, as one line: not a traceback when the simulator starts
        return value


class ExchangeSettings(_Section):
    """Base URLs overriding the profile's (testnet and live): Binance has moved them before."""

    rest_url: str | None = None
    ws_url: str | None = None

    @field_validator("rest_url")
    @classmethod
    def _rest(cls, value: str | None) -> str | None:
        return None if value is None else check_http_url(value).rstrip("/")

    @field_validator("ws_url")
    @classmethod
    def _ws(cls, value: str | None) -> str | None:
        if value is None:
            return None
        parts = urlsplit(value)
        if parts.scheme not in ("ws", "wss") or not parts.hostname or parts.path not in ("", "/"):
            raise ValueError(f"expected ws(s)://HOST[:PORT] without a path, got {value!r}")
        return value.rstrip("/")


class OpsSettings(_Section):
    host: str = "127.0.0.1"
    port: Port = 8787
    # /health bounds: the measured offset between this host's clock and the exchange's, and how late
    # the event loop runs a timer that was due.
    max_clock_offset_ms: Annotated[int, Field(gt=0)] = 1000
    max_loop_lag_s: PositiveSeconds = 1.0

    @field_validator("host")
    @classmethod
    def _host(cls, value: str) -> str:
        # /state and POST /reconcile have no authentication: loopback is the access control.
        if not _is_loopback(value):
            raise ValueError(f"must be a loopback address (127.0.0.1, ::1, localhost), got {value!r}")
        return value


class EngineSettings(_Section):
    shutdown_timeout_s: PositiveSeconds = 10.0
    # Where the end-of-run HTML report goes (created if missing; the operator asked for it here).
    report_dir: Path = Path("reports")
    # At start-up an exchange that does not answer (refused, timed out, 5xx, 429) is retried with
    # backoff for this long before the engine gives up (exit 1).
    startup_timeout_s: PositiveSeconds = 600.0
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
    history_candles: Annotated[int, Field(gt=0, le=100_000)] = 1000
    max_candles: Annotated[int, Field(gt=0)] = 5000
    stale_after_s: PositiveSeconds = 30.0
    # Our WebSocket pings (a dead TCP path the server cannot report); 0 sends none, which only a
    # link that cannot half-open affords: the backtest without faults (its loopback exchange).
    ping_interval_s: Annotated[float, Field(ge=0, allow_inf_nan=False)] = 60.0
    skip_dirty_windows: bool = True
    # A symbol whose newest stored closed candle is older than this is unhealthy (/health), whatever
    # its socket says; > 60 s, because a 1-minute candle closes once a minute.
    candle_stale_after_s: Annotated[float, Field(gt=60, allow_inf_nan=False)] = 180.0
    streams_per_connection: Annotated[int, Field(ge=1, le=MAX_STREAMS_PER_CONNECTION)] = MAX_STREAMS_PER_CONNECTION
    # Concurrent REST requests (the governor bounds the weight). Four keep a 300-symbol warm-up
    # near latency-bound on Binance and its burst of parse objects small (bench_footprint).
    max_in_flight: Annotated[int, Field(ge=1, le=64)] = 4
    hole_confirm_delay_s: Annotated[float, Field(ge=0, allow_inf_nan=False)] = 5.0
    repair_retry_s: PositiveSeconds = 30.0
    status_interval_s: PositiveSeconds = 1.0

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
    ping_interval_s: Annotated[float, Field(ge=0, allow_inf_nan=False)] = 60.0  # see MarketSettings


class ReconcileSettings(_Section):
    # A pass runs at start-up, whenever something may have been missed (stream reconnect, unknown
    # order outcome, unknown fill, silence with disagreement, POST /reconcile) and at this period
    # as a backstop.
    interval_s: PositiveSeconds = 900.0
    # After a failed pass (an exchange error), the next attempt comes this many seconds later.
    retry_s: PositiveSeconds = 5.0
    # /health turns 503 when no pass has completed for this long, or after this many failures in a row.
    max_age_s: PositiveSeconds = 1800.0
    max_failures: Annotated[int, Field(ge=1)] = 3
    # A mismatch is looked at again after this long (a second snapshot) before anything is done; it
    # is most of the time from a divergence to its report (bench/bench_detection.py, target < 2 s).
    recheck_delay_s: Annotated[float, Field(ge=0, allow_inf_nan=False)] = 1.0
    # What to do per mismatch class: "log" (report only), "adopt" (take the exchange's value into the
    # engine's view), "halt" (adopt, and stop new orders until an operator clears it: DELETE /halt).
    on_order: Literal["log", "adopt", "halt"] = "adopt"
    on_algo_order: Literal["log", "adopt", "halt"] = "adopt"
    on_balance: Literal["log", "adopt", "halt"] = "adopt"
    on_position: Literal["log", "adopt", "halt"] = "halt"
    # A position difference worth less than this (quote asset, at the mark) is adopted, not halted on.
    position_tolerance: Annotated[Decimal, Field(ge=0, allow_inf_nan=False)] = Decimal("1")
    # Orders the engine did not place (apps, other bots) are reported and left alone; "cancel"
    # cancels them (on the engine's symbols only).
    foreign_orders: Literal["leave", "cancel"] = "leave"
    # Realized PnL, fees and funding of the journal are compared with the exchange's income history
    # on every periodic pass (a difference beyond this, in the quote asset, is a mismatch).
    pnl_tolerance: Annotated[Decimal, Field(ge=0, allow_inf_nan=False)] = Decimal("0.01")

    @field_validator("max_age_s")
    @classmethod
    def _age_above_interval(cls, value: float, info: ValidationInfo) -> float:
        interval = info.data.get("interval_s")
        if interval is not None and value <= interval:
            raise ValueError(f"must be > interval_s ({interval}), got {value}")
        return value


NonNegativeDecimal = Annotated[Decimal, Field(ge=0, allow_inf_nan=False)]


class OrderSettings(_Section):
    # Below MIN_NOTIONAL after rounding: "refuse" the order, or "raise" it to the smallest quantity
    # that meets it (if the risk limits allow). Reduce-only orders are exempt, as on Binance.
    min_notional_policy: Literal["refuse", "raise"] = "refuse"
    # A request whose outcome is unknown (timeout after sending, 503 "Unknown error", -1007) is
    # looked for by client id (order query, open orders, trades) for this long before the exchange's
    # silence counts as "it does not exist" and the same id is sent again. Binance has shown orders
    # invisible to queries for seconds to minutes.
    unknown_outcome_window_s: PositiveSeconds = 120.0
    unknown_outcome_poll_s: PositiveSeconds = 3.0
    # A retryable failure (not sent, 5xx "Service Unavailable", -1008) is retried with the same
    # client id this many times, with backoff.
    max_retries: Annotated[int, Field(ge=0, le=20)] = 5
    # exchangeInfo is re-read this often (and at once after a -1111/-4164/-1013 rejection).
    filters_refresh_s: PositiveSeconds = 3600.0
    # Protective stops (and take-profits) trigger on this price: MARK_PRICE or CONTRACT_PRICE.
    stop_working_type: Literal["MARK_PRICE", "CONTRACT_PRICE"] = "MARK_PRICE"
    # Dead man's switch: POST /fapi/v1/countdownCancelAll for every traded symbol, so resting
    # orders are cancelled by the exchange if the engine dies (aegis.trading.deadman). 0 = off.
    countdown_cancel_s: Annotated[float, Field(ge=0, allow_inf_nan=False)] = 120.0


class RiskSettings(_Section):
    # Every intent passes these before it is sized; 0 disables a limit. Notional in the quote asset.
    max_position_notional: NonNegativeDecimal = Decimal("5000")
    max_total_notional: NonNegativeDecimal = Decimal("10000")
    max_order_notional: NonNegativeDecimal = Decimal("2500")
    max_leverage: Annotated[int, Field(ge=1, le=125)] = 5
    # Ours, below Binance's own order-count limits (300 per 10 s, 1200 per minute).
    max_orders_per_minute: Annotated[int, Field(ge=1, le=1200)] = 60
    # Realized plus unrealized loss since 00:00 UTC beyond which the kill switch engages.
    max_daily_loss: NonNegativeDecimal = Decimal("500")
    # The kill switch stops new orders when this file exists, on SIGUSR1, or by POST /kill; then,
    # by on_kill: "block" (only stop), "cancel" (also cancel open orders), "flatten" (also close
    # every position with reduce-only market orders).
    kill_switch_file: Path | None = None
    on_kill: Literal["block", "cancel", "flatten"] = "cancel"


class JournalSettings(_Section):
    # The write-ahead journal (SQLite): intents are durable before they are sent.
    path: Path = Path("aegis-journal.sqlite")
    # "normal" survives a process crash (kill -9); "full" also a power loss (an fsync per write).
    durability: Literal["normal", "full"] = "normal"


class AlertSettings(_Section):
    # Destinations as apprise URLs (tgram://, slack://, discord://, mailtos://, json://...). They
    # carry credentials: masked in `aegis config`, redacted from logs (AEGIS_ALERTS__URLS='["..."]').
    urls: list[SecretStr] = Field(default_factory=list)
    # The same alert (same subject) is sent at most once per this many seconds.
    repeat_after_s: PositiveSeconds = 900.0
    # A /health problem that lasts this long is alerted (a stream that stays down, a stale market).
    problem_after_s: PositiveSeconds = 300.0


class StrategySettings(_Section):
    # The strategy as "package.module:ClassName" (your own module works: it only has to be
    # importable), built with ClassName(**params). The default is aegis' example, not advice.
    path: str = "aegis.strategy.examples.rsi_reversion:RsiReversion"
    params: dict[str, Any] = Field(default_factory=dict)
    # false: no strategy runs (the engine watches, reconciles and serves ops, but never trades).
    enabled: bool = True


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


