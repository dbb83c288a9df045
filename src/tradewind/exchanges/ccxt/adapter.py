"""A generic live venue over ccxt (the optional ``ccxt`` extra), for exchanges
without a first-party adapter.

ccxt is imported when the adapter is built, never by a paper run; without the
extra the adapter refuses to start with a ``ConfigError`` naming the fix.
Orders carry the deterministic client order id (``clientOrderId``) and are
looked up and cancelled by it, so the router's settle-by-lookup works wherever
the exchange supports client ids.

What keeps an order from being sent twice here:

- ccxt's own retry of failed requests (``maxRetriesOnFailure``) is forced to 0,
  also per call: a retried POST after a lost answer is exactly a double send;
- the signed request carries ``recvWindow`` = ``execution.recv_window_ms``
  (where the exchange has one), which bounds how long an order with an unknown
  outcome can still appear, and so the router's settle window.

ccxt's errors are sorted like Binance's answers: rate limits back off (for the
exchange's ``Retry-After`` when it sends one), network errors, 5xx and
unreadable answers leave the outcome unknown, other exchange errors reject.
Amounts come from ccxt as floats parsed from the exchange's decimal strings;
``repr`` of such a float is that string again, and quantities are then
rounded to the instrument's lot so ccxt's float arithmetic cannot leak in.
Without a push stream in plain ccxt, ``reports`` asks the router to reconcile
every ``reconcile_interval_s`` (ccxt's rate limiter paces the calls).
"""

from __future__ import annotations

import asyncio
import importlib
import time
from collections.abc import AsyncIterator
from decimal import ROUND_HALF_EVEN, Decimal
from typing import Any

from tradewind.config import ConfigError, ExecutionSettings
from tradewind.events import Liquidity, OrderRequest, OrderStatus, OrderType, Side, TimeInForce
from tradewind.execution.venue import (
    Venue,
    VenueBusy,
    VenueFill,
    VenueOrder,
    VenueRejected,
    VenueUnknown,
)
from tradewind.instruments import InstrumentRegistry

_MS = 1_000_000
STATUS = {
    "open": OrderStatus.ACCEPTED,
    "closed": OrderStatus.FILLED,
    "canceled": OrderStatus.CANCELED,
    "cancelled": OrderStatus.CANCELED,
    "expired": OrderStatus.EXPIRED,
    "rejected": OrderStatus.REJECTED,
}
NO_RETRY = {"maxRetriesOnFailure": 0}


def _dec(v: Any) -> Decimal:
    return Decimal(0) if v is None else Decimal(repr(v) if isinstance(v, float) else str(v))


def load_ccxt() -> Any:
    """``ccxt.async_support``, or a clear error when the extra is not installed."""
    try:
        return importlib.import_module("ccxt.async_support")
    except ImportError:
        raise ConfigError(
            "TRADEWIND_EXECUTION__VENUE",
            "venue 'ccxt' needs the ccxt extra: pip install 'tradewind[ccxt]'",
        ) from None


class CcxtVenue(Venue):
    def __init__(self, settings: ExecutionSettings, instruments: InstrumentRegistry) -> None:
        self.ccxt: Any = load_ccxt()
        cls = getattr(self.ccxt, settings.ccxt_id, None)
        if cls is None:
            raise ConfigError("TRADEWIND_EXECUTION__CCXT_ID", f"ccxt has no {settings.ccxt_id!r}")
        self.exchange = settings.exchange
        self.s = settings
        self.instruments = instruments
        config: dict[str, Any] = {
            "enableRateLimit": True,
            "timeout": int(settings.request_timeout_s * 1000),
            "options": {
                **NO_RETRY,
                "recvWindow": settings.recv_window_ms,
                "warnOnFetchOpenOrdersWithoutSymbol": False,
            },
        }
        if settings.api_key is not None and settings.api_secret is not None:
            config["apiKey"] = settings.api_key.get_secret_value()
            config["secret"] = settings.api_secret.get_secret_value()
        self.client: Any = cls(config)
        if settings.testnet:
            self.client.set_sandbox_mode(True)
        self._symbols: dict[str, str] = {}

    @property
    def settle_window_s(self) -> float:
        return self.s.recv_window_ms / 1000 + self.s.settle_attempts * self.s.settle_interval_s

    async def close(self) -> None:
        await self.client.close()

    def market(self, symbol: str) -> str:
        """Tradewind's symbol (``BTCUSDT``) → ccxt's (``BTC/USDT``)."""
        m = self._symbols.get(symbol)
        if m is None:
            inst = self.instruments.get(self.exchange, symbol)
            m = f"{inst.base}/{inst.quote}" if inst.quote else symbol
            self._symbols[symbol] = m
        return m

    def _symbol_of(self, d: dict[str, Any], fallback: str) -> str:
        unified = str(d.get("symbol") or "")
        for sym, m in self._symbols.items():
            if m == unified:
                return sym
        info = d.get("info")
        raw = info.get("symbol") if isinstance(info, dict) else None
        return str(raw or fallback or unified.replace("/", ""))

    def _qty(self, symbol: str, v: Any) -> Decimal:
        q = _dec(v)
        if (self.exchange, symbol) in self.instruments:
            lot = self.instruments.get(self.exchange, symbol).lot_size
            q = (q / lot).quantize(Decimal(1), ROUND_HALF_EVEN) * lot
        return q

    def _retry_after(self) -> float:
        headers = getattr(self.client, "last_response_headers", None) or {}
        for k, v in dict(headers).items():
            if str(k).lower() == "retry-after":
                try:
                    return max(float(v), 0.0)
                except ValueError:
                    break
        return 1.0

    async def _call(self, fn: str, *args: Any) -> Any:
        c = self.ccxt
        limit = self.s.request_timeout_s + self.s.connect_timeout_s + 1.0
        try:
            return await asyncio.wait_for(getattr(self.client, fn)(*args), limit)
        except (c.RateLimitExceeded, c.DDoSProtection) as exc:
            raise VenueBusy(f"{fn}: {type(exc).__name__}", self._retry_after()) from None
        except c.OrderNotFound:
            raise
        except (c.OperationFailed, c.BadResponse, c.NullResponse, TimeoutError, OSError) as exc:
            raise VenueUnknown(f"{fn}: {type(exc).__name__}") from None
        except c.BaseError as exc:
            raise VenueRejected(f"{fn}: {type(exc).__name__}: {str(exc)[:150]}") from None

    def _order(self, symbol: str, d: dict[str, Any], coid: str) -> VenueOrder:
        status = STATUS.get(str(d.get("status")), OrderStatus.ACCEPTED)
        filled = self._qty(symbol, d.get("filled"))
        if status is OrderStatus.ACCEPTED and filled > 0:
            status = OrderStatus.PARTIALLY_FILLED
        ts = d.get("lastUpdateTimestamp") or d.get("timestamp")
        return VenueOrder(
            client_order_id=str(d.get("clientOrderId") or coid),
            exchange_order_id=str(d.get("id") or ""),
            symbol=symbol,
            side=Side.BUY if d.get("side") == "buy" else Side.SELL,
            status=status,
            quantity=self._qty(symbol, d.get("amount")),
            filled_qty=filled,
            ts=int(ts) * _MS if ts else time.time_ns(),
        )

    async def _is_contract(self, market: str) -> bool:
        await self._call("load_markets")
        info = self.client.markets.get(market) or {}
        return bool(info.get("contract"))

    async def place(self, o: OrderRequest) -> VenueOrder:
        """One ``create_order``; ccxt must not retry it (see the module doc)."""
        market = self.market(o.symbol)
        params: dict[str, Any] = {**NO_RETRY, "clientOrderId": o.client_order_id}
        if o.time_in_force is TimeInForce.POST_ONLY:
            params["postOnly"] = True
        elif o.order_type is OrderType.LIMIT:
            params["timeInForce"] = o.time_in_force.value.upper()
        if o.reduce_only and await self._is_contract(market):
            params["reduceOnly"] = True
        if o.order_type is OrderType.LIMIT and o.price is None:
            raise VenueRejected("limit order without a price")
        price = None if o.price is None else float(o.price)
        d = await self._call(
            "create_order",
            market,
            o.order_type.value,
            o.side.value,
            float(o.quantity),
            price,
            params,
        )
        return self._order(o.symbol, d, o.client_order_id)

    async def query(self, symbol: str, client_order_id: str) -> VenueOrder | None:
        try:
            d = await self._call(
                "fetch_order", None, self.market(symbol), {"clientOrderId": client_order_id}
            )
        except self.ccxt.OrderNotFound:
            return None
        return self._order(symbol, d, client_order_id)

    async def cancel(self, symbol: str, client_order_id: str) -> VenueOrder | None:
        try:
            d = await self._call(
                "cancel_order", None, self.market(symbol), {"clientOrderId": client_order_id}
            )
        except self.ccxt.OrderNotFound:
            return None
        return self._order(symbol, d, client_order_id)

    async def open_orders(self, symbol: str | None = None) -> list[VenueOrder]:
        m = None if symbol is None else self.market(symbol)
        rows = await self._call("fetch_open_orders", m)
        out = []
        for d in rows:
            if d.get("clientOrderId"):
                sym = self._symbol_of(d, symbol or "")
                out.append(self._order(sym, d, ""))
        return out

    async def fills(self, symbol: str, order: VenueOrder) -> list[VenueFill]:
        rows = await self._call(
            "fetch_my_trades", self.market(symbol), None, None, {"orderId": order.exchange_order_id}
        )
        out = []
        for t in rows:
            if str(t.get("order")) != order.exchange_order_id:
                continue
            fee = t.get("fee") or {}
            out.append(
                VenueFill(
                    trade_id=str(t["id"]),
                    client_order_id=order.client_order_id,
                    price=_dec(t.get("price")),
                    qty=self._qty(symbol, t.get("amount")),
                    fee=_dec(fee.get("cost")),
                    fee_currency=str(fee.get("currency") or ""),
                    liquidity=Liquidity.MAKER
                    if t.get("takerOrMaker") == "maker"
                    else Liquidity.TAKER,
                    ts=int(t.get("timestamp") or 0) * _MS,
                )
            )
        return out

    async def balances(self) -> dict[str, Decimal]:
        d = await self._call("fetch_balance")
        total = d.get("total") or {}
        return {k: _dec(v) for k, v in total.items() if v}

    async def reports(self) -> AsyncIterator[VenueOrder | None]:
        while True:
            yield None
            await asyncio.sleep(self.s.reconcile_interval_s)
