"""Binance spot order endpoints and the WebSocket API user data stream, for the
fake exchange, as Binance's API is as of 2026-06 (docs/execution.md).

The REST side (``POST/GET/DELETE /api/v3/order``, ``GET /api/v3/openOrders``,
``/api/v3/myTrades``, ``/api/v3/account``, the public ``GET /api/v3/time`` and
``GET /api/v3/exchangeInfo``) checks the API key header, the signature
(HMAC-SHA256 hex, or Ed25519 base64 when ``ed25519_public_key`` is set, over
the query string followed by the form body, as Binance defines
``totalParams``), ``recvWindow`` against its own clock (``clock_skew_ms``
moves it), and the symbol's filters (-1013). The listenKey endpoints
(``/api/v3/userDataStream``) answer 410 Gone, as Binance has since
2026-02-20. The user data stream is ``userDataStream.subscribe.signature`` on
the WebSocket API (``/ws-api/v3``): params signed sorted by name, events
wrapped as ``{"subscriptionId":…,"event":{…}}``; ``terminate_streams`` sends
``eventStreamTerminated`` and ``server_shutdown`` sends ``serverShutdown``.
Matching is deliberately simple: one price per symbol (``set_price``); market
orders fill at once in two trades, crossing limit orders fill at the price,
others rest until ``set_price`` crosses them.

Faults, drawn from a seeded generator per endpoint: ``drop`` (process the
order, then close the connection without an answer), ``error_before`` /
``error_after`` (HTTP 503 without / after processing), ``unknown`` (process,
then answer -1007 TIMEOUT with HTTP ``unknown_http``: Binance's "execution
status unknown"), ``busy`` (429 with ``Retry-After``, not processed), ``ban``
(418), ``delay`` (hold the request, then process it; a request older than its
recvWindow by then is refused), and ``drop_stream`` (abort the user stream
before a report, which is lost). Every ``newClientOrderId`` that reaches the
order endpoint is recorded, so a test can prove none arrived twice.

It mounts into the fake exchange's route registry (``mount``) or serves on
its own (``start``) for tests that need only the order side.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import hashlib
import hmac
import random
import time
from collections import Counter
from dataclasses import dataclass, field
from decimal import ROUND_DOWN, Decimal
from typing import Any
from urllib.parse import parse_qsl, unquote, urlsplit

import msgspec
import websockets
from websockets.asyncio.server import Server, ServerConnection, serve

from tradewind.exchanges.binance.signing import ws_payload
from tradewind.exchanges.common.fake_http import (
    LengthRequired,
    Request,
    Response,
    Router,
    read_body,
    read_request,
)

_LOT = Decimal("0.00001")


class DropConnection(ConnectionError):
    """Close the client's connection without answering."""


@dataclass
class Faults:
    """Probabilities per request (``delay_s`` and ``retry_after_s`` are values)."""

    drop: float = 0.0
    error_before: float = 0.0
    error_after: float = 0.0
    unknown: float = 0.0
    unknown_http: int = 408
    busy: float = 0.0
    ban: float = 0.0
    delay: float = 0.0
    delay_s: float = 0.0
    retry_after_s: float = 1.0


@dataclass
class FakeOrder:
    symbol: str
    order_id: int
    client_order_id: str
    side: str
    type: str
    tif: str
    qty: Decimal
    price: Decimal | None
    status: str = "NEW"
    executed: Decimal = Decimal(0)
    quote: Decimal = Decimal(0)
    time: int = 0
    update_time: int = 0

    def view(self) -> dict[str, Any]:
        return {
            "symbol": self.symbol,
            "orderId": self.order_id,
            "orderListId": -1,
            "clientOrderId": self.client_order_id,
            "price": str(self.price or 0),
            "origQty": str(self.qty),
            "executedQty": str(self.executed),
            "cummulativeQuoteQty": str(self.quote),
            "status": self.status,
            "timeInForce": self.tif,
            "type": self.type,
            "side": self.side,
            "time": self.time,
            "updateTime": self.update_time,
            "isWorking": self.status in ("NEW", "PARTIALLY_FILLED"),
        }


@dataclass
class FakeTrade:
    id: int
    order_id: int
    client_order_id: str
    symbol: str
    price: Decimal
    qty: Decimal
    commission: Decimal
    maker: bool
    time: int


def _now_ms() -> int:
    return time.time_ns() // 1_000_000


def _err(code: int, msg: str, status: int = 400) -> Response:
    return Response.json({"code": code, "msg": msg}, status)


def _unsign(raw: str) -> tuple[str, str]:
    """``raw`` without its ``signature`` parameter, and the signature ("" if none)."""
    if raw.startswith("signature="):
        return "", raw[len("signature=") :]
    payload, sep, sig = raw.rpartition("&signature=")
    return (payload, sig) if sep else (raw, "")


@dataclass
class FakeBinanceOrders:
    api_key: str = "test-key"
    api_secret: str = "test-secret"
    seed: int = 0
    fee_rate: Decimal = Decimal("0.001")
    faults: dict[str, Faults] = field(default_factory=dict)
    """Per endpoint: ``place``, ``query``, ``cancel``, ``open``, ``trades``, ``account``."""
    drop_stream: float = 0.0
    prices: dict[str, Decimal] = field(default_factory=dict)
    orders: dict[str, FakeOrder] = field(default_factory=dict)
    trades: list[FakeTrade] = field(default_factory=list)
    received: Counter[str] = field(default_factory=Counter)
    balances: dict[str, Decimal] = field(
        default_factory=lambda: {"USDT": Decimal(1_000_000), "BTC": Decimal(100)}
    )
    injected: Counter[str] = field(default_factory=Counter)
    markets: dict[str, tuple[str, str, str, str]] = field(
        default_factory=lambda: {
            "BTCUSDT": ("BTC", "USDT", "0.01", "0.00001"),
            "ETHUSDT": ("ETH", "USDT", "0.01", "0.0001"),
        }
    )
    """Symbol → (base, quote, tick size, lot size) for ``exchangeInfo``."""
    status: dict[str, str] = field(default_factory=dict)
    """Symbol → trading status when not ``TRADING``."""
    min_notional: Decimal = Decimal("0.1")
    clock_skew_ms: int = 0
    """The fake's clock minus the host's: a host clock that far behind Binance's."""
    ed25519_public_key: str = ""
    """PEM public key: signatures are then Ed25519 (base64), not HMAC."""
    ws_api_requests: list[dict[str, Any]] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._rng = random.Random(self.seed)
        self._order_ids = 1000
        self._trade_ids = 5000
        self._streams: dict[ServerConnection, int] = {}
        self._sub_ids = 0
        self._ed_key: Any = None
        if self.ed25519_public_key:
            from cryptography.hazmat.primitives.serialization import load_pem_public_key

            self._ed_key = load_pem_public_key(self.ed25519_public_key.encode())
        self._http: asyncio.Server | None = None
        self._ws: Server | None = None
        self._conns: set[asyncio.Task[None]] = set()
        self._writers: set[asyncio.StreamWriter] = set()
        self.router = Router()
        self.routes(self.router)
        self.http_port = 0
        self.ws_port = 0

    # --- wiring -----------------------------------------------------------------
    def routes(self, router: Router) -> None:
        router.add("POST", "/api/v3/order", self._place)
        router.add("GET", "/api/v3/order", self._query)
        router.add("DELETE", "/api/v3/order", self._cancel)
        router.add("GET", "/api/v3/openOrders", self._open)
        router.add("GET", "/api/v3/myTrades", self._my_trades)
        router.add("GET", "/api/v3/account", self._account)
        for method in ("POST", "PUT", "DELETE"):
            router.add(method, "/api/v3/userDataStream", self._gone)
        router.add("GET", "/api/v3/exchangeInfo", self._exchange_info)
        router.add("GET", "/api/v3/time", self._time)

    def mount(self, exchange: Any) -> None:
        """Plug into ``tradewind.exchanges.fake.server.FakeExchange``."""
        self.routes(exchange.router)
        exchange.add_ws_route("/ws-api/v3", self._ws_route)

    async def start(self) -> None:
        self._ws = await serve(self._on_ws, "127.0.0.1", 0, ping_interval=20, compression=None)
        self.ws_port = self._ws.sockets[0].getsockname()[1]
        self._http = await asyncio.start_server(self._on_client, "127.0.0.1", 0)
        self.http_port = self._http.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        if self._http is not None:
            self._http.close()
        for w in list(self._writers):
            w.transport.abort()
        for t in list(self._conns):
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await t
        if self._ws is not None:
            self._ws.close()
            await self._ws.wait_closed()
        if self._http is not None:
            await self._http.wait_closed()

    @property
    def rest_url(self) -> str:
        return f"http://127.0.0.1:{self.http_port}"

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.ws_port}"

    # --- what tests look at --------------------------------------------------------
    def duplicates(self) -> dict[str, int]:
        return {k: n for k, n in self.received.items() if n > 1}

    def state(self) -> dict[str, tuple[str, Decimal]]:
        return {c: (o.status, o.executed) for c, o in self.orders.items()}

    def trades_of(self, coid: str) -> list[FakeTrade]:
        return [t for t in self.trades if t.client_order_id == coid]

    # --- the HTTP server of the standalone mode --------------------------------------
    async def _on_client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._conns.add(task)
        self._writers.add(writer)
        try:
            while True:
                got = await read_request(reader)
                if got is None:
                    return
                req, _ = got
                await read_body(reader, req)
                resp = await self.router.dispatch(req)
                writer.write(resp.encode(True))
                await writer.drain()
        except (ConnectionError, asyncio.IncompleteReadError, TimeoutError, ValueError):
            pass
        except LengthRequired:
            pass
        finally:
            self._conns.discard(task)
            self._writers.discard(writer)
            writer.transport.abort()

    # --- checks ---------------------------------------------------------------------------
    def _fault(self, endpoint: str) -> Faults | None:
        return self.faults.get(endpoint)

    def _roll(self, p: float, name: str) -> bool:
        if p > 0 and self._rng.random() < p:
            self.injected[name] += 1
            return True
        return False

    def _auth(self, req: Request, signed: bool = True) -> tuple[dict[str, str], Response | None]:
        if req.headers.get("x-mbx-apikey") != self.api_key:
            return {}, _err(-2015, "Invalid API-key, IP, or permissions for action.", 401)
        params = req.form()
        if not signed:
            return params, None
        query, q_sig = _unsign(urlsplit(req.target).query)
        body, b_sig = _unsign(req.body.decode(errors="replace"))
        sig = q_sig or b_sig
        if not sig:
            return params, _err(-1102, "Mandatory parameter 'signature' was not sent.")
        if not self.verify(query + body, unquote(sig)):
            return params, _err(-1022, "Signature for this request is not valid.")
        return params, None

    def now(self) -> int:
        """The fake's clock, in ms: the host's plus ``clock_skew_ms``."""
        return _now_ms() + self.clock_skew_ms

    def verify(self, payload: str, sig: str) -> bool:
        if self._ed_key is None:
            want = hmac.new(self.api_secret.encode(), payload.encode(), hashlib.sha256).hexdigest()
            return hmac.compare_digest(want, sig.lower())
        try:
            self._ed_key.verify(base64.b64decode(sig, validate=True), payload.encode())
        except (ValueError, binascii.Error):
            return False
        except Exception:  # cryptography's InvalidSignature
            return False
        return True

    def _window(self, params: dict[str, str]) -> Response | None:
        try:
            ts = int(params.get("timestamp", "0"))
            window = int(params.get("recvWindow", "5000"))
        except ValueError:
            return _err(-1100, "Illegal characters found in a parameter.")
        now = self.now()
        if ts > now + 1000 or now - ts > window:
            return _err(-1021, "Timestamp for this request is outside of the recvWindow.")
        return None

    async def _gate(self, endpoint: str) -> tuple[Response | None, Faults | None]:
        """Faults that answer before the request is processed."""
        f = self._fault(endpoint)
        if f is None:
            return None, None
        if self._roll(f.busy, f"{endpoint}:busy"):
            hdr = {"Retry-After": str(f.retry_after_s)}
            return Response.json({"code": -1003, "msg": "Too many requests"}, 429, hdr), f
        if self._roll(f.ban, f"{endpoint}:ban"):
            hdr = {"Retry-After": str(f.retry_after_s)}
            return Response.json({"code": -1003, "msg": "IP banned"}, 418, hdr), f
        if self._roll(f.error_before, f"{endpoint}:error_before"):
            return _err(-1000, "An unknown error occurred while processing the request.", 503), f
        if self._roll(f.delay, f"{endpoint}:delay"):
            await asyncio.sleep(f.delay_s)
        return None, f

    def _after(self, endpoint: str, f: Faults | None, resp: Response) -> Response:
        if f is None:
            return resp
        if self._roll(f.drop, f"{endpoint}:drop"):
            raise DropConnection(endpoint)
        if self._roll(f.error_after, f"{endpoint}:error_after"):
            return _err(-1000, "An unknown error occurred while processing the request.", 503)
        if self._roll(f.unknown, f"{endpoint}:unknown"):
            msg = "Timeout waiting for response from backend server. Send status unknown; "
            return _err(-1007, msg + "execution status unknown.", f.unknown_http)
        return resp

    # --- endpoints --------------------------------------------------------------------------
    async def _place(self, req: Request) -> Response:
        params, bad = self._auth(req)
        if bad is not None:
            return bad
        coid = params.get("newClientOrderId", "")
        if coid:
            self.received[coid] += 1
        early, f = await self._gate("place")
        if early is not None:
            return early
        bad = self._window(params)
        if bad is not None:
            return bad
        if not coid or coid in self.orders:
            return _err(-2010, "Duplicate order sent.")
        refused = self._filters(params)
        if refused is not None:
            return _err(-1013, refused)
        o = FakeOrder(
            symbol=params["symbol"],
            order_id=self._next_order_id(),
            client_order_id=coid,
            side=params["side"],
            type=params["type"],
            tif=params.get("timeInForce", "GTC"),
            qty=Decimal(params["quantity"]),
            price=Decimal(params["price"]) if "price" in params else None,
            time=self.now(),
        )
        o.update_time = o.time
        px = self.prices.get(o.symbol, Decimal(100))
        crosses = o.price is None or (o.price >= px if o.side == "BUY" else o.price <= px)
        if o.type == "LIMIT_MAKER" and crosses:
            return self._after("place", f, _err(-2010, "Order would immediately match and take."))
        self.orders[coid] = o
        await self._report(o, "NEW")
        fills: list[FakeTrade] = []
        if o.type == "MARKET":
            half = (o.qty / 2).quantize(_LOT, ROUND_DOWN)
            for q in (half, o.qty - half):
                if q > 0:
                    fills.append(await self._trade(o, px, q, maker=False))
        elif crosses and o.tif in ("GTC", "IOC", "FOK"):
            fills.append(await self._trade(o, px, o.qty, maker=False))
        elif o.tif in ("IOC", "FOK"):
            o.status = "EXPIRED"
            await self._report(o, "EXPIRED")
        body = {
            **o.view(),
            "transactTime": o.update_time,
            "fills": [
                {
                    "price": str(t.price),
                    "qty": str(t.qty),
                    "commission": str(t.commission),
                    "commissionAsset": "USDT",
                    "tradeId": t.id,
                }
                for t in fills
            ],
        }
        return self._after("place", f, Response.json(body))

    async def _query(self, req: Request) -> Response:
        params, bad = self._auth(req)
        if bad is not None:
            return bad
        early, f = await self._gate("query")
        if early is not None:
            return early
        o = self.orders.get(params.get("origClientOrderId", ""))
        if o is None:
            return _err(-2013, "Order does not exist.")
        return self._after("query", f, Response.json(o.view()))

    async def _cancel(self, req: Request) -> Response:
        params, bad = self._auth(req)
        if bad is not None:
            return bad
        early, f = await self._gate("cancel")
        if early is not None:
            return early
        o = self.orders.get(params.get("origClientOrderId", ""))
        if o is None or o.status not in ("NEW", "PARTIALLY_FILLED"):
            return _err(-2011, "Unknown order sent.")
        o.status = "CANCELED"
        o.update_time = self.now()
        await self._report(o, "CANCELED")
        view = {**o.view(), "origClientOrderId": o.client_order_id}
        return self._after("cancel", f, Response.json(view))

    async def _open(self, req: Request) -> Response:
        params, bad = self._auth(req)
        if bad is not None:
            return bad
        early, f = await self._gate("open")
        if early is not None:
            return early
        sym = params.get("symbol")
        out = [
            o.view()
            for o in self.orders.values()
            if o.status in ("NEW", "PARTIALLY_FILLED") and (sym is None or o.symbol == sym)
        ]
        return self._after("open", f, Response.json(out))

    async def _my_trades(self, req: Request) -> Response:
        params, bad = self._auth(req)
        if bad is not None:
            return bad
        early, f = await self._gate("trades")
        if early is not None:
            return early
        oid = int(params.get("orderId", "-1"))
        out = [
            {
                "symbol": t.symbol,
                "id": t.id,
                "orderId": t.order_id,
                "price": str(t.price),
                "qty": str(t.qty),
                "quoteQty": str(t.price * t.qty),
                "commission": str(t.commission),
                "commissionAsset": "USDT",
                "time": t.time,
                "isBuyer": self.orders[t.client_order_id].side == "BUY",
                "isMaker": t.maker,
                "isBestMatch": True,
            }
            for t in self.trades
            if t.order_id == oid and t.symbol == params.get("symbol")
        ]
        return self._after("trades", f, Response.json(out))

    async def _account(self, req: Request) -> Response:
        _, bad = self._auth(req)
        if bad is not None:
            return bad
        early, f = await self._gate("account")
        if early is not None:
            return early
        bal = [
            {"asset": a, "free": str(v), "locked": "0"} for a, v in sorted(self.balances.items())
        ]
        return self._after("account", f, Response.json({"balances": bal, "canTrade": True}))

    async def _gone(self, req: Request) -> Response:
        """The listenKey endpoints, removed on 2026-02-20: 410 Gone."""
        return Response.json({"code": -1000, "msg": "Gone"}, 410)

    async def _time(self, req: Request) -> Response:
        return Response.json({"serverTime": self.now()})

    def _filters(self, params: dict[str, str]) -> str | None:
        """What Binance's filters say of an order, as its -1013 messages do."""
        sym = params.get("symbol", "")
        if sym not in self.markets:
            return "Invalid symbol."
        if self.status.get(sym, "TRADING") != "TRADING":
            return "Market is closed."
        _, _, tick, lot = self.markets[sym]
        try:
            qty = Decimal(params.get("quantity", "0"))
            price = Decimal(params["price"]) if "price" in params else None
        except ArithmeticError:
            return "Illegal characters found in a parameter."
        if qty < Decimal(lot) or qty % Decimal(lot) != 0:
            return "Filter failure: LOT_SIZE"
        if price is not None and (price < Decimal(tick) or price % Decimal(tick) != 0):
            return "Filter failure: PRICE_FILTER"
        px = price if price is not None else self.prices.get(sym, Decimal(100))
        if px * qty < self.min_notional:
            return "Filter failure: NOTIONAL"
        return None

    async def _exchange_info(self, req: Request) -> Response:
        symbols = [
            {
                "symbol": sym,
                "status": self.status.get(sym, "TRADING"),
                "baseAsset": base,
                "baseAssetPrecision": 8,
                "quoteAsset": quote,
                "quotePrecision": 8,
                "quoteAssetPrecision": 8,
                "orderTypes": ["LIMIT", "LIMIT_MAKER", "MARKET"],
                "isSpotTradingAllowed": True,
                "isMarginTradingAllowed": False,
                "filters": [
                    {
                        "filterType": "PRICE_FILTER",
                        "minPrice": tick,
                        "maxPrice": "1000000.00",
                        "tickSize": tick,
                    },
                    {"filterType": "LOT_SIZE", "minQty": lot, "maxQty": "9000", "stepSize": lot},
                    {
                        "filterType": "MARKET_LOT_SIZE",
                        "minQty": "0.00000000",
                        "maxQty": "120.00000000",
                        "stepSize": "0.00000000",
                    },
                    {
                        "filterType": "NOTIONAL",
                        "minNotional": str(self.min_notional),
                        "applyMinToMarket": True,
                        "maxNotional": "9000000.00000000",
                        "applyMaxToMarket": False,
                        "avgPriceMins": 5,
                    },
                ],
                "permissions": ["SPOT"],
            }
            for sym, (base, quote, tick, lot) in sorted(self.markets.items())
        ]
        return Response.json(
            {"timezone": "UTC", "serverTime": self.now(), "rateLimits": [], "symbols": symbols}
        )

    # --- matching ----------------------------------------------------------------------------
    def _next_order_id(self) -> int:
        self._order_ids += 1
        return self._order_ids

    async def _trade(self, o: FakeOrder, px: Decimal, qty: Decimal, maker: bool) -> FakeTrade:
        self._trade_ids += 1
        t = FakeTrade(
            id=self._trade_ids,
            order_id=o.order_id,
            client_order_id=o.client_order_id,
            symbol=o.symbol,
            price=px,
            qty=qty,
            commission=(px * qty * self.fee_rate).quantize(Decimal("1e-8")),
            maker=maker,
            time=self.now(),
        )
        self.trades.append(t)
        o.executed += qty
        o.quote += px * qty
        o.update_time = t.time
        o.status = "FILLED" if o.executed >= o.qty else "PARTIALLY_FILLED"
        sign = 1 if o.side == "BUY" else -1
        base = o.symbol.removesuffix("USDT")
        self.balances[base] = self.balances.get(base, Decimal(0)) + sign * qty
        self.balances["USDT"] = (
            self.balances.get("USDT", Decimal(0)) - sign * px * qty - t.commission
        )
        await self._report(o, "TRADE", t)
        return t

    async def set_price(self, symbol: str, price: Decimal, fraction: Decimal = Decimal(1)) -> None:
        """Move the market; resting orders it crosses fill (``fraction`` of what is left)."""
        self.prices[symbol] = price
        for o in list(self.orders.values()):
            if o.symbol != symbol or o.status not in ("NEW", "PARTIALLY_FILLED") or not o.price:
                continue
            if (o.side == "BUY" and price <= o.price) or (o.side == "SELL" and price >= o.price):
                left = o.qty - o.executed
                q = max((left * fraction).quantize(_LOT, ROUND_DOWN), min(left, _LOT))
                await self._trade(o, o.price, q, maker=True)

    # --- user data stream (WebSocket API) ------------------------------------------------
    async def _report(self, o: FakeOrder, x: str, t: FakeTrade | None = None) -> None:
        if not self._streams:
            return
        if self._roll(self.drop_stream, "stream:drop"):
            self.drop_streams()
            return
        ev = {
            "e": "executionReport",
            "E": self.now(),
            "s": o.symbol,
            "c": o.client_order_id,
            "S": o.side,
            "o": o.type,
            "f": o.tif,
            "q": str(o.qty),
            "p": str(o.price or 0),
            "x": x,
            "X": o.status,
            "r": "NONE",
            "i": o.order_id,
            "l": str(t.qty if t else 0),
            "z": str(o.executed),
            "L": str(t.price if t else 0),
            "n": str(t.commission if t else 0),
            "N": "USDT" if t else None,
            "T": o.update_time,
            "t": t.id if t else -1,
            "m": bool(t and t.maker),
            "C": o.client_order_id if x == "CANCELED" else "",
        }
        await self._send_event(ev)

    async def _send_event(self, ev: dict[str, Any]) -> None:
        for ws, sub in list(self._streams.items()):
            frame = msgspec.json.encode({"subscriptionId": sub, "event": ev}).decode()
            with contextlib.suppress(Exception):
                await ws.send(frame)

    def drop_streams(self) -> int:
        n = len(self._streams)
        for ws in list(self._streams):
            ws.transport.abort()
        self._streams.clear()
        return n

    async def terminate_streams(self) -> int:
        """``eventStreamTerminated`` on every subscription, which then ends
        (the connection stays open, as when Binance ends a subscription)."""
        n = len(self._streams)
        ev = {"e": "eventStreamTerminated", "E": self.now()}
        await self._send_event(ev)
        self._streams.clear()
        return n

    async def server_shutdown(self) -> int:
        """``serverShutdown`` to every connection (not wrapped in a subscription)."""
        n = len(self._streams)
        frame = msgspec.json.encode({"event": {"e": "serverShutdown", "E": self.now()}}).decode()
        for ws in list(self._streams):
            with contextlib.suppress(Exception):
                await ws.send(frame)
        return n

    async def _on_ws(self, ws: ServerConnection) -> None:
        target = ws.request.path if ws.request is not None else "/"
        await self._ws_route(ws, target, dict(parse_qsl(urlsplit(target).query)))

    async def _ws_route(self, ws: ServerConnection, target: str, query: dict[str, str]) -> None:
        if urlsplit(target).path != "/ws-api/v3":
            await ws.close(1008, "unknown path")
            return
        try:
            async for raw in ws:
                reply = self._ws_request(ws, raw)
                await ws.send(msgspec.json.encode(reply).decode())
        except websockets.ConnectionClosed:
            pass
        finally:
            self._streams.pop(ws, None)

    def _ws_request(self, ws: ServerConnection, raw: str | bytes) -> dict[str, Any]:
        try:
            req = msgspec.json.decode(raw)
        except msgspec.DecodeError:
            req = None
        if not isinstance(req, dict) or not isinstance(req.get("method"), str):
            return {"id": None, "status": 400, "error": {"code": -1102, "msg": "Malformed."}}
        self.ws_api_requests.append(req)
        rid = req.get("id")

        def error(status: int, code: int, msg: str) -> dict[str, Any]:
            return {"id": rid, "status": status, "error": {"code": code, "msg": msg}}

        method = req["method"]
        params = req.get("params") or {}
        if not isinstance(params, dict):
            return error(400, -1102, "Malformed params.")
        if method == "userDataStream.unsubscribe":
            self._streams.pop(ws, None)
            return {"id": rid, "status": 200, "result": {}}
        if method != "userDataStream.subscribe.signature":
            return error(400, -1020, "This operation is not supported.")
        if params.get("apiKey") != self.api_key:
            return error(401, -2015, "Invalid API-key, IP, or permissions for action.")
        sig = params.get("signature")
        if not isinstance(sig, str):
            return error(400, -1102, "Mandatory parameter 'signature' was not sent.")
        flat = {k: str(v).lower() if isinstance(v, bool) else str(v) for k, v in params.items()}
        if not self.verify(ws_payload(flat), sig):
            return error(400, -1022, "Signature for this request is not valid.")
        late = self._window(flat)
        if late is not None:
            return error(400, -1021, "Timestamp for this request is outside of the recvWindow.")
        if ws in self._streams:
            return error(400, -2035, "User Data Stream subscription already active.")
        self._sub_ids += 1
        self._streams[ws] = self._sub_ids
        return {"id": rid, "status": 200, "result": {"subscriptionId": self._sub_ids}}
