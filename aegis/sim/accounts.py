"""Account state: wallet, one-way positions, orders, algo orders and trades, per API key."""

from __future__ import annotations

from bisect import bisect_left
from dataclasses import dataclass, field
from decimal import Decimal
from typing import TYPE_CHECKING

from aegis.sim.config import AccountSpec
from aegis.sim.symbols import ZERO

if TYPE_CHECKING:
    from aegis.sim.income import Income

# Assets a v3 account lists (real testnet payload); only USDT is funded unless configured.
MARGIN_ASSETS = ("FDUSD", "BNB", "ETH", "BTC", "USDT", "USDC")


@dataclass(slots=True)
class Order:
    order_id: int
    client_order_id: str
    symbol: str
    side: str
    type: str
    orig_type: str
    time_in_force: str
    orig_qty: Decimal
    price: Decimal
    stop_price: Decimal
    reduce_only: bool
    close_position: bool
    time: int
    update_time: int
    status: str = "NEW"
    executed_qty: Decimal = ZERO
    cum_quote: Decimal = ZERO
    working_type: str = "CONTRACT_PRICE"
    price_protect: bool = False
    price_match: str = "NONE"
    stp_mode: str = "NONE"
    good_till_date: int = 0
    visible_ms: int = 0  # exchange time from which queries see the order (a lag fault delays it)

    @property
    def remaining(self) -> Decimal:
        return self.orig_qty - self.executed_qty

    @property
    def avg_price(self) -> Decimal:
        return self.cum_quote / self.executed_qty if self.executed_qty else ZERO

    @property
    def is_open(self) -> bool:
        return self.status in ("NEW", "PARTIALLY_FILLED")


@dataclass(slots=True)
class AlgoOrder:
    algo_id: int
    client_algo_id: str
    symbol: str
    side: str
    order_type: str
    time_in_force: str
    quantity: Decimal
    trigger_price: Decimal
    price: Decimal
    working_type: str
    close_position: bool
    reduce_only: bool
    price_protect: bool
    create_time: int
    update_time: int
    status: str = "NEW"
    trigger_time: int = 0
    actual_order_id: int | None = None
    stp_mode: str = "EXPIRE_MAKER"
    price_match: str = "NONE"
    good_till_date: int = 0
    reject_reason: str = ""

    @property
    def is_open(self) -> bool:
        return self.status == "NEW"


@dataclass(slots=True)
class Position:
    symbol: str
    amount: Decimal = ZERO  # signed, one-way mode
    entry_price: Decimal = ZERO
    realized: Decimal = ZERO  # cumulative realized PnL ("cr")
    update_time: int = 0


@dataclass(frozen=True, slots=True)
class Trade:
    trade_id: int
    order_id: int
    symbol: str
    side: str
    price: Decimal
    qty: Decimal
    realized_pnl: Decimal
    commission: Decimal
    commission_asset: str
    time: int
    maker: bool


def _trade_time(trade: Trade) -> int:
    return trade.time


@dataclass(slots=True)
class Account:
    """One API key's account. ``listen_key`` is owned by the user-stream side (streams.py)."""

    api_key: str
    secret: str
    balances: dict[str, Decimal]
    secret_bytes: bytes = b""
    positions: dict[str, Position] = field(default_factory=dict)
    leverage: dict[str, int] = field(default_factory=dict)
    orders: dict[int, Order] = field(default_factory=dict)
    open_orders: dict[int, Order] = field(default_factory=dict)
    client_ids: dict[str, int] = field(default_factory=dict)
    algo_orders: dict[int, AlgoOrder] = field(default_factory=dict)
    # The untriggered ones (status NEW), in algo id order: algo_orders keeps every algo order ever
    # placed, and a scan of it on each new order grew with the length of a run.
    open_algos: dict[int, AlgoOrder] = field(default_factory=dict)
    client_algo_ids: dict[str, int] = field(default_factory=dict)
    trades: list[Trade] = field(default_factory=list)
    # userTrades asks by orderId or from a startTime: without these it scanned every trade of the
    # run on each call (add_trade keeps them).
    trades_by_order: dict[int, list[Trade]] = field(default_factory=dict)
    trades_in_time_order: bool = True  # false once a trade is older than the one before (a clock jump back)
    income: list[Income] = field(default_factory=list)
    income_in_time_order: bool = True  # false once a row is older than the one before (a clock jump back)
    balance_update_time: dict[str, int] = field(default_factory=dict)
    listen_key: str | None = None
    listen_key_expires_ms: int | None = None

    @classmethod
    def from_spec(cls, spec: AccountSpec) -> Account:
        balances = dict.fromkeys(MARGIN_ASSETS, ZERO)
        balances["USDT"] = spec.balance_usdt
        return cls(spec.api_key, spec.secret, balances, spec.secret.encode())

    def position(self, symbol: str) -> Position:
        pos = self.positions.get(symbol)
        if pos is None:
            pos = self.positions[symbol] = Position(symbol)
        return pos

    def amount(self, symbol: str) -> Decimal:
        pos = self.positions.get(symbol)
        return pos.amount if pos else ZERO

    def add_trade(self, trade: Trade) -> None:
        if self.trades and trade.time < self.trades[-1].time:
            self.trades_in_time_order = False
        self.trades.append(trade)
        self.trades_by_order.setdefault(trade.order_id, []).append(trade)

    def trades_since(self, start_ms: int | None) -> list[Trade]:
        """The trades (in the order they were made) from the first at or after ``start_ms`` on,
        or all of them: every trade of ``start_ms`` or later is among them."""
        if start_ms is None or not self.trades_in_time_order:
            return self.trades
        return self.trades[bisect_left(self.trades, start_ms, key=_trade_time) :]

    def open_algo(self) -> list[AlgoOrder]:
        return [a for a in self.open_algos.values() if a.is_open]
