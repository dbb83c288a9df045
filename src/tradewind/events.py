"""The events that flow between services.

Every event is a frozen, tagged ``msgspec.Struct`` encoded as an array so that
msgpack frames on Redis stay small. Timestamps are integer nanoseconds:
``ts_event`` is the exchange's time (or the time the producing decision was
made), ``ts_recv`` the local receive time of the market tick that started the
causal chain, so that every hop can report latency from the tick. Every event
has a stable ``id``: replaying the same input yields the same ids, which is what
makes every consumer idempotent. Money on orders and fills is ``Decimal``;
floats are only for market data and indicators.

Market data events are declared ``gc=False``: the cyclic collector never
tracks them. They are the bulk of all allocations (a backtest makes millions),
and a ``Trade`` holding a ``Side`` member would otherwise be tracked and
rescanned by every young-generation collection. They hold only scalars and
lists of float pairs that nothing appends to, so they cannot be part of a
cycle; don't give them a field that could refer back to an object. The
other events are few and some carry dicts, so they stay tracked.
"""

from __future__ import annotations

import hashlib
from decimal import Decimal
from enum import StrEnum
from typing import Any

import msgspec


class Side(StrEnum):
    BUY = "buy"
    SELL = "sell"

    @property
    def sign(self) -> int:
        return 1 if self is Side.BUY else -1

    @property
    def opposite(self) -> Side:
        return Side.SELL if self is Side.BUY else Side.BUY


class OrderType(StrEnum):
    MARKET = "market"
    LIMIT = "limit"


class TimeInForce(StrEnum):
    GTC = "gtc"
    IOC = "ioc"
    FOK = "fok"
    POST_ONLY = "post_only"


class OrderStatus(StrEnum):
    NEW = "new"
    SUBMITTED = "submitted"
    ACCEPTED = "accepted"
    PARTIALLY_FILLED = "partially_filled"
    FILLED = "filled"
    CANCELED = "canceled"
    REJECTED = "rejected"
    EXPIRED = "expired"

    @property
    def terminal(self) -> bool:
        return self in _TERMINAL


_TERMINAL = frozenset(
    {OrderStatus.FILLED, OrderStatus.CANCELED, OrderStatus.REJECTED, OrderStatus.EXPIRED}
)


class TradingState(StrEnum):
    ACTIVE = "active"
    REDUCING = "reducing"
    HALTED = "halted"


class Liquidity(StrEnum):
    MAKER = "maker"
    TAKER = "taker"


class _Event(msgspec.Struct, frozen=True, array_like=True, tag_field="t", kw_only=True):
    id: str
    ts_event: int


class Trade(_Event, tag="trade", frozen=True, gc=False):
    exchange: str
    symbol: str
    price: float
    qty: float
    side: Side | None
    trade_id: str
    ts_recv: int


class Quote(_Event, tag="quote", frozen=True, gc=False):
    exchange: str
    symbol: str
    bid: float
    bid_qty: float
    ask: float
    ask_qty: float
    ts_recv: int
    update_id: int = 0


class BookDelta(_Event, tag="book", frozen=True, gc=False):
    """A change to an L2 book; ``snapshot`` replaces the whole book.

    Levels are ``(price, qty)``; qty 0 deletes the level.
    """

    exchange: str
    symbol: str
    bids: list[tuple[float, float]]
    asks: list[tuple[float, float]]
    snapshot: bool
    first_update_id: int
    last_update_id: int
    ts_recv: int
    prev_update_id: int | None = None


class Bar(_Event, tag="bar", frozen=True, gc=False):
    exchange: str
    symbol: str
    interval_s: float
    ts_open: int
    open: float
    high: float
    low: float
    close: float
    volume: float
    trades: int
    ts_recv: int


class Signal(_Event, tag="signal", frozen=True):
    """A strategy's wish to trade; it becomes an order only through risk.

    The reference prices are the market as the strategy saw it, so that risk and
    the paper exchange price the decision identically in every run mode.
    """

    strategy: str
    exchange: str
    symbol: str
    side: Side
    quantity: Decimal
    order_type: OrderType = OrderType.MARKET
    limit_price: Decimal | None = None
    time_in_force: TimeInForce = TimeInForce.GTC
    reduce_only: bool = False
    ref_bid: float | None = None
    ref_ask: float | None = None
    ref_last: float | None = None
    reason: str = ""
    ts_recv: int = 0


class OrderRequest(_Event, tag="order", frozen=True):
    client_order_id: str
    signal_id: str
    strategy: str
    exchange: str
    symbol: str
    side: Side
    order_type: OrderType
    quantity: Decimal
    price: Decimal | None = None
    time_in_force: TimeInForce = TimeInForce.GTC
    reduce_only: bool = False
    ref_bid: float | None = None
    ref_ask: float | None = None
    ref_last: float | None = None
    ts_recv: int = 0
    signature: str = ""
    """Risk's HMAC over the rest of the order (``control.sign_order``): execution
    acts only on orders risk decided, whoever else can write to the bus."""


class CancelRequest(_Event, tag="cancel", frozen=True):
    client_order_id: str
    exchange: str
    symbol: str
    reason: str = ""
    ts_recv: int = 0
    signature: str = ""


class RiskDecision(_Event, tag="decision", frozen=True):
    signal_id: str
    client_order_id: str
    strategy: str
    exchange: str
    symbol: str
    side: Side
    quantity: Decimal
    approved: bool
    reason: str
    detail: str
    trading_state: TradingState
    ts_recv: int = 0


class OrderUpdate(_Event, tag="order_update", frozen=True):
    client_order_id: str
    exchange_order_id: str
    exchange: str
    symbol: str
    side: Side
    order_type: OrderType
    status: OrderStatus
    quantity: Decimal
    filled_qty: Decimal
    avg_price: Decimal | None
    price: Decimal | None = None
    reason: str = ""
    seq: int = 0
    ts_recv: int = 0


class Fill(_Event, tag="fill", frozen=True):
    client_order_id: str
    exchange_order_id: str
    exchange: str
    symbol: str
    side: Side
    price: Decimal
    qty: Decimal
    fee: Decimal
    fee_currency: str
    liquidity: Liquidity
    strategy: str = ""
    ts_recv: int = 0


class Position(_Event, tag="position", frozen=True):
    exchange: str
    symbol: str
    qty: Decimal
    avg_price: Decimal
    realized_pnl: Decimal
    fees: Decimal
    mark_price: Decimal | None = None
    unrealized_pnl: Decimal = Decimal(0)


class Control(_Event, tag="control", frozen=True):
    """An operator command; ``signature`` is an HMAC of the command with the
    control token, so the token itself never travels on the bus."""

    command: str
    args: dict[str, str] = {}
    issued_by: str = ""
    signature: str = ""


class ControlReply(_Event, tag="control_reply", frozen=True):
    request_id: str
    ok: bool
    detail: str
    payload: dict[str, Any] = {}


class DeadLetter(_Event, tag="dead_letter", frozen=True):
    topic: str
    message_id: str
    group: str
    deliveries: int
    error: str
    payload: bytes


MarketEvent = Trade | Quote | BookDelta | Bar
Event = (
    Trade
    | Quote
    | BookDelta
    | Bar
    | Signal
    | OrderRequest
    | CancelRequest
    | RiskDecision
    | OrderUpdate
    | Fill
    | Position
    | Control
    | ControlReply
    | DeadLetter
)

_msgpack_encoder = msgspec.msgpack.Encoder(decimal_format="string")
_msgpack_decoder: msgspec.msgpack.Decoder[Event] = msgspec.msgpack.Decoder(Event)
_json_encoder = msgspec.json.Encoder(decimal_format="string")


def encode(event: Event) -> bytes:
    return _msgpack_encoder.encode(event)


def decode(data: bytes) -> Event:
    return _msgpack_decoder.decode(data)


def to_dict(event: Event) -> dict[str, Any]:
    """A named-field view for people (logs, JSON exports, the CLI)."""
    out: dict[str, Any] = {"type": type(event).__struct_config__.tag}
    out.update(msgspec.structs.asdict(event))
    return out


def to_json(event: Event) -> bytes:
    return _json_encoder.encode(to_dict(event))


def client_order_id(signal_id: str) -> str:
    """Deterministic client order id for a signal.

    Derived, never random, so that a redelivered or replayed signal maps to the
    same exchange order and can never be sent twice. 26 characters from Binance's
    allowed alphabet (``[.A-Z:/a-z0-9_-]{1,36}``).
    """
    return "tw" + hashlib.blake2b(signal_id.encode(), digest_size=12).hexdigest()
