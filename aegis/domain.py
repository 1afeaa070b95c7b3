"""Immutable value types of the engine, exchange-agnostic and Decimal throughout.

Every price, quantity, balance and fee is a ``Decimal``: these types travel from the wire
to the order path, where a float would be rounded into a rejection. Parsing from Binance
JSON lives in ``aegis.binance``; nothing here knows the wire format.
"""

from __future__ import annotations

from decimal import Decimal
from enum import StrEnum

import msgspec

ZERO = Decimal(0)
MINUTE_MS = 60_000  # candles are 1-minute klines; their open times are multiples of this


class Side(StrEnum):
    BUY = "BUY"
    SELL = "SELL"

    @property
    def sign(self) -> int:
        return 1 if self is Side.BUY else -1


class OrderType(StrEnum):
    LIMIT = "LIMIT"
    MARKET = "MARKET"
    STOP = "STOP"
    STOP_MARKET = "STOP_MARKET"
    TAKE_PROFIT = "TAKE_PROFIT"
    TAKE_PROFIT_MARKET = "TAKE_PROFIT_MARKET"
    TRAILING_STOP_MARKET = "TRAILING_STOP_MARKET"
    LIQUIDATION = "LIQUIDATION"


class TimeInForce(StrEnum):
    GTC = "GTC"
    IOC = "IOC"
    FOK = "FOK"
    GTX = "GTX"
    GTD = "GTD"
    RPI = "RPI"


class OrderStatus(StrEnum):
    NEW = "NEW"
    PARTIALLY_FILLED = "PARTIALLY_FILLED"
    FILLED = "FILLED"
    CANCELED = "CANCELED"
    REJECTED = "REJECTED"
    EXPIRED = "EXPIRED"
    EXPIRED_IN_MATCH = "EXPIRED_IN_MATCH"

    @property
    def is_open(self) -> bool:
        return self in (OrderStatus.NEW, OrderStatus.PARTIALLY_FILLED)


class ExecutionType(StrEnum):
    NEW = "NEW"
    TRADE = "TRADE"
    CANCELED = "CANCELED"
    EXPIRED = "EXPIRED"
    CALCULATED = "CALCULATED"
    AMENDMENT = "AMENDMENT"
    REJECTED = "REJECTED"


class Candle(msgspec.Struct, frozen=True, gc=False):
    """One closed (or forming) 1-minute kline, with every field Binance reports."""

    symbol: str
    open_time_ms: int
    open: Decimal
    high: Decimal
    low: Decimal
    close: Decimal
    volume: Decimal
    close_time_ms: int
    quote_volume: Decimal
    trades: int
    taker_buy_base: Decimal
    taker_buy_quote: Decimal


class SymbolFilters(msgspec.Struct, frozen=True):
    """What the exchange allows for one symbol; sizing rounds against these, never precision hints."""

    symbol: str
    status: str
    base_asset: str
    quote_asset: str
    contract_type: str
    tick_size: Decimal
    min_price: Decimal
    max_price: Decimal
    step_size: Decimal
    min_qty: Decimal
    max_qty: Decimal
    market_step_size: Decimal
    market_min_qty: Decimal
    market_max_qty: Decimal
    min_notional: Decimal
    percent_up: Decimal | None = None
    percent_down: Decimal | None = None
    max_num_orders: int | None = None
    price_precision: int | None = None
    quantity_precision: int | None = None

    @property
    def trading(self) -> bool:
        return self.status == "TRADING"


class OrderRequest(msgspec.Struct, frozen=True):
    """An order the engine intends to send; the client order id makes retries idempotent."""

    symbol: str
    side: Side
    type: OrderType
    quantity: Decimal | None
    client_order_id: str
    price: Decimal | None = None
    time_in_force: TimeInForce | None = None
    reduce_only: bool = False
    trigger_price: Decimal | None = None
    close_position: bool = False


class Order(msgspec.Struct, frozen=True):
    """An order as the exchange reports it. ``order_id`` may exceed 2**53: it is an int, never a float."""

    symbol: str
    order_id: int
    client_order_id: str
    side: Side
    type: OrderType
    status: OrderStatus
    price: Decimal
    orig_qty: Decimal
    executed_qty: Decimal
    avg_price: Decimal
    time_in_force: TimeInForce | None
    reduce_only: bool
    update_time_ms: int
    stop_price: Decimal = ZERO
    close_position: bool = False
    position_side: str = "BOTH"


class AlgoOrder(msgspec.Struct, frozen=True):
    """A conditional (algo) order as the exchange reports it; ``triggered_order_id`` once it fired."""

    symbol: str
    algo_id: int
    client_algo_id: str
    side: Side
    type: OrderType
    status: str
    quantity: Decimal
    trigger_price: Decimal
    price: Decimal = ZERO
    reduce_only: bool = False
    close_position: bool = False
    update_time_ms: int = 0
    triggered_order_id: int | None = None
    position_side: str = "BOTH"


class Fill(msgspec.Struct, frozen=True):
    """One trade against one of our orders; ``trade_id`` is the deduplication key."""

    symbol: str
    order_id: int
    client_order_id: str
    trade_id: int
    side: Side
    price: Decimal
    quantity: Decimal
    commission: Decimal
    commission_asset: str
    realized_pnl: Decimal
    maker: bool
    time_ms: int


class Income(msgspec.Struct, frozen=True):
    """One row of the account's income history: realized PnL, a commission, a funding fee..."""

    symbol: str
    type: str  # REALIZED_PNL, COMMISSION, FUNDING_FEE, TRANSFER, INSURANCE_CLEAR...
    amount: Decimal
    asset: str
    time_ms: int
    tran_id: int
    trade_id: str = ""


class Position(msgspec.Struct, frozen=True):
    """One-way mode position: ``amount`` is signed (negative = short).

    ``position_side`` is BOTH in one-way mode; in hedge mode LONG / SHORT tell the two legs apart.
    """

    symbol: str
    amount: Decimal
    entry_price: Decimal
    unrealized_pnl: Decimal = ZERO
    update_time_ms: int = 0
    position_side: str = "BOTH"

    @property
    def is_flat(self) -> bool:
        return self.amount == 0


class Balance(msgspec.Struct, frozen=True):
    asset: str
    wallet_balance: Decimal
    cross_wallet_balance: Decimal | None = None
    available_balance: Decimal | None = None
    update_time_ms: int = 0


# --- stream events -----------------------------------------------------------------------


class KlineEvent(msgspec.Struct, frozen=True, gc=False):
    """A kline stream update; only ``closed`` ones are history."""

    event_time_ms: int
    candle: Candle
    closed: bool


class OrderUpdate(msgspec.Struct, frozen=True):
    """ORDER_TRADE_UPDATE: the order's new state, and the fill when ``execution`` is TRADE."""

    event_time_ms: int
    transaction_time_ms: int
    execution: ExecutionType
    order: Order
    fill: Fill | None = None
    expire_reason: str | None = None


class TradeLite(msgspec.Struct, frozen=True):
    """TRADE_LITE: a fill that may arrive before the order's NEW acknowledgement."""

    event_time_ms: int
    fill: Fill


class AccountUpdate(msgspec.Struct, frozen=True):
    """ACCOUNT_UPDATE: only the changed balances and positions (a closed position has amount 0)."""

    event_time_ms: int
    transaction_time_ms: int
    reason: str
    balances: tuple[Balance, ...]
    positions: tuple[Position, ...]


class AlgoUpdate(msgspec.Struct, frozen=True):
    """ALGO_UPDATE: a conditional order's life; once triggered it reports as a normal order."""

    event_time_ms: int
    symbol: str
    algo_id: int
    client_algo_id: str
    side: Side
    type: OrderType
    status: str
    quantity: Decimal
    trigger_price: Decimal
    triggered_order_id: int | None = None
    reduce_only: bool = False
    close_position: bool = False
    reject_reason: str | None = None


class MarginCall(msgspec.Struct, frozen=True):
    """MARGIN_CALL: advisory; liquidation may already have happened."""

    event_time_ms: int
    cross_wallet_balance: Decimal | None
    positions: tuple[Position, ...]


class AccountConfigUpdate(msgspec.Struct, frozen=True):
    """ACCOUNT_CONFIG_UPDATE: leverage of a symbol, or the multi-assets mode."""

    event_time_ms: int
    symbol: str | None = None
    leverage: int | None = None
    multi_assets: bool | None = None


class ListenKeyExpired(msgspec.Struct, frozen=True):
    """Nothing more arrives on this key: a new key and a new connection are needed."""

    event_time_ms: int
    listen_key: str


UserEvent = (
    OrderUpdate | TradeLite | AccountUpdate | AlgoUpdate | MarginCall | AccountConfigUpdate | ListenKeyExpired
)
