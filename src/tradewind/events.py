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

Everything read from the bus is checked on decode (``decode``): prices of
market data are finite and positive and quantities finite and not negative
(msgspec constraints, checked in C while decoding, nearly free), strings
have bounded lengths, and the Decimal money of orders, fills and positions
is checked after decoding (those events are few). A message that fails is
the producer's fault, not the consumer's: the bus dead-letters it.
"""

from __future__ import annotations

import hashlib
import sys
from decimal import Decimal
from enum import StrEnum
from typing import Annotated, Any

import msgspec

MAX_ID_LEN = 256
MAX_NAME_LEN = 64
MAX_TEXT_LEN = 1024
MAX_ERROR_LEN = 2048
DEAD_PAYLOAD_BYTES = 4096
"""A dead letter keeps this much of the original message, with its size and hash."""

_FINITE = sys.float_info.max
Id = Annotated[str, msgspec.Meta(max_length=MAX_ID_LEN)]
Name = Annotated[str, msgspec.Meta(max_length=MAX_NAME_LEN)]
Text = Annotated[str, msgspec.Meta(max_length=MAX_TEXT_LEN)]
Price = Annotated[float, msgspec.Meta(gt=0, le=_FINITE)]
"""Finite and positive: NaN fails ``gt`` and infinity fails ``le``."""
Size = Annotated[float, msgspec.Meta(ge=0, le=_FINITE)]
Count = Annotated[int, msgspec.Meta(ge=0)]
Args = Annotated[
    dict[Annotated[str, msgspec.Meta(max_length=MAX_NAME_LEN)], Text],
    msgspec.Meta(max_length=64),
]


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
    id: Id
    ts_event: int


class Trade(_Event, tag="trade", frozen=True, gc=False):
    exchange: Name
    symbol: Name
    price: Price
    qty: Size
    side: Side | None
    trade_id: Id
    ts_recv: int


class Quote(_Event, tag="quote", frozen=True, gc=False):
    exchange: Name
    symbol: Name
    bid: Price
    bid_qty: Size
    ask: Price
    ask_qty: Size
    ts_recv: int
    update_id: int = 0


class BookDelta(_Event, tag="book", frozen=True, gc=False):
    """A change to an L2 book; ``snapshot`` replaces the whole book.

    Levels are ``(price, qty)``; qty 0 deletes the level.
    """

    exchange: Name
    symbol: Name
    bids: list[tuple[Price, Size]]
    asks: list[tuple[Price, Size]]
    snapshot: bool
    first_update_id: int
    last_update_id: int
    ts_recv: int
    prev_update_id: int | None = None


class Bar(_Event, tag="bar", frozen=True, gc=False):
    exchange: Name
    symbol: Name
    interval_s: Price
    ts_open: int
    open: Price
    high: Price
    low: Price
    close: Price
    volume: Size
    trades: Count
    ts_recv: int


class Signal(_Event, tag="signal", frozen=True):
    """A strategy's wish to trade; it becomes an order only through risk.

    The reference prices are the market as the strategy saw it, so that risk and
    the paper exchange price the decision identically in every run mode.
    """

    strategy: Name
    exchange: Name
    symbol: Name
    side: Side
    quantity: Decimal
    order_type: OrderType = OrderType.MARKET
    limit_price: Decimal | None = None
    time_in_force: TimeInForce = TimeInForce.GTC
    reduce_only: bool = False
    ref_bid: Price | None = None
    ref_ask: Price | None = None
    ref_last: Price | None = None
    reason: Text = ""
    ts_recv: int = 0


class OrderRequest(_Event, tag="order", frozen=True):
    client_order_id: Id
    signal_id: Id
    strategy: Name
    exchange: Name
    symbol: Name
    side: Side
    order_type: OrderType
    quantity: Decimal
    price: Decimal | None = None
    time_in_force: TimeInForce = TimeInForce.GTC
    reduce_only: bool = False
    ref_bid: Price | None = None
    ref_ask: Price | None = None
    ref_last: Price | None = None
    ts_recv: int = 0
    signature: Id = ""
    """Risk's HMAC over the rest of the order (``control.sign_order``): execution
    acts only on orders risk decided, whoever else can write to the bus."""


class CancelRequest(_Event, tag="cancel", frozen=True):
    client_order_id: Id
    exchange: Name
    symbol: Name
    reason: Text = ""
    ts_recv: int = 0
    signature: Id = ""


class RiskDecision(_Event, tag="decision", frozen=True):
    signal_id: Id
    client_order_id: Id
    strategy: Name
    exchange: Name
    symbol: Name
    side: Side
    quantity: Decimal
    approved: bool
    reason: Text
    detail: Text
    trading_state: TradingState
    ts_recv: int = 0


class OrderUpdate(_Event, tag="order_update", frozen=True):
    client_order_id: Id
    exchange_order_id: Id
    exchange: Name
    symbol: Name
    side: Side
    order_type: OrderType
    status: OrderStatus
    quantity: Decimal
    filled_qty: Decimal
    avg_price: Decimal | None
    price: Decimal | None = None
    reason: Text = ""
    seq: Count = 0
    ts_recv: int = 0


class Fill(_Event, tag="fill", frozen=True):
    client_order_id: Id
    exchange_order_id: Id
    exchange: Name
    symbol: Name
    side: Side
    price: Decimal
    qty: Decimal
    fee: Decimal
    fee_currency: Name
    liquidity: Liquidity
    strategy: Name = ""
    ts_recv: int = 0


class Position(_Event, tag="position", frozen=True):
    exchange: Name
    symbol: Name
    qty: Decimal
    avg_price: Decimal
    realized_pnl: Decimal
    fees: Decimal
    mark_price: Decimal | None = None
    unrealized_pnl: Decimal = Decimal(0)


class Control(_Event, tag="control", frozen=True):
    """An operator command; ``signature`` is an HMAC of the command with the
    control token, so the token itself never travels on the bus."""

    command: Name
    args: Args = {}
    issued_by: Name = ""
    signature: Id = ""


class ControlReply(_Event, tag="control_reply", frozen=True):
    request_id: Id
    ok: bool
    detail: Text
    payload: dict[str, Any] = {}


class DeadLetter(_Event, tag="dead_letter", frozen=True):
    """A message a consumer could not use. ``payload`` holds at most the first
    ``DEAD_PAYLOAD_BYTES`` of it; ``size`` and ``sha256`` describe all of it."""

    topic: Name
    message_id: Id
    group: Name
    deliveries: Count
    error: Annotated[str, msgspec.Meta(max_length=MAX_ERROR_LEN)]
    payload: Annotated[bytes, msgspec.Meta(max_length=DEAD_PAYLOAD_BYTES)]
    size: Count = 0
    sha256: Name = ""


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
    """An event from the bus, checked: raises ``msgspec.ValidationError`` (or
    ``DecodeError``) for anything a producer should never have sent."""
    event = _msgpack_decoder.decode(data)
    check = _MONEY_CHECKS.get(type(event))
    if check is not None:
        check(event)
    return event


def _bad(event: Event, field: str, value: object, want: str) -> msgspec.ValidationError:
    return msgspec.ValidationError(
        f"{type(event).__struct_config__.tag}.{field} must be {want}, got {value}"
    )


def _positive(event: Event, field: str, value: Decimal | None, optional: bool = False) -> None:
    if value is None and optional:
        return
    if value is None or not value.is_finite() or value <= 0:
        raise _bad(event, field, value, "a finite positive number")


def _finite(event: Event, field: str, value: Decimal | None, optional: bool = False) -> None:
    if value is None and optional:
        return
    if value is None or not value.is_finite():
        raise _bad(event, field, value, "a finite number")


def _not_negative(event: Event, field: str, value: Decimal) -> None:
    if not value.is_finite() or value < 0:
        raise _bad(event, field, value, "a finite number not below 0")


def _check_signal(e: Any) -> None:
    _positive(e, "quantity", e.quantity)
    _positive(e, "limit_price", e.limit_price, optional=True)


def _check_order(e: Any) -> None:
    _positive(e, "quantity", e.quantity)
    _positive(e, "price", e.price, optional=True)


def _check_decision(e: Any) -> None:
    _not_negative(e, "quantity", e.quantity)


def _check_update(e: Any) -> None:
    _not_negative(e, "quantity", e.quantity)
    _not_negative(e, "filled_qty", e.filled_qty)
    _positive(e, "avg_price", e.avg_price, optional=True)
    _positive(e, "price", e.price, optional=True)


def _check_fill(e: Any) -> None:
    _positive(e, "price", e.price)
    _positive(e, "qty", e.qty)
    _finite(e, "fee", e.fee)  # negative: a maker rebate


def _check_position(e: Any) -> None:
    _finite(e, "qty", e.qty)
    _not_negative(e, "avg_price", e.avg_price)
    _finite(e, "realized_pnl", e.realized_pnl)
    _finite(e, "fees", e.fees)
    _positive(e, "mark_price", e.mark_price, optional=True)
    _finite(e, "unrealized_pnl", e.unrealized_pnl)


_MONEY_CHECKS: dict[type, Any] = {
    Signal: _check_signal,
    OrderRequest: _check_order,
    RiskDecision: _check_decision,
    OrderUpdate: _check_update,
    Fill: _check_fill,
    Position: _check_position,
}
"""Decimal fields msgspec cannot constrain, checked after decoding."""


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
