"""Bybit v5 public REST history as the fake exchange serves it, enough for
ccxt's ``load_markets`` (``market/instruments-info?category=spot``) and
``fetch_ohlcv`` (``market/kline``), in Bybit's documented envelope
(``{"retCode":0,"retMsg":"OK","result":{…},"retExtInfo":{},"time":…}``).

Candles are the venue's own: the last state of each ``kline.1`` bar of the
spot recordings (wider intervals are built from those minutes); a minute
without a recorded bar has no candle here. ``market/kline`` answers as
Bybit does: the newest ``limit`` (at most 1000, default 200) bars between
``start`` and ``end``, newest first, ``end`` defaulting to now, so a
``start`` alone far in the past gets the latest bars, not the ones after
``start`` (ccxt issue #16551): a downloader must send ``end``.

Faults: ``retCode`` 10006 "Too many visits!" (HTTP 200, as Bybit sends
it for a per-IP-and-endpoint limit), a body cut short.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

from tradewind.exchanges.common.fake_history import RecordedRestHistory
from tradewind.exchanges.common.fake_http import Request, Response, Router

INSTRUMENTS = Path(__file__).with_name("instruments.json")
INTERVAL_MS = {
    "1": 60_000,
    "3": 180_000,
    "5": 300_000,
    "15": 900_000,
    "30": 1_800_000,
    "60": 3_600_000,
    "120": 7_200_000,
    "240": 14_400_000,
    "360": 21_600_000,
    "720": 43_200_000,
    "D": 86_400_000,
}
MAX_LIMIT = 1000


@dataclass
class BybitRestHistory(RecordedRestHistory):
    """Throttled: ``retCode`` 10006 Too many visits (HTTP 200)."""

    minutes: dict[str, dict[int, dict[str, str]]] = field(default_factory=dict)
    """Per symbol, per bar start: the last recorded state of its 1m kline."""

    def routes(self, router: Router) -> None:
        router.add("GET", "/v5/market/instruments-info", self._serve)
        router.add("GET", "/v5/market/kline", self._serve)

    # --- data ---------------------------------------------------------------
    def _index(self, messages: Iterator[Any]) -> None:
        for msg in messages:
            topic = msg.get("topic", "") if isinstance(msg, dict) else ""
            if not topic.startswith("kline.1."):
                continue
            symbol = topic.rsplit(".", 1)[1]
            for k in msg.get("data", []):
                self.minutes.setdefault(symbol, {})[int(k["start"])] = k

    def candles(self, symbol: str, step: int) -> list[list[str]]:
        """``[startTime, open, high, low, close, volume, turnover]``, oldest first."""
        bars: dict[int, list[dict[str, str]]] = {}
        for t0, k in sorted(self.minutes.get(symbol, {}).items()):
            bars.setdefault(t0 // step * step, []).append(k)
        out = []
        for t0, ks in bars.items():
            high = max(Decimal(k["high"]) for k in ks)
            low = min(Decimal(k["low"]) for k in ks)
            vol = sum((Decimal(k["volume"]) for k in ks), Decimal(0))
            turnover = sum((Decimal(k["turnover"]) for k in ks), Decimal(0))
            cols = [ks[0]["open"], str(high), str(low), ks[-1]["close"], str(vol), str(turnover)]
            out.append([str(t0), *cols])
        return out

    # --- serving ------------------------------------------------------------
    def _answer(self, req: Request) -> tuple[Response, str]:
        if self.faults.throttled():
            return _refuse(10006, "Too many visits!")
        q = req.query
        category = q.get("category", "")
        if req.path.endswith("/instruments-info"):
            if category not in ("spot", "linear", "inverse", "option"):
                return _refuse(10001, "params error: category is invalid")
            rows = _spot_instruments() if category == "spot" else []
            result: dict[str, Any] = {"category": category, "list": rows, "nextPageCursor": ""}
        else:
            symbol = q.get("symbol", "")
            if category != "spot" or symbol not in self.minutes:
                return _refuse(10001, "Not supported symbols")
            step = INTERVAL_MS.get(q.get("interval", ""))
            if step is None:
                return _refuse(10001, "Invalid period!")
            try:
                limit = max(1, min(int(q.get("limit", "200")), MAX_LIMIT))
                start = int(q.get("start", "0"))
                end = int(q.get("end", str(int(time.time() * 1000))))
            except ValueError:
                return _refuse(10001, "params error")
            bars = [c for c in self.candles(symbol, step) if start <= int(c[0]) <= end]
            result = {"symbol": symbol, "category": "spot", "list": list(reversed(bars[-limit:]))}
        return self.faults.deliver(_envelope(0, "OK", result)), ""


def _refuse(code: int, msg: str) -> tuple[Response, str]:
    return _envelope(code, msg, {}), str(code)


def _envelope(code: int, msg: str, result: dict[str, Any]) -> Response:
    body = {
        "retCode": code,
        "retMsg": msg,
        "result": result,
        "retExtInfo": {},
        "time": int(time.time() * 1000),
    }
    return Response.json(body)


def _spot_instruments() -> list[dict[str, Any]]:
    """The recorded symbols in the shape of Bybit's documented spot example."""
    out = []
    for i in json.loads(INSTRUMENTS.read_text())["instruments"]:
        out.append(
            {
                "symbol": i["symbol"],
                "baseCoin": i["base"],
                "quoteCoin": i["quote"],
                "innovation": "0",
                "status": "Trading",
                "marginTrading": "utaOnly",
                "stTag": "0",
                "lotSizeFilter": {
                    "basePrecision": i["lot_size"],
                    "quotePrecision": "0.00000001",
                    "minOrderQty": i["min_qty"],
                    "maxOrderQty": i["max_qty"],
                    "minOrderAmt": i["min_notional"],
                    "maxOrderAmt": "2000000",
                },
                "priceFilter": {"tickSize": i["tick_size"]},
                "riskParameters": {"priceLimitRatioX": "0.005", "priceLimitRatioY": "0.01"},
            }
        )
    return out
