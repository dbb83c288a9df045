"""What a live venue adapter offers the router, and how it fails.

Failures are sorted by what they mean for the order, because that decides
what the router may do next:

- ``VenueRejected``: the venue refused it; the order does not exist there.
- ``VenueBusy``: rate limited (HTTP 429/418); the request was not processed;
  do not send before ``retry_after`` seconds.
- ``VenueUnknown``: no usable answer (timeout, dropped connection, 5xx); the
  order may or may not exist. Settled by looking it up, never by resending.
- ``VenueError``: anything else transient on a read-only call.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import AsyncIterator
from decimal import Decimal

import msgspec

from tradewind.events import Liquidity, OrderRequest, OrderStatus, Side


class VenueError(Exception):
    kind = "error"


class VenueRejected(VenueError):
    kind = "rejected"

    def __init__(self, message: str, code: int | None = None) -> None:
        super().__init__(message)
        self.code = code


class VenueBusy(VenueError):
    kind = "rate_limited"

    def __init__(self, message: str, retry_after: float) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class VenueUnknown(VenueError):
    kind = "unknown_outcome"


class StartCheckFailed(Exception):
    """A check before trading failed; the message is the one line to show."""


class VenueFill(msgspec.Struct, frozen=True, kw_only=True):
    trade_id: str
    client_order_id: str
    price: Decimal
    qty: Decimal
    fee: Decimal
    fee_currency: str
    liquidity: Liquidity
    ts: int


class VenueOrder(msgspec.Struct, frozen=True, kw_only=True):
    """The venue's view of one order; ``status`` already in Tradewind's terms."""

    client_order_id: str
    exchange_order_id: str
    symbol: str
    side: Side
    status: OrderStatus
    quantity: Decimal
    filled_qty: Decimal
    ts: int
    fills: tuple[VenueFill, ...] = ()


class Venue(ABC):
    """A live exchange account. Every call has a timeout; none blocks the loop."""

    exchange: str = ""

    @property
    def settle_window_s(self) -> float:
        """After this long an order the venue does not know can never appear
        (for Binance: the request's recvWindow plus clock skew)."""
        return 10.0

    async def start(self) -> None:
        return None

    async def close(self) -> None:
        return None

    async def start_checks(self, symbols: list[str]) -> list[str]:
        """Before live trading: raise ``StartCheckFailed`` if the account cannot
        trade ``symbols``; else the lines to show (balances and the like)."""
        try:
            bal = await self.balances()
        except VenueError as exc:
            raise StartCheckFailed(f"{self.exchange}: account check failed: {exc}") from None
        shown = ", ".join(f"{a} {v.normalize():f}" for a, v in sorted(bal.items())) or "none"
        return [f"balances: {shown}"]

    @abstractmethod
    async def place(self, o: OrderRequest) -> VenueOrder:
        """Send a new order once."""

    @abstractmethod
    async def cancel(self, symbol: str, client_order_id: str) -> VenueOrder | None:
        """Cancel; None when the venue does not know the order."""

    @abstractmethod
    async def query(self, symbol: str, client_order_id: str) -> VenueOrder | None:
        """The order by client order id; None when the venue does not know it."""

    @abstractmethod
    async def open_orders(self, symbol: str | None = None) -> list[VenueOrder]: ...

    @abstractmethod
    async def fills(self, symbol: str, order: VenueOrder) -> list[VenueFill]:
        """Every fill of one order."""

    @abstractmethod
    async def balances(self) -> dict[str, Decimal]: ...

    @abstractmethod
    def reports(self) -> AsyncIterator[VenueOrder | None]:
        """Order reports as they happen; ``None`` after each (re)connect, when
        reports may have been missed and the caller should reconcile."""
