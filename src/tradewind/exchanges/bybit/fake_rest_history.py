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
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

from tradewind.exchanges.common.fake_http import Request, Response, Router
from tradewind.exchanges.common.fake_venue import read_lines

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
class BybitRequest:
    path: str
    query: dict[str, str]
    status: int
    ret_code: int


@dataclass
class _Faults:
    throttle: int = 0
    cut_after: int = 0
    cut: int = 0


@dataclass
class BybitRestHistory:
    files: list[Path] = field(default_factory=list)
    minutes: dict[str, dict[int, dict[str, str]]] = field(default_factory=dict)
    """Per symbol, per bar start: the last recorded state of its 1m kline."""
    requests: list[BybitRequest] = field(default_factory=list)
    faults: _Faults = field(default_factory=_Faults)
    _loaded: bool = False

    def routes(self, router: Router) -> None:
        router.add("GET", "/v5/market/instruments-info", self._serve)
        router.add("GET", "/v5/market/kline", self._serve)

    # --- faults -------------------------------------------------------------
    def throttle(self, n: int) -> None:
        """The next ``n`` requests get ``retCode`` 10006 Too many visits."""
        self.faults.throttle = n

    def cut(self, n: int, after: int = 0) -> None:
        """After ``after`` more whole answers, the next ``n`` bodies stop halfway."""
        self.faults.cut, self.faults.cut_after = n, after

    # --- data ---------------------------------------------------------------
    def load(self) -> None:
        if self._loaded:
            return
        self._loaded = True
        for f in self.files:
            for line in read_lines(f):
                try:
                    msg = json.loads(line)
                except ValueError:
                    continue
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
    async def _serve(self, req: Request) -> Response:
        self.load()
        resp, code = self._answer(req)
        self.requests.append(BybitRequest(req.path, dict(req.query), resp.status, code))
        return resp

    def _answer(self, req: Request) -> tuple[Response, int]:
        f = self.faults
        if f.throttle > 0:
            f.throttle -= 1
            return _envelope(10006, "Too many visits!", {}), 10006
        q = req.query
        category = q.get("category", "")
        if req.path.endswith("/instruments-info"):
            if category not in ("spot", "linear", "inverse", "option"):
                return _envelope(10001, "params error: category is invalid", {}), 10001
            rows = _spot_instruments() if category == "spot" else []
            result: dict[str, Any] = {"category": category, "list": rows, "nextPageCursor": ""}
        else:
            symbol = q.get("symbol", "")
            if category != "spot" or symbol not in self.minutes:
                return _envelope(10001, "Not supported symbols", {}), 10001
            step = INTERVAL_MS.get(q.get("interval", ""))
            if step is None:
                return _envelope(10001, "Invalid period!", {}), 10001
            try:
                limit = max(1, min(int(q.get("limit", "200")), MAX_LIMIT))
                start = int(q.get("start", "0"))
                end = int(q.get("end", str(int(time.time() * 1000))))
            except ValueError:
                return _envelope(10001, "params error", {}), 10001
            bars = [c for c in self.candles(symbol, step) if start <= int(c[0]) <= end]
            result = {"symbol": symbol, "category": "spot", "list": list(reversed(bars[-limit:]))}
        resp = _envelope(0, "OK", result)
        if f.cut > 0:
            if f.cut_after > 0:
                f.cut_after -= 1
            else:
                f.cut -= 1
                head = {"Content-Length": str(len(resp.body))}
                return Response(200, resp.body[: len(resp.body) // 2], head, close=True), 0
        return resp, 0


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
