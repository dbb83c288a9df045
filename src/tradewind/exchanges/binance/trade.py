"""Binance spot trading: signed REST orders and the user data stream.

Every private call is signed with HMAC-SHA256 over its query string and
carries ``timestamp`` and ``recvWindow``: Binance refuses a request that
reaches it later than ``recvWindow`` after it was signed, which bounds how
long an order with an unknown outcome can still appear (the router's settle
window). Answers are sorted as ``execution.venue`` describes: 429 and 418 are
rate limits (the request was not processed; ``Retry-After`` says for how
long), 5xx and transport failures leave the outcome unknown, other 4xx are
rejections. Order reports come from the user data stream (a listen key kept
alive by PUT, a WebSocket of ``executionReport`` events); after each
(re)connect the caller reconciles, because reports sent meanwhile are lost.

Spot has no reduce-only flag: such orders are sent as plain orders, risk
having already checked that they reduce the position.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import http.client
import time
from collections.abc import AsyncIterator
from decimal import Decimal
from typing import Any
from urllib.parse import urlencode

import msgspec
import structlog
import websockets

from tradewind.config import ConfigError, ExecutionSettings
from tradewind.events import Liquidity, OrderRequest, OrderStatus, OrderType, Side, TimeInForce
from tradewind.exchanges.binance import urls
from tradewind.exchanges.common.http import HttpClient
from tradewind.execution.venue import (
    Venue,
    VenueBusy,
    VenueError,
    VenueFill,
    VenueOrder,
    VenueRejected,
    VenueUnknown,
)
from tradewind.instruments import InstrumentRegistry

log = structlog.get_logger("tradewind.exchanges.binance.trade")
_MS = 1_000_000
NO_SUCH_ORDER = -2013
UNKNOWN_ORDER = -2011

STATUS = {
    "NEW": OrderStatus.ACCEPTED,
    "PENDING_NEW": OrderStatus.SUBMITTED,
    "PARTIALLY_FILLED": OrderStatus.PARTIALLY_FILLED,
    "FILLED": OrderStatus.FILLED,
    "CANCELED": OrderStatus.CANCELED,
    "PENDING_CANCEL": OrderStatus.ACCEPTED,
    "REJECTED": OrderStatus.REJECTED,
    "EXPIRED": OrderStatus.EXPIRED,
    "EXPIRED_IN_MATCH": OrderStatus.EXPIRED,
}


def fmt(d: Decimal) -> str:
    return format(d.normalize(), "f")


class _ExecReport(msgspec.Struct):
    e: str
    s: str = ""
    c: str = ""
    C: str = ""
    S: str = "BUY"
    x: str = ""
    X: str = ""
    i: int = 0
    q: str = "0"
    z: str = "0"
    l: str = "0"  # noqa: E741
    L: str = "0"
    n: str | None = "0"
    N: str | None = None
    T: int = 0
    E: int = 0
    t: int = -1
    m: bool = False


_report = msgspec.json.Decoder(_ExecReport)


class BinanceSpotVenue(Venue):
    def __init__(self, settings: ExecutionSettings, instruments: InstrumentRegistry) -> None:
        if settings.api_key is None or settings.api_secret is None:
            raise ConfigError(
                "TRADEWIND_EXECUTION__API_KEY",
                "the binance venue needs api_key and api_secret (use *_FILE secrets)",
            )
        self.exchange = settings.exchange
        self.s = settings
        self.instruments = instruments
        self._key = settings.api_key.get_secret_value()
        self._secret = settings.api_secret.get_secret_value().encode()
        if settings.testnet:
            self.rest_url = settings.testnet_rest_url or urls.TESTNET_REST
            self.ws_url = settings.testnet_ws_url or urls.TESTNET_WS
        else:
            self.rest_url = settings.rest_url or urls.SPOT_REST
            self.ws_url = settings.ws_url or urls.SPOT_WS
        self.http = HttpClient(
            self.rest_url, settings.request_timeout_s, settings.connect_timeout_s
        )

    @property
    def settle_window_s(self) -> float:
        return self.s.recv_window_ms / 1000 + 2.0

    async def close(self) -> None:
        await self.http.close()

    # --- transport ---------------------------------------------------------------
    def _signed(self, params: dict[str, str]) -> str:
        params = {
            **params,
            "recvWindow": str(self.s.recv_window_ms),
            "timestamp": str(time.time_ns() // _MS),
        }
        qs = urlencode(params)
        sig = hmac.new(self._secret, qs.encode(), hashlib.sha256).hexdigest()
        return f"{qs}&signature={sig}"

    async def _call(
        self, method: str, path: str, params: dict[str, str], *, signed: bool = True
    ) -> Any:
        qs = self._signed(params) if signed else urlencode(params)
        target = f"{path}?{qs}" if qs else path
        try:
            r = await self.http.request(method, target, None, {"X-MBX-APIKEY": self._key})
        except (OSError, TimeoutError, http.client.HTTPException) as exc:
            raise VenueUnknown(f"{method} {path}: {type(exc).__name__}") from None
        if r.status in (418, 429):
            try:
                retry = float(r.headers.get("retry-after", "1"))
            except ValueError:
                retry = 1.0
            raise VenueBusy(f"{method} {path}: HTTP {r.status}", retry)
        if r.status >= 500:
            raise VenueUnknown(f"{method} {path}: HTTP {r.status}")
        try:
            data = msgspec.json.decode(r.body)
        except msgspec.DecodeError:
            raise VenueUnknown(f"{method} {path}: undecodable answer") from None
        if r.status >= 400:
            code = data.get("code") if isinstance(data, dict) else None
            msg = data.get("msg", "") if isinstance(data, dict) else ""
            raise VenueRejected(f"{code}: {msg}"[:200], code)
        return data

    # --- orders ------------------------------------------------------------------
    def _order_params(self, o: OrderRequest) -> dict[str, str]:
        p = {
            "symbol": o.symbol,
            "side": "BUY" if o.side is Side.BUY else "SELL",
            "quantity": fmt(o.quantity),
            "newClientOrderId": o.client_order_id,
            "newOrderRespType": "FULL",
        }
        if o.order_type is OrderType.MARKET:
            p["type"] = "MARKET"
            return p
        if o.price is None:
            raise VenueRejected("limit order without a price")
        p["price"] = fmt(o.price)
        if o.time_in_force is TimeInForce.POST_ONLY:
            p["type"] = "LIMIT_MAKER"
        else:
            p["type"] = "LIMIT"
            p["timeInForce"] = o.time_in_force.value.upper()
        return p

    def _order(self, d: dict[str, Any], fills: tuple[VenueFill, ...] = ()) -> VenueOrder:
        ts = int(d.get("updateTime") or d.get("transactTime") or d.get("time") or 0) * _MS
        return VenueOrder(
            client_order_id=str(d.get("origClientOrderId") or d["clientOrderId"]),
            exchange_order_id=str(d["orderId"]),
            symbol=str(d["symbol"]),
            side=Side.BUY if d["side"] == "BUY" else Side.SELL,
            status=STATUS.get(str(d["status"]), OrderStatus.ACCEPTED),
            quantity=Decimal(d["origQty"]),
            filled_qty=Decimal(d["executedQty"]),
            ts=ts or time.time_ns(),
            fills=fills,
        )

    async def place(self, o: OrderRequest) -> VenueOrder:
        d = await self._call("POST", "/api/v3/order", self._order_params(o))
        ts = int(d.get("transactTime", 0)) * _MS or time.time_ns()
        fills = tuple(
            VenueFill(
                trade_id=str(f["tradeId"]),
                client_order_id=o.client_order_id,
                price=Decimal(f["price"]),
                qty=Decimal(f["qty"]),
                fee=Decimal(f.get("commission", "0")),
                fee_currency=str(f.get("commissionAsset", "")),
                liquidity=Liquidity.TAKER,
                ts=ts,
            )
            for f in d.get("fills", ())
        )
        return self._order(d, fills)

    async def query(self, symbol: str, client_order_id: str) -> VenueOrder | None:
        try:
            d = await self._call(
                "GET", "/api/v3/order", {"symbol": symbol, "origClientOrderId": client_order_id}
            )
        except VenueRejected as exc:
            if exc.code == NO_SUCH_ORDER:
                return None
            raise
        return self._order(d)

    async def cancel(self, symbol: str, client_order_id: str) -> VenueOrder | None:
        try:
            d = await self._call(
                "DELETE", "/api/v3/order", {"symbol": symbol, "origClientOrderId": client_order_id}
            )
        except VenueRejected as exc:
            if exc.code in (UNKNOWN_ORDER, NO_SUCH_ORDER):
                return None
            raise
        return self._order(d)

    async def open_orders(self, symbol: str | None = None) -> list[VenueOrder]:
        d = await self._call("GET", "/api/v3/openOrders", {"symbol": symbol} if symbol else {})
        return [self._order(x) for x in d]

    async def fills(self, symbol: str, order: VenueOrder) -> list[VenueFill]:
        d = await self._call(
            "GET", "/api/v3/myTrades", {"symbol": symbol, "orderId": order.exchange_order_id}
        )
        return [
            VenueFill(
                trade_id=str(t["id"]),
                client_order_id=order.client_order_id,
                price=Decimal(t["price"]),
                qty=Decimal(t["qty"]),
                fee=Decimal(t.get("commission", "0")),
                fee_currency=str(t.get("commissionAsset", "")),
                liquidity=Liquidity.MAKER if t.get("isMaker") else Liquidity.TAKER,
                ts=int(t.get("time", 0)) * _MS,
            )
            for t in d
        ]

    async def balances(self) -> dict[str, Decimal]:
        d = await self._call("GET", "/api/v3/account", {})
        return {
            b["asset"]: Decimal(b["free"]) + Decimal(b["locked"])
            for b in d.get("balances", ())
            if Decimal(b["free"]) or Decimal(b["locked"])
        }

    # --- user data stream ----------------------------------------------------------
    def report(self, raw: bytes | str) -> VenueOrder | None:
        """An ``executionReport`` frame → the order's state, with its trade if any."""
        try:
            m = _report.decode(raw)
        except msgspec.DecodeError:
            log.warning("undecodable user stream frame")
            return None
        if m.e != "executionReport":
            return None
        coid = m.C if m.x == "CANCELED" and m.C else m.c
        ts = (m.T or m.E) * _MS
        fills: tuple[VenueFill, ...] = ()
        if m.x == "TRADE" and m.t >= 0:
            fills = (
                VenueFill(
                    trade_id=str(m.t),
                    client_order_id=coid,
                    price=Decimal(m.L),
                    qty=Decimal(m.l),
                    fee=Decimal(m.n or "0"),
                    fee_currency=m.N or "",
                    liquidity=Liquidity.MAKER if m.m else Liquidity.TAKER,
                    ts=ts,
                ),
            )
        return VenueOrder(
            client_order_id=coid,
            exchange_order_id=str(m.i),
            symbol=m.s,
            side=Side.BUY if m.S == "BUY" else Side.SELL,
            status=STATUS.get(m.X, OrderStatus.ACCEPTED),
            quantity=Decimal(m.q),
            filled_qty=Decimal(m.z),
            ts=ts,
            fills=fills,
        )

    async def _keepalive(self, key: str) -> None:
        while True:
            await asyncio.sleep(self.s.listen_key_keepalive_s)
            try:
                await self._call("PUT", "/api/v3/userDataStream", {"listenKey": key}, signed=False)
            except VenueError as exc:
                log.warning("listen key keepalive failed", error=str(exc))

    async def reports(self) -> AsyncIterator[VenueOrder | None]:
        backoff = 0.5
        while True:
            keepalive: asyncio.Task[None] | None = None
            try:
                d = await self._call("POST", "/api/v3/userDataStream", {}, signed=False)
                key = str(d["listenKey"])
                async with websockets.connect(
                    f"{self.ws_url}/ws/{key}",
                    open_timeout=self.s.connect_timeout_s,
                    ping_interval=20,
                    ping_timeout=20,
                    max_size=1 << 20,
                ) as ws:
                    keepalive = asyncio.create_task(self._keepalive(key))
                    backoff = 0.5
                    yield None
                    async for raw in ws:
                        vo = self.report(raw)
                        if vo is not None:
                            yield vo
            except (OSError, TimeoutError, websockets.WebSocketException, VenueError) as exc:
                log.warning("user data stream lost", error=str(exc)[:200])
            finally:
                if keepalive is not None:
                    keepalive.cancel()
                    with contextlib.suppress(asyncio.CancelledError):
                        await keepalive
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, 10.0)
