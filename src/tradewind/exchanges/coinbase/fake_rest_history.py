"""Coinbase Advanced Trade public market REST as the fake exchange serves
it, enough for ccxt's ``load_markets`` (``GET /api/v3/brokerage/market/products``,
no keys) and ``fetch_ohlcv`` (``GET /api/v3/brokerage/market/products/{id}/candles``):
``{"products":[…],"num_products":…}`` and ``{"candles":[{"start","low","high",
"open","close","volume"}]}``, newest first, times in UNIX seconds as strings.

Candles are built per bar from the ``market_trades`` of the Advanced Trade
recordings; a bar with no trade has no candle (a stretch the venue has no
data for). ``start`` and ``end`` are required and a window of more than 350
candles is refused, as Coinbase documents. Futures (``product_type=FUTURE``)
answer an empty list.

Faults: HTTP 429 with the HTML page Coinbase's gateway sends instead of a
JSON error (as reported in coinbase-samples/advanced-trade-sdk-go issue
#18), a body cut short.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

from tradewind.exchanges.common.fake_history import RecordedRestHistory
from tradewind.exchanges.common.fake_http import Request, Response, Router

INSTRUMENTS = Path(__file__).with_name("instruments.json")
PRODUCTS = "/api/v3/brokerage/market/products"
GRANULARITY_S = {
    "ONE_MINUTE": 60,
    "FIVE_MINUTE": 300,
    "FIFTEEN_MINUTE": 900,
    "THIRTY_MINUTE": 1800,
    "ONE_HOUR": 3600,
    "TWO_HOUR": 7200,
    "FOUR_HOUR": 14400,
    "SIX_HOUR": 21600,
    "ONE_DAY": 86400,
}
MAX_CANDLES = 350


@dataclass
class CoinbaseRestHistory(RecordedRestHistory):
    """Throttled: 429 with an HTML page."""

    trades: dict[str, list[tuple[int, Decimal, Decimal]]] = field(default_factory=dict)
    """Per product, (time in µs, price, size) of each recorded trade, oldest first."""

    def routes(self, router: Router) -> None:
        router.add("GET", PRODUCTS, self._serve)
        router.add_prefix("GET", PRODUCTS + "/", self._serve)

    # --- data ---------------------------------------------------------------
    def _index(self, messages: Iterator[Any]) -> None:
        seen: dict[str, dict[str, tuple[int, Decimal, Decimal]]] = {}
        for msg in messages:
            if not isinstance(msg, dict) or msg.get("channel") != "market_trades":
                continue
            for ev in msg.get("events", []):
                for t in ev.get("trades", []):
                    us = int(datetime.fromisoformat(t["time"]).timestamp() * 1_000_000)
                    row = (us, Decimal(t["price"]), Decimal(t["size"]))
                    seen.setdefault(t["product_id"], {})[t["trade_id"]] = row
        for product, by_id in seen.items():
            self.trades[product] = sorted(by_id.values())

    def candles(self, product: str, step_s: int) -> list[dict[str, str]]:
        """Oldest first."""
        bars: dict[int, list[tuple[int, Decimal, Decimal]]] = {}
        for t in self.trades.get(product, []):
            bars.setdefault(t[0] // 1_000_000 // step_s * step_s, []).append(t)
        out = []
        for t0, ts in sorted(bars.items()):
            px = [p for _, p, _ in ts]
            vol = sum((s for _, _, s in ts), Decimal(0))
            out.append(
                {
                    "start": str(t0),
                    "low": f"{min(px)}",
                    "high": f"{max(px)}",
                    "open": f"{px[0]}",
                    "close": f"{px[-1]}",
                    "volume": f"{vol}",
                }
            )
        return out

    # --- serving ------------------------------------------------------------
    def _answer(self, req: Request) -> tuple[Response, str]:
        if self.faults.throttled():
            page = b'<html>\n  <head>\n    <title>Coinbase</title>\n    <meta name="robots" '
            page += b'content="noindex">\n  </head>\n  <body></body>\n</html>\n'
            return Response(429, page, content_type="text/html"), ""
        q = req.query
        if req.path == PRODUCTS:
            rows = [] if q.get("product_type", "SPOT") != "SPOT" else _spot_products()
            body: dict[str, Any] = {"products": rows, "num_products": len(rows)}
        else:
            product, _, tail = req.path[len(PRODUCTS) + 1 :].partition("/")
            if tail != "candles" or product not in self.trades:
                return _error(404, "NOT_FOUND", "ProductID is invalid")
            step = GRANULARITY_S.get(q.get("granularity", ""))
            if step is None:
                return _error(400, "INVALID_ARGUMENT", "granularity is invalid")
            try:
                start, end = int(q["start"]), int(q["end"])
            except (KeyError, ValueError):
                return _error(400, "INVALID_ARGUMENT", "start and end are required")
            if (end - start) // step > MAX_CANDLES:
                return _error(
                    400, "INVALID_ARGUMENT", "number of candles requested should be less than 350"
                )
            bars = [c for c in self.candles(product, step) if start <= int(c["start"]) <= end]
            body = {"candles": list(reversed(bars))}
        return self.faults.deliver(Response.json(body)), ""


def _error(status: int, error: str, message: str) -> tuple[Response, str]:
    body = {"error": error, "error_details": message, "message": message}
    return Response.json(body, status), error


def _spot_products() -> list[dict[str, Any]]:
    """The recorded products with the fields of Coinbase's product schema
    that ccxt reads."""
    out = []
    for i in json.loads(INSTRUMENTS.read_text())["instruments"]:
        out.append(
            {
                "product_id": i["symbol"],
                "price": "",
                "base_increment": i["lot_size"],
                "quote_increment": i["tick_size"],
                "price_increment": i["tick_size"],
                "quote_min_size": i["min_notional"],
                "quote_max_size": "150000000",
                "base_min_size": i["min_qty"],
                "base_max_size": i["max_qty"],
                "base_name": i["base"],
                "quote_name": i["quote"],
                "status": "online",
                "cancel_only": False,
                "limit_only": False,
                "post_only": False,
                "trading_disabled": False,
                "auction_mode": False,
                "product_type": "SPOT",
                "quote_currency_id": i["quote"],
                "base_currency_id": i["base"],
                "alias": "",
                "alias_to": [],
                "base_display_symbol": i["base"],
                "quote_display_symbol": i["quote"],
                "view_only": False,
                "display_name": f"{i['base']}-{i['quote']}",
                "product_venue": "CBE",
            }
        )
    return out
