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

As for Binance's own client, the exchange's clock offset (``fetch_time``) and
its markets (``load_markets``) are taken at start and refreshed every
``exchange_info_refresh_s``; ccxt signs on the offset (its ``timeDifference``),
and an order for a market the exchange lists as inactive is refused before it
is sent. ``start_checks`` is the strict gate of ``trade --live-orders``.
``rest_url`` (``testnet_rest_url`` on the test network) moves every API URL of
the ccxt exchange to that host, for a local fake exchange.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import time
from collections.abc import AsyncIterator
from decimal import ROUND_HALF_EVEN, Decimal
from typing import Any
from urllib.parse import urlsplit

import structlog

from tradewind.config import ConfigError, ExecutionSettings
from tradewind.events import Liquidity, OrderRequest, OrderStatus, OrderType, Side, TimeInForce
from tradewind.execution.guard import has_real_key
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

log = structlog.get_logger("tradewind.exchanges.ccxt")
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
MARKET_OPTIONS: dict[str, dict[str, Any]] = {
    "binance": {
        "fetchMarkets": {"types": ["spot"]},
        "fetchCurrencies": False,
        "fetchMargins": False,
    },
    "okx": {"fetchMarkets": {"types": ["spot"]}, "createOrder": "privatePostTradeOrder"},
}
"""Per ccxt id: load only the markets this adapter trades (spot: ``market``
maps to ``BASE/QUOTE``). ccxt's binance otherwise also loads futures, margin
and currency lists on every ``load_markets``: more weight, and endpoints a
spot-only key or the spot test network refuse. ccxt's okx sends orders to
``trade/batch-orders`` as a one-element list by default, where per-call
options such as ``maxRetriesOnFailure`` stay in the order's JSON; the
single-order ``trade/order`` takes them out."""
SKIPPED_CALLS: dict[str, tuple[str, ...]] = {"okx": ("fetchCurrencies",)}
"""Per ccxt id: ccxt calls ``load_markets`` makes that this adapter does not
need (okx: ``fetchCurrencies``, a private ``asset/currencies`` on mainnet)."""
REQUEST_VALIDITY_MS = {"okx": 30_000}
"""Per ccxt id: how long the exchange accepts a signed request after its
timestamp when it takes no ``recvWindow`` (OKX: 30 s, error 50102). An order
whose answer was lost can appear that long after it was signed, so the settle
window covers it."""
FILL_FILTER = {"okx": "ordId"}
"""Per ccxt id: the exchange's own parameter that narrows ``fetch_my_trades``
to one order (default Binance's ``orderId``)."""


class KeyRejected(VenueRejected):
    """The exchange refused the API key or its signature (ccxt's
    ``AuthenticationError``, which includes ``PermissionDenied``)."""


def _dec(v: Any) -> Decimal:
    return Decimal(0) if v is None else Decimal(repr(v) if isinstance(v, float) else str(v))


def point_at(urls: Any, base: str) -> Any:
    """``urls`` (a ccxt ``urls["api"]``: a string or nested dicts of them) with
    every absolute URL's scheme and host replaced by ``base``'s, paths kept."""
    if isinstance(urls, dict):
        return {k: point_at(v, base) for k, v in urls.items()}
    if isinstance(urls, str) and "://" in urls:
        b, u = urlsplit(base), urlsplit(urls)
        return u._replace(scheme=b.scheme, netloc=b.netloc).geturl()
    return urls


def _origin(urls: Any) -> str:
    if isinstance(urls, dict):
        for v in urls.values():
            if found := _origin(v):
                return found
        return ""
    if isinstance(urls, str) and "://" in urls:
        u = urlsplit(urls)
        return f"{u.scheme}://{u.netloc}"
    return ""


def _state(market: dict[str, Any]) -> str:
    """The exchange's own word for a market's state (Binance ``status``, OKX
    ``state``), else ``inactive``."""
    raw = market.get("info")
    if isinstance(raw, dict):
        for key in ("status", "state"):
            if raw.get(key):
                return str(raw[key])
    return "inactive"


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
                **MARKET_OPTIONS.get(settings.ccxt_id, {}),
            },
        }
        if settings.api_key is not None and settings.api_secret is not None:
            config["apiKey"] = settings.api_key.get_secret_value()
            config["secret"] = settings.api_secret.get_secret_value()
        passphrase = settings.api_passphrase
        if passphrase is not None and has_real_key(passphrase):  # not Compose's no-key marker
            config["password"] = passphrase.get_secret_value()
        self.client: Any = cls(config)
        for call in SKIPPED_CALLS.get(settings.ccxt_id, ()):
            self.client.has[call] = False
        if settings.testnet:
            self.client.set_sandbox_mode(True)
        base = settings.testnet_rest_url if settings.testnet else settings.rest_url
        if base:
            self.client.urls["api"] = point_at(self.client.urls["api"], base)
        self.rest_url = base or _origin(self.client.urls["api"])
        self.name = f"ccxt {settings.ccxt_id}"
        self._symbols: dict[str, str] = {}
        self.offset_ms = 0
        """The exchange's clock minus ours, from the last ``fetch_time``."""
        self.rtt_ms = 0
        self.markets_at = 0.0
        self._refresher: asyncio.Task[None] | None = None

    @property
    def settle_window_s(self) -> float:
        validity = max(self.s.recv_window_ms, REQUEST_VALIDITY_MS.get(self.s.ccxt_id, 0))
        return validity / 1000 + self.s.settle_attempts * self.s.settle_interval_s

    @property
    def network(self) -> str:
        return "testnet" if self.s.testnet else "mainnet"

    async def start(self) -> None:
        """Clock offset and markets before the first order, then kept fresh; a
        failure here is logged and retried by the refresher (``start_checks``
        is the strict gate)."""
        await self._refresh_once("start")
        if self._refresher is None:
            self._refresher = asyncio.create_task(self._refresh(), name="ccxt:refresh")

    async def close(self) -> None:
        if self._refresher is not None:
            self._refresher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._refresher
            self._refresher = None
        await self.client.close()

    async def _refresh(self) -> None:
        while True:
            await asyncio.sleep(self.s.exchange_info_refresh_s)
            await self._refresh_once("refresh")

    async def _refresh_once(self, when: str) -> None:
        for step in (self.sync_time, self.load_markets):
            try:
                await step()
            except VenueError as exc:
                log.warning(f"ccxt {when} step failed", step=step.__name__, error=str(exc))

    async def sync_time(self) -> int:
        """The exchange's clock minus ours at the round trip's midpoint; ccxt
        then signs on it (``timeDifference`` is ours minus the exchange's)."""
        t0 = time.time_ns() // _MS
        server = await self._call("fetch_time")
        t1 = time.time_ns() // _MS
        if not isinstance(server, int | float):
            raise VenueError(f"{self.name} fetch_time: no time in the answer")
        self.rtt_ms = t1 - t0
        self.offset_ms = int(server) - (t0 + t1) // 2
        self.client.options["timeDifference"] = -self.offset_ms
        return self.offset_ms

    async def load_markets(self) -> dict[str, Any]:
        markets = await self._call("load_markets", True)
        self.markets_at = time.monotonic()
        return dict(markets or {})

    def _market_info(self, symbol: str) -> dict[str, Any] | None:
        """The loaded ccxt market of a Tradewind symbol (``BTCUSDT``,
        ``BTC-USD`` or ``BTC/USD``): by unified symbol, by the exchange's id
        (spot first), else by the instrument's base/quote; None when unlisted."""
        markets: dict[str, Any] = self.client.markets or {}
        if symbol in markets:
            return dict(markets[symbol])
        by_id = (self.client.markets_by_id or {}).get(symbol)
        if by_id:
            hits = by_id if isinstance(by_id, list) else [by_id]
            return dict(next((m for m in hits if m.get("spot")), hits[0]))
        if (self.exchange, symbol) in self.instruments:
            m = markets.get(self.market(symbol))
            return None if m is None else dict(m)
        return None

    async def start_checks(self, symbols: list[str]) -> list[str]:
        """Refuse to trade on keys the exchange rejects, a clock too far off to
        sign within ``recvWindow``, or a symbol the exchange does not list as
        active; else the lines to show (network, clock, balances)."""
        try:
            offset = await self.sync_time()
        except VenueError as exc:
            raise StartCheckFailed(
                f"{self.name} server time unavailable at {self.rest_url}: {exc}"
            ) from None
        window = self.s.recv_window_ms
        if abs(offset) + self.rtt_ms > window:
            raise StartCheckFailed(
                f"this host's clock is {offset:+d} ms off {self.name}'s (round trip "
                f"{self.rtt_ms} ms), beyond recvWindow {window} ms; synchronise the clock (NTP)"
            )
        try:
            d = await self._call("fetch_balance")
        except KeyRejected as exc:
            raise StartCheckFailed(f"{self.name} rejected the API key ({exc})") from None
        except VenueError as exc:
            raise StartCheckFailed(f"{self.name} account check failed: {exc}") from None
        info = d.get("info") if isinstance(d, dict) else None
        if isinstance(info, dict) and info.get("canTrade") is False:
            raise StartCheckFailed(f"the {self.name} API key may not trade (canTrade is false)")
        try:
            await self.load_markets()
        except VenueError as exc:
            raise StartCheckFailed(f"{self.name} markets unavailable: {exc}") from None
        for sym in symbols:
            m = self._market_info(sym)
            if m is None:
                raise StartCheckFailed(f"{self.name} does not list symbol {sym} ({self.network})")
            if m.get("active") is False:
                raise StartCheckFailed(
                    f"{self.name} symbol {sym} ({m.get('symbol')}) is {_state(m)}, not active"
                )
            self._symbols[sym] = str(m["symbol"])
        bal = self._balances(d)
        shown = ", ".join(f"{a} {v.normalize():f}" for a, v in sorted(bal.items())) or "none"
        version = getattr(self.ccxt, "__version__", "?")
        return [
            f"{self.name} {self.network} at {self.rest_url}, requests signed by ccxt {version}",
            f"clock offset {offset:+d} ms (round trip {self.rtt_ms} ms, recvWindow {window} ms)",
            f"balances: {shown}",
        ]

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
        except c.AuthenticationError as exc:
            raise KeyRejected(f"{fn}: {type(exc).__name__}: {str(exc)[:150]}") from None
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
        self.check(o)
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
        if d.get("status") is None:
            # OKX's answer to an order carries only its ids: the order as placed.
            return await self._looked_up(o.symbol, o.client_order_id) or self._order(
                o.symbol,
                {**d, "side": o.side.value, "amount": o.quantity, "filled": 0},
                o.client_order_id,
            )
        return self._order(o.symbol, d, o.client_order_id)

    async def _looked_up(self, symbol: str, client_order_id: str) -> VenueOrder | None:
        """The order as the exchange has it now, or None when that cannot be
        told (the caller then knows only what it sent)."""
        try:
            return await self.query(symbol, client_order_id)
        except VenueError:
            return None

    def check(self, o: OrderRequest) -> None:
        """Refuse, before sending, an order for a market the last loaded
        markets say is unlisted or inactive (nothing to say before a load)."""
        if not self.client.markets:
            return
        m = self._market_info(o.symbol)
        if m is None:
            raise VenueRejected(f"filter: {self.name} does not list {o.symbol}")
        if m.get("active") is False:
            raise VenueRejected(f"filter: {o.symbol} is {_state(m)}, not active")

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
        if d.get("status") is None:
            # OKX's answer to a cancel carries only its ids: the order as looked up.
            return await self._looked_up(symbol, client_order_id)
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
            "fetch_my_trades",
            self.market(symbol),
            None,
            None,
            {FILL_FILTER.get(self.s.ccxt_id, "orderId"): order.exchange_order_id},
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
        return self._balances(await self._call("fetch_balance"))

    @staticmethod
    def _balances(d: Any) -> dict[str, Decimal]:
        total = (d.get("total") if isinstance(d, dict) else None) or {}
        return {k: _dec(v) for k, v in total.items() if v}

    async def reports(self) -> AsyncIterator[VenueOrder | None]:
        while True:
            yield None
            await asyncio.sleep(self.s.reconcile_interval_s)
