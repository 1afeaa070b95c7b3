"""Binance's JSON shapes as msgspec Structs: decoded and type-checked in one C pass.

Field names are Binance's own (one-letter stream keys included) so a reader can hold this
file next to the docs. Numbers that Binance sends as strings are typed ``Decimal``; ids
are ``int`` (19-digit order ids stay exact). Fields that appeared in later API versions,
or that recordings lack, have defaults. Unknown keys are ignored: Binance adds fields.
"""

from __future__ import annotations

from decimal import Decimal

import msgspec

ZERO = Decimal(0)

# --- market data -------------------------------------------------------------------------


class WsKlineText(msgspec.Struct, gc=False):
    """The market feed's one decode of every kline frame: numbers stay text until a candle closes.

    Forming updates (most frames) only need ``c`` for a last-price view; the few closed ones
    become a ``Candle`` (``aegis.binance.parse.tick_candle``) without decoding the frame again.
    """

    t: int
    T: int
    s: str
    o: str
    c: str
    h: str
    l: str  # noqa: E741 - Binance's key
    v: str
    n: int
    x: bool
    q: str
    V: str
    Q: str


class WsKlineTick(msgspec.Struct, gc=False):
    E: int
    k: WsKlineText


class WsKlineTickCombined(msgspec.Struct, gc=False):
    data: WsKlineTick


class IncomeRow(msgspec.Struct, gc=False):
    symbol: str = ""
    incomeType: str = ""
    income: Decimal = ZERO
    asset: str = ""
    time: int = 0
    tranId: int = 0
    tradeId: str = ""


class KlineRow(msgspec.Struct, array_like=True, gc=False):
    """One REST kline row (a 12-element array, oldest first)."""

    open_time: int
    open: Decimal
    high: Decimal
    low: Decimal
    close: Decimal
    volume: Decimal
    close_time: int
    quote_volume: Decimal
    trades: int
    taker_buy_base: Decimal
    taker_buy_quote: Decimal


class ServerTime(msgspec.Struct):
    serverTime: int


# --- exchangeInfo ------------------------------------------------------------------------


class RateLimit(msgspec.Struct):
    rateLimitType: str
    interval: str
    intervalNum: int
    limit: int


class Filter(msgspec.Struct):
    """Every filter type in one shape; which fields are set depends on ``filterType``."""

    filterType: str
    minPrice: Decimal | None = None
    maxPrice: Decimal | None = None
    tickSize: Decimal | None = None
    minQty: Decimal | None = None
    maxQty: Decimal | None = None
    stepSize: Decimal | None = None
    notional: Decimal | None = None
    multiplierUp: Decimal | None = None
    multiplierDown: Decimal | None = None
    limit: int | None = None


class SymbolInfo(msgspec.Struct):
    symbol: str
    status: str
    baseAsset: str
    quoteAsset: str
    filters: list[Filter]
    contractType: str = ""
    pricePrecision: int | None = None
    quantityPrecision: int | None = None


class ExchangeInfoBody(msgspec.Struct):
    """Symbols kept raw: the fallback when the typed decode fails, so one odd symbol is skipped."""

    rateLimits: list[RateLimit]
    symbols: list[msgspec.Raw]


class ExchangeInfoTyped(msgspec.Struct):
    """The fast path: the whole document in one typed decode."""

    rateLimits: list[RateLimit]
    symbols: list[SymbolInfo]


# --- orders, trades, account -------------------------------------------------------------


class OrderResponse(msgspec.Struct):
    """POST/GET/DELETE /fapi/v1/order and openOrders elements (ACK and RESULT shapes)."""

    orderId: int
    symbol: str
    status: str
    clientOrderId: str
    side: str
    type: str
    price: Decimal = ZERO
    avgPrice: Decimal = ZERO
    origQty: Decimal = ZERO
    executedQty: Decimal = ZERO
    timeInForce: str | None = None
    reduceOnly: bool = False
    closePosition: bool = False
    stopPrice: Decimal = ZERO
    positionSide: str = "BOTH"
    updateTime: int = 0
    time: int = 0


class AlgoOrderResponse(msgspec.Struct):
    """POST/GET/DELETE /fapi/v1/algoOrder."""

    algoId: int
    clientAlgoId: str
    symbol: str = ""
    side: str = ""
    orderType: str = ""
    algoStatus: str = ""
    quantity: Decimal = ZERO
    triggerPrice: Decimal = ZERO
    price: Decimal = ZERO
    positionSide: str = "BOTH"
    reduceOnly: bool = False
    closePosition: bool = False
    updateTime: int = 0
    actualOrderId: int | str | None = None


class AlgoCancel(msgspec.Struct):
    """DELETE /fapi/v1/algoOrder answers only the ids (and code "200")."""

    algoId: int
    clientAlgoId: str = ""


class UserTrade(msgspec.Struct):
    symbol: str
    id: int
    orderId: int
    side: str
    price: Decimal
    qty: Decimal
    realizedPnl: Decimal
    commission: Decimal
    commissionAsset: str
    time: int
    maker: bool
    positionSide: str = "BOTH"


class PositionRisk(msgspec.Struct):
    """GET /fapi/v3/positionRisk element; ccxt recordings stringify ``updateTime``."""

    symbol: str
    positionAmt: Decimal
    entryPrice: Decimal
    positionSide: str = "BOTH"
    unRealizedProfit: Decimal = ZERO
    updateTime: int | str = 0


class AccountAsset(msgspec.Struct):
    asset: str
    walletBalance: Decimal
    crossWalletBalance: Decimal | None = None
    availableBalance: Decimal | None = None
    updateTime: int | str = 0


class Account(msgspec.Struct):
    """GET /fapi/v3/account (positions there lack entry prices: use positionRisk)."""

    assets: list[AccountAsset]
    totalWalletBalance: Decimal | None = None
    availableBalance: Decimal | None = None


class BalanceEntry(msgspec.Struct):
    """GET /fapi/v3/balance element."""

    asset: str
    balance: Decimal
    crossWalletBalance: Decimal | None = None
    availableBalance: Decimal | None = None
    updateTime: int | str = 0


class ListenKey(msgspec.Struct):
    listenKey: str


class PositionMode(msgspec.Struct):
    """GET /fapi/v1/positionSide/dual; some answers carry the flag as a string."""

    dualSidePosition: bool | str


class Leverage(msgspec.Struct):
    leverage: int
    symbol: str = ""


# --- user data stream --------------------------------------------------------------------


class WsOrder(msgspec.Struct):
    s: str
    c: str
    S: str
    o: str
    X: str
    x: str
    i: int
    q: Decimal
    p: Decimal
    ap: Decimal
    l: Decimal  # noqa: E741 - Binance's key
    z: Decimal
    L: Decimal
    T: int
    t: int = 0
    f: str | None = None
    sp: Decimal = ZERO
    n: Decimal = ZERO
    N: str = ""
    m: bool = False
    R: bool = False
    cp: bool = False
    ps: str = "BOTH"
    rp: Decimal = ZERO
    er: str | int | None = None


class WsOrderTradeUpdate(msgspec.Struct):
    E: int
    T: int
    o: WsOrder


class WsTradeLite(msgspec.Struct):
    E: int
    T: int
    s: str
    c: str
    S: str
    L: Decimal
    l: Decimal  # noqa: E741 - Binance's key
    t: int
    i: int
    m: bool = False


class WsBalance(msgspec.Struct):
    a: str
    wb: Decimal
    cw: Decimal | None = None


class WsPosition(msgspec.Struct):
    s: str
    pa: Decimal
    ep: Decimal = ZERO
    up: Decimal = ZERO
    ps: str = "BOTH"


class WsAccountData(msgspec.Struct):
    m: str = ""
    B: list[WsBalance] = msgspec.field(default_factory=list)
    P: list[WsPosition] = msgspec.field(default_factory=list)


class WsAccountUpdate(msgspec.Struct):
    E: int
    T: int
    a: WsAccountData


class WsMarginPosition(msgspec.Struct):
    s: str
    pa: Decimal
    ps: str = "BOTH"
    up: Decimal = ZERO


class WsMarginCall(msgspec.Struct):
    E: int
    p: list[WsMarginPosition] = msgspec.field(default_factory=list)
    cw: Decimal | None = None


class WsLeverage(msgspec.Struct):
    s: str
    l: int  # noqa: E741 - Binance's key


class WsMultiAssets(msgspec.Struct):
    j: bool


class WsAccountConfigUpdate(msgspec.Struct):
    E: int
    ac: WsLeverage | None = None
    ai: WsMultiAssets | None = None


class WsAlgo(msgspec.Struct):
    aid: int
    caid: str
    s: str
    S: str
    o: str
    X: str
    q: Decimal = ZERO
    tp: Decimal = ZERO
    ai: int | str | None = None
    R: bool = False
    cp: bool = False
    rm: str | None = None


class WsAlgoUpdate(msgspec.Struct):
    E: int
    o: WsAlgo


class WsListenKeyExpired(msgspec.Struct):
    """``E`` is a number in older docs, a string in newer ones."""

    E: int | str
    listenKey: str = ""
