"""Binance spot trading: signed REST orders and the WebSocket API user data stream.

Checked against Binance's spot API changelog as of 2026-06 (docs/execution.md
lists each behaviour with its date). Every private call is signed (HMAC-SHA256
or Ed25519, ``signing.py``) and carries ``timestamp`` and ``recvWindow``; the
timestamp follows Binance's clock (an offset kept from ``GET /api/v3/time``),
because a host clock a second off would otherwise get -1021 on every order.

Answers are sorted as ``execution.venue`` describes: 429 and 418 are rate
limits (``Retry-After`` says for how long); 5xx, transport failures and the
codes -1006/-1007 ("execution status unknown", whatever HTTP status carries
them) leave the outcome unknown, so the router looks the order up and never
resends; other 4xx are rejections. Binance's backend may still act on a
request for up to its 10 s timeout, so an unknown order is only declared
absent after that plus ``recvWindow`` (``settle_window_s``).

Orders are checked against the symbol's ``exchangeInfo`` filters before they
are sent (``rules.py``); the rules and the clock offset are refreshed in the
background. Order reports come from ``userDataStream.subscribe.signature`` on
the WebSocket API (the listenKey endpoints were removed on 2026-02-20), as
``{"subscriptionId":…,"event":{…}}``; ``eventStreamTerminated`` and
``serverShutdown`` reconnect at once, and after each (re)connect the caller
reconciles, because reports sent meanwhile are lost.

Spot has no reduce-only flag: such orders are sent as plain orders, risk
having already checked that they reduce the position.
"""

from __future__ import annotations

import asyncio
import contextlib
import http.client
import itertools
import time
from collections.abc import AsyncIterator
from decimal import Decimal
from typing import Any
from urllib.parse import urlencode, urlsplit

import msgspec
import structlog
import websockets

from tradewind.config import ConfigError, ExecutionSettings
from tradewind.events import Liquidity, OrderRequest, OrderStatus, OrderType, Side, TimeInForce
from tradewind.exchanges.binance import urls
from tradewind.exchanges.binance.rules import SymbolRules, parse_exchange_info
from tradewind.exchanges.binance.signing import Signer, ws_payload
from tradewind.exchanges.common.http import HttpClient
from tradewind.execution.venue import (
    StartCheckFailed,
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
STATUS_UNKNOWN_CODES = frozenset({-1006, -1007})
"""UNEXPECTED_RESP and TIMEOUT: "execution status unknown" (spot error codes)."""
BAD_TIMESTAMP = -1021
KEY_REJECTED = frozenset({-2014, -2015, -1022, -1002})
BACKEND_TIMEOUT_S = 10.0
"""How long Binance's matching engine may still act on a request whose answer
was -1007 (the documented backend timeout)."""
SUBSCRIBE_TIMEOUT_S = 10.0

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


class _Frame(msgspec.Struct):
    """A WebSocket API frame: a reply (``id``, ``status``) or an event."""

    id: int | str | None = None
    status: int = 0
    result: Any = None
    error: Any = None
    subscriptionId: int | None = None
    event: msgspec.Raw = msgspec.Raw(b"")


class _EventType(msgspec.Struct):
    e: str = ""


_frame = msgspec.json.Decoder(_Frame)
_event_type = msgspec.json.Decoder(_EventType)
_report = msgspec.json.Decoder(_ExecReport)


class _Reconnect(Exception):
    """The server ended the stream (``eventStreamTerminated``/``serverShutdown``)."""


def _ws_api_url(configured: str, default: str) -> str:
    """The WebSocket API endpoint; a bare ``ws://host:port`` gets Binance's path."""
    if not configured:
        return default
    if urlsplit(configured).path in ("", "/"):
        return configured.rstrip("/") + urls.WS_API_PATH
    return configured


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
        try:
            self.signer = Signer(settings.api_secret.get_secret_value())
        except ValueError as exc:
            raise ConfigError("TRADEWIND_EXECUTION__API_SECRET", str(exc)) from None
        if settings.testnet:
            self.rest_url = settings.testnet_rest_url or urls.TESTNET_REST
            self.ws_url = _ws_api_url(settings.testnet_ws_url, urls.TESTNET_WS_API)
        else:
            self.rest_url = settings.rest_url or urls.SPOT_REST
            self.ws_url = _ws_api_url(settings.ws_url, urls.SPOT_WS_API)
        self.http = HttpClient(
            self.rest_url, settings.request_timeout_s, settings.connect_timeout_s
        )
        self.offset_ms = 0
        """Binance's clock minus ours, from the last ``GET /api/v3/time``."""
        self.rtt_ms = 0
        self.rules: dict[str, SymbolRules] = {}
        self.rules_at = 0.0
        self._refresher: asyncio.Task[None] | None = None
        self._ids = itertools.count(1)

    @property
    def settle_window_s(self) -> float:
        return BACKEND_TIMEOUT_S + self.s.recv_window_ms / 1000 + 1.0

    @property
    def network(self) -> str:
        return "testnet" if self.s.testnet else "mainnet"

    async def start(self) -> None:
        """Clock offset and symbol rules before the first order, then kept fresh.
        A failure here is logged and retried by the refresher: the router's own
        start must not die of one slow answer; ``start_checks`` is the strict gate."""
        for step in (self.sync_time, self.load_rules):
            try:
                await step()
            except VenueError as exc:
                log.warning("binance start step failed", step=step.__name__, error=str(exc))
        if self._refresher is None:
            self._refresher = asyncio.create_task(self._refresh(), name="binance:refresh")

    async def close(self) -> None:
        if self._refresher is not None:
            self._refresher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._refresher
            self._refresher = None
        await self.http.close()

    async def _refresh(self) -> None:
        while True:
            await asyncio.sleep(self.s.exchange_info_refresh_s)
            for step in (self.sync_time, self.load_rules):
                try:
                    await step()
                except VenueError as exc:
                    log.warning("binance refresh failed", step=step.__name__, error=str(exc))

    # --- the server's clock and the symbol rules -----------------------------------
    def now_ms(self) -> int:
        return time.time_ns() // _MS + self.offset_ms

    async def sync_time(self) -> int:
        """Binance's clock minus ours, measured at the midpoint of the round trip."""
        t0 = time.time_ns() // _MS
        d = await self._call("GET", "/api/v3/time", {}, signed=False)
        t1 = time.time_ns() // _MS
        try:
            server = int(d["serverTime"])
        except (KeyError, TypeError, ValueError):
            raise VenueError("GET /api/v3/time: no serverTime in the answer") from None
        self.rtt_ms = t1 - t0
        self.offset_ms = server - (t0 + t1) // 2
        return self.offset_ms

    async def load_rules(self) -> dict[str, SymbolRules]:
        raw = await self._call("GET", "/api/v3/exchangeInfo", {}, signed=False, raw=True)
        try:
            self.rules = parse_exchange_info(raw)
        except ValueError as exc:
            raise VenueError(f"GET /api/v3/exchangeInfo: {exc}") from None
        self.rules_at = time.monotonic()
        return self.rules

    async def start_checks(self, symbols: list[str]) -> list[str]:
        """Refuse to trade on keys Binance rejects, a clock too far off to sign
        within ``recvWindow``, or a symbol Binance does not trade; else the lines
        to show (network, clock, balances)."""
        try:
            offset = await self.sync_time()
        except VenueError as exc:
            raise StartCheckFailed(
                f"binance server time unavailable at {self.rest_url}: {exc}"
            ) from None
        window = self.s.recv_window_ms
        if abs(offset) + self.rtt_ms > window:
            raise StartCheckFailed(
                f"this host's clock is {offset:+d} ms off Binance's (round trip {self.rtt_ms} ms), "
                f"beyond recvWindow {window} ms; synchronise the clock (NTP)"
            )
        try:
            account = await self._call("GET", "/api/v3/account", {"omitZeroBalances": "true"})
        except VenueRejected as exc:
            if exc.code in KEY_REJECTED:
                raise StartCheckFailed(f"binance rejected the API key ({exc})") from None
            raise StartCheckFailed(f"binance account check failed: {exc}") from None
        except VenueError as exc:
            raise StartCheckFailed(f"binance account check failed: {exc}") from None
        if not isinstance(account, dict) or account.get("canTrade") is not True:
            raise StartCheckFailed("the binance API key may not trade (canTrade is false)")
        try:
            rules = await self.load_rules()
        except VenueError as exc:
            raise StartCheckFailed(f"binance exchangeInfo unavailable: {exc}") from None
        for sym in symbols:
            r = rules.get(sym)
            if r is None:
                raise StartCheckFailed(f"binance does not list symbol {sym} ({self.network})")
            if r.status != "TRADING":
                raise StartCheckFailed(f"binance symbol {sym} is {r.status}, not TRADING")
        bal = self._balances(account)
        shown = ", ".join(f"{a} {fmt(v)}" for a, v in sorted(bal.items())) or "none"
        return [
            f"binance {self.network} at {self.rest_url}, signing {self.signer.kind}",
            f"clock offset {offset:+d} ms (round trip {self.rtt_ms} ms, recvWindow {window} ms)",
            f"balances: {shown}",
        ]

    # --- transport ---------------------------------------------------------------
    def _signed(self, params: dict[str, str]) -> str:
        params = {
            **params,
            "recvWindow": str(self.s.recv_window_ms),
            "timestamp": str(self.now_ms()),
        }
        qs = urlencode(params)
        return f"{qs}&{self.signer.query_param(qs)}"

    async def _call(
        self,
        method: str,
        path: str,
        params: dict[str, str],
        *,
        signed: bool = True,
        raw: bool = False,
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
        if r.status < 400 and raw:
            return r.body
        try:
            data = msgspec.json.decode(r.body)
        except msgspec.DecodeError:
            raise VenueUnknown(f"{method} {path}: undecodable answer (HTTP {r.status})") from None
        code = data.get("code") if isinstance(data, dict) else None
        code = code if isinstance(code, int) else None
        if code in STATUS_UNKNOWN_CODES:
            raise VenueUnknown(f"{method} {path}: {code} (HTTP {r.status}): status unknown")
        if r.status >= 500:
            raise VenueUnknown(f"{method} {path}: HTTP {r.status}")
        if r.status >= 400:
            msg = data.get("msg", "") if isinstance(data, dict) else ""
            if code == BAD_TIMESTAMP:
                # Not processed; the next request signs on a fresh offset.
                with contextlib.suppress(VenueError):
                    await self.sync_time()
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

    def check(self, o: OrderRequest) -> None:
        """Refuse, before sending, what the symbol's filters would refuse."""
        rules = self.rules.get(o.symbol)
        if rules is None:
            if self.rules:
                raise VenueRejected(f"filter: binance does not list {o.symbol}")
            return
        ref = o.ref_last
        if ref is None:
            ref = o.ref_ask if o.side is Side.BUY else o.ref_bid
        last = None if ref is None else Decimal(str(ref))
        why = rules.problem(o, last)
        if why is not None:
            raise VenueRejected(f"filter: {why}")

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
        params = self._order_params(o)
        self.check(o)
        d = await self._call("POST", "/api/v3/order", params)
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

    @staticmethod
    def _balances(d: Any) -> dict[str, Decimal]:
        return {
            b["asset"]: Decimal(b["free"]) + Decimal(b["locked"])
            for b in d.get("balances", ())
            if Decimal(b["free"]) or Decimal(b["locked"])
        }

    async def balances(self) -> dict[str, Decimal]:
        return self._balances(await self._call("GET", "/api/v3/account", {}))

    # --- user data stream ----------------------------------------------------------
    def report(self, raw: bytes | str) -> VenueOrder | None:
        """An ``executionReport`` event → the order's state, with its trade if any."""
        try:
            m = _report.decode(raw)
        except msgspec.DecodeError:
            log.warning("undecodable user stream event")
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

    def subscribe_request(self) -> dict[str, Any]:
        """``userDataStream.subscribe.signature``, signed over its sorted params."""
        params: dict[str, Any] = {
            "apiKey": self._key,
            "recvWindow": self.s.recv_window_ms,
            "timestamp": self.now_ms(),
        }
        params["signature"] = self.signer.sign(ws_payload({k: str(v) for k, v in params.items()}))
        return {
            "id": f"tw-sub-{next(self._ids)}",
            "method": "userDataStream.subscribe.signature",
            "params": params,
        }

    async def _subscribe(self, ws: Any) -> int:
        req = self.subscribe_request()
        await ws.send(msgspec.json.encode(req).decode())
        deadline = time.monotonic() + SUBSCRIBE_TIMEOUT_S
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise VenueError("userDataStream.subscribe.signature: no answer")
            raw = await asyncio.wait_for(ws.recv(), left)
            try:
                f = _frame.decode(raw)
            except msgspec.DecodeError:
                continue
            if f.id != req["id"]:
                continue
            if f.status != 200 or not isinstance(f.result, dict):
                err = f.error if isinstance(f.error, dict) else {}
                code = err.get("code")
                why = f"userDataStream.subscribe.signature: {code}: {err.get('msg', '')}"
                raise VenueRejected(why[:200], code if isinstance(code, int) else None)
            sub = f.result.get("subscriptionId")
            if not isinstance(sub, int):
                raise VenueError("userDataStream.subscribe.signature: no subscriptionId")
            return sub

    def _event(self, raw: bytes | str, sub: int) -> VenueOrder | None:
        """One frame of the subscribed connection; raises ``_Reconnect`` when
        the server ends the stream."""
        try:
            f = _frame.decode(raw)
        except msgspec.DecodeError:
            log.warning("undecodable user stream frame")
            return None
        if not f.event:
            return None
        try:
            kind = _event_type.decode(f.event).e
        except msgspec.DecodeError:
            log.warning("undecodable user stream event")
            return None
        if kind in ("eventStreamTerminated", "serverShutdown"):
            raise _Reconnect(kind)
        if kind != "executionReport" or (f.subscriptionId is not None and f.subscriptionId != sub):
            return None
        return self.report(f.event)

    async def reports(self) -> AsyncIterator[VenueOrder | None]:
        backoff = 0.5
        while True:
            try:
                async with websockets.connect(
                    self.ws_url,
                    open_timeout=self.s.connect_timeout_s,
                    ping_interval=20,
                    ping_timeout=20,
                    max_size=1 << 20,
                ) as ws:
                    sub = await self._subscribe(ws)
                    backoff = 0.5
                    yield None
                    async for raw in ws:
                        vo = self._event(raw, sub)
                        if vo is not None:
                            yield vo
            except _Reconnect as exc:
                log.info("user data stream ended by binance; reconnecting", reason=str(exc))
                continue
            except (OSError, TimeoutError, websockets.WebSocketException, VenueError) as exc:
                log.warning("user data stream lost", error=str(exc)[:200])
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, 10.0)
