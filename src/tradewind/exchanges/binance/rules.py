"""Symbol rules from ``GET /api/v3/exchangeInfo``, checked before an order is sent.

Binance refuses an order that breaks a filter (-1013) only after it has spent
request weight and an order-rate slot; a price off the tick is a bug in the
strategy or the rounding, so it is caught here, on the exact decimals that
will be sent. The filters modelled are those a plain LIMIT/MARKET order meets:
PRICE_FILTER, LOT_SIZE, MARKET_LOT_SIZE, MIN_NOTIONAL (older symbols) and
NOTIONAL (with ``applyMinToMarket``/``applyMaxToMarket``); a market order's
notional is estimated on the last known price. A symbol whose status is not
``TRADING`` takes no new order (``BREAK``, ``HALT``, ``END_OF_DAY``; under
``CANCEL_ONLY`` a cancel still works). An answer that does not decode into
these shapes is refused whole, never half trusted.
"""

from __future__ import annotations

from decimal import Decimal, InvalidOperation

import msgspec

from tradewind.events import OrderRequest, OrderType

ZERO = Decimal(0)


class _Filter(msgspec.Struct, kw_only=True):
    filterType: str
    minPrice: str = "0"
    maxPrice: str = "0"
    tickSize: str = "0"
    minQty: str = "0"
    maxQty: str = "0"
    stepSize: str = "0"
    minNotional: str = "0"
    maxNotional: str = "0"
    applyToMarket: bool = True
    applyMinToMarket: bool = True
    applyMaxToMarket: bool = False


class _Symbol(msgspec.Struct, kw_only=True):
    symbol: str
    status: str
    baseAsset: str
    quoteAsset: str
    orderTypes: list[str] = []
    filters: list[_Filter] = []


class _Info(msgspec.Struct):
    symbols: list[_Symbol]
    serverTime: int = 0


_info = msgspec.json.Decoder(_Info)


class Range(msgspec.Struct, frozen=True):
    low: Decimal
    high: Decimal
    """0: no upper bound."""
    step: Decimal
    """0: any value."""

    def problem(self, name: str, v: Decimal) -> str | None:
        if v < self.low:
            return f"{name} {v} is below the minimum {self.low}"
        if self.high > 0 and v > self.high:
            return f"{name} {v} is above the maximum {self.high}"
        if self.step > 0 and (v - self.low) % self.step != 0:
            return f"{name} {v} is not a multiple of {self.step} from {self.low}"
        return None


class SymbolRules(msgspec.Struct, frozen=True):
    symbol: str
    status: str
    base: str
    quote: str
    order_types: frozenset[str]
    price: Range | None
    lot: Range | None
    market_lot: Range | None
    min_notional: Decimal
    max_notional: Decimal
    min_to_market: bool
    max_to_market: bool

    def problem(self, o: OrderRequest, last_price: Decimal | None) -> str | None:
        """Why Binance would refuse this order, or None."""
        if self.status != "TRADING":
            return f"{self.symbol} is {self.status}, not TRADING"
        market = o.order_type is OrderType.MARKET
        lot = (self.market_lot or self.lot) if market else self.lot
        if lot is not None and (bad := lot.problem("quantity", o.quantity)):
            return bad
        if (
            not market
            and o.price is not None
            and self.price is not None
            and (bad := self.price.problem("price", o.price))
        ):
            return bad
        px = last_price if market else o.price
        if px is None:
            return None
        notional = px * o.quantity
        if (
            self.min_notional > 0
            and (not market or self.min_to_market)
            and notional < self.min_notional
        ):
            return f"notional {notional} is below the minimum {self.min_notional}"
        if (
            self.max_notional > 0
            and (not market or self.max_to_market)
            and notional > self.max_notional
        ):
            return f"notional {notional} is above the maximum {self.max_notional}"
        return None


def _range(f: _Filter, low: str, high: str, step: str) -> Range:
    return Range(Decimal(low), Decimal(high), Decimal(step))


def parse_exchange_info(raw: bytes) -> dict[str, SymbolRules]:
    """Every symbol's rules; raises ``ValueError`` on an answer of another shape."""
    try:
        info = _info.decode(raw)
        out: dict[str, SymbolRules] = {}
        for s in info.symbols:
            price = lot = market_lot = None
            min_n = max_n = ZERO
            min_mkt, max_mkt = True, False
            for f in s.filters:
                t = f.filterType
                if t == "PRICE_FILTER":
                    price = _range(f, f.minPrice, f.maxPrice, f.tickSize)
                elif t == "LOT_SIZE":
                    lot = _range(f, f.minQty, f.maxQty, f.stepSize)
                elif t == "MARKET_LOT_SIZE":
                    market_lot = _range(f, f.minQty, f.maxQty, f.stepSize)
                    if market_lot.high == 0 and market_lot.low == 0:
                        market_lot = None
                elif t == "MIN_NOTIONAL":
                    min_n = Decimal(f.minNotional)
                    min_mkt = f.applyToMarket
                elif t == "NOTIONAL":
                    min_n, max_n = Decimal(f.minNotional), Decimal(f.maxNotional)
                    min_mkt, max_mkt = f.applyMinToMarket, f.applyMaxToMarket
            out[s.symbol] = SymbolRules(
                symbol=s.symbol,
                status=s.status,
                base=s.baseAsset,
                quote=s.quoteAsset,
                order_types=frozenset(s.orderTypes),
                price=price,
                lot=lot,
                market_lot=market_lot,
                min_notional=min_n,
                max_notional=max_n,
                min_to_market=min_mkt,
                max_to_market=max_mkt,
            )
        return out
    except (msgspec.DecodeError, InvalidOperation) as exc:
        raise ValueError(f"exchangeInfo does not decode: {str(exc)[:120]}") from None
