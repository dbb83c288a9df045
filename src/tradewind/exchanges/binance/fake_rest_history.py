"""Binance spot's REST history as the fake exchange serves it:
``GET /api/v3/aggTrades`` and ``GET /api/v3/klines`` over the spot trades of
the recordings the archive fake (``fake_history``) holds, answering as
Binance documents (bodies of the documented examples' shape, ``-1121``
``Invalid symbol.``, ``-1127`` for a ``startTime``-``endTime`` window of
more than an hour: the docs say "less than 1 hour", the error "More than 1
hours", and ccxt asks for exactly one), counting request weight per window with
``X-MBX-USED-WEIGHT-<n><unit>`` and answering 429 with ``Retry-After`` past
the limit, plus the faults a download must survive: 429/418 on command, a
body cut short, aggregate ids or klines left out (a venue-side hole).

Each recorded trade is one aggregate trade (``a`` = ``f`` = ``l`` = the trade
id), as in the archive fake. Klines are built per interval from the trades
and, as Binance does while a symbol trades, an interval without trades is a
zero-volume kline at the previous close.
"""

from __future__ import annotations

import time
from collections import defaultdict
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from tradewind.exchanges.binance.fake_history import BinanceHistory
from tradewind.exchanges.common.fake_history import HistoryFaults, ServedRequest
from tradewind.exchanges.common.fake_http import Request, Response, Router
from tradewind.exchanges.common.history import HOUR_MS, INTERVAL_MS

WEIGHTS = {"/api/v3/aggTrades": 4, "/api/v3/klines": 2}


@dataclass
class RestRequest(ServedRequest):
    used_weight: int = 0


@dataclass
class _Faults(HistoryFaults):
    throttle_status: int = 429
    retry_after_s: float = 1.0
    missing_agg_ids: set[int] = field(default_factory=set)
    missing_klines: set[int] = field(default_factory=set)


@dataclass
class BinanceRestHistory:
    """``weight_limit`` per ``weight_window_s`` (Binance: 6000 a minute);
    ``others_weight`` is weight other clients of the same IP already used in
    every window, so a test can bring the limit near."""

    archive: BinanceHistory
    weight_limit: int = 6000
    weight_window_s: int = 60
    others_weight: int = 0
    requests: list[RestRequest] = field(default_factory=list)
    faults: _Faults = field(default_factory=_Faults)
    over_limit: int = 0
    """Requests that arrived with the window's weight already spent."""
    _window: tuple[int, int] = (0, 0)
    _klines: dict[tuple[str, str], list[list[Any]]] = field(default_factory=dict)

    def routes(self, router: Router) -> None:
        for path in WEIGHTS:
            router.add("GET", path, self._serve)

    # --- faults -------------------------------------------------------------
    def throttle(self, n: int, retry_after_s: float = 1.0, status: int = 429) -> None:
        """The next ``n`` requests get ``status`` (429, or 418 for a ban) with ``Retry-After``."""
        f = self.faults
        f.throttle, f.retry_after_s, f.throttle_status = n, retry_after_s, status

    def cut(self, n: int, after: int = 0) -> None:
        """After ``after`` more whole answers, the next ``n`` bodies stop halfway
        and the connection closes."""
        self.faults.cut, self.faults.cut_after = n, after

    def leave_out_agg_ids(self, ids: range | set[int]) -> None:
        """Aggregate trades the venue does not send (a hole in its ids)."""
        self.faults.missing_agg_ids |= set(ids)

    def leave_out_klines(self, open_times: range | set[int]) -> None:
        """Klines (by open time, ms) the venue has none of (an outage)."""
        self.faults.missing_klines |= set(open_times)

    # --- data ---------------------------------------------------------------
    def agg_trades(self, symbol: str) -> list[dict[str, Any]]:
        return [
            {
                "a": int(r[0]),
                "p": r[1],
                "q": r[2],
                "f": int(r[0]),
                "l": int(r[0]),
                "T": int(r[4]),
                "m": r[5] == "True",
                "M": r[6] == "True",
            }
            for r in self.archive.trades.get(symbol, [])
            if int(r[0]) not in self.faults.missing_agg_ids
        ]

    def klines(self, symbol: str, interval: str) -> list[list[Any]]:
        key = (symbol, interval)
        if key not in self._klines:
            self._klines[key] = _klines(self.archive.trades.get(symbol, []), INTERVAL_MS[interval])
        return [k for k in self._klines[key] if k[0] not in self.faults.missing_klines]

    # --- serving ------------------------------------------------------------
    def _weigh(self, path: str) -> int:
        window = int(time.time()) // self.weight_window_s
        start, used = self._window
        if window != start:
            start, used = window, self.others_weight
        used += WEIGHTS[path]
        self._window = (start, used)
        return used

    def _weight_header(self, used: int) -> dict[str, str]:
        w = self.weight_window_s
        label = f"{w // 60}M" if w % 60 == 0 else f"{w}S"
        return {f"X-MBX-USED-WEIGHT-{label}": str(used)}

    async def _serve(self, req: Request) -> Response:
        self.archive.load()
        used = self._weigh(req.path)
        resp = self._answer(req, used)
        self.requests.append(RestRequest(req.path, dict(req.query), resp.status, used_weight=used))
        return resp

    def _answer(self, req: Request, used: int) -> Response:
        f = self.faults
        head = self._weight_header(used)
        if f.throttled():
            head["Retry-After"] = f"{f.retry_after_s:g}"
            return _error(f.throttle_status, -1003, "Too many requests; IP banned.", head)
        if used > self.weight_limit:
            self.over_limit += 1
            rest = self.weight_window_s - time.time() % self.weight_window_s
            head["Retry-After"] = str(int(rest) + 1)
            return _error(429, -1003, "Too much request weight used.", head)
        q = req.query
        symbol = q.get("symbol", "")
        if not symbol:
            return _error(400, -1102, "Mandatory parameter 'symbol' was not sent.", head)
        if symbol not in self.archive.trades:
            return _error(400, -1121, "Invalid symbol.", head)
        limit = int(q.get("limit", "500"))
        if not 1 <= limit <= 1000:
            return _error(400, -1100, "Illegal characters found in parameter 'limit'.", head)
        start = int(q["startTime"]) if "startTime" in q else None
        end = int(q["endTime"]) if "endTime" in q else None
        if req.path == "/api/v3/aggTrades":
            if start is not None and end is not None and end - start > HOUR_MS:
                return _error(400, -1127, "More than 1 hours between startTime and endTime.", head)
            body: list[Any] = _page_aggs(self.agg_trades(symbol), q, start, end, limit)
        else:
            interval = q.get("interval", "")
            if interval not in INTERVAL_MS:
                return _error(400, -1120, "Invalid interval.", head)
            body = _page_klines(self.klines(symbol, interval), start, end, limit)
        return f.deliver(Response.json(body, 200, head))


def _error(status: int, code: int, msg: str, head: dict[str, str]) -> Response:
    return Response.json({"code": code, "msg": msg}, status, head)


def _page_aggs(
    aggs: list[dict[str, Any]],
    q: dict[str, str],
    start: int | None,
    end: int | None,
    limit: int,
) -> list[dict[str, Any]]:
    """``fromId`` inclusive; else the ``startTime``/``endTime`` window
    inclusive; else the most recent ``limit``."""
    if "fromId" in q:
        first = int(q["fromId"])
        return [a for a in aggs if a["a"] >= first][:limit]
    if start is None and end is None:
        return aggs[-limit:]
    lo = start if start is not None else 0
    hi = end if end is not None else lo + HOUR_MS - 1
    return [a for a in aggs if lo <= a["T"] <= hi][:limit]


def _page_klines(
    klines: list[list[Any]], start: int | None, end: int | None, limit: int
) -> list[list[Any]]:
    if start is None and end is None:
        return klines[-limit:]
    lo = start if start is not None else 0
    hi = end if end is not None else 2**63
    return [k for k in klines if lo <= k[0] <= hi][:limit]


def _dec(d: Decimal) -> str:
    return f"{d:.8f}"


def _klines(trades: list[list[str]], interval_ms: int) -> list[list[Any]]:
    """Klines in the REST body's 12 fields, from the archive's trade rows,
    every interval from the first trade's to the last one's."""
    bars: dict[int, list[list[str]]] = defaultdict(list)
    for r in trades:
        bars[int(r[4]) // interval_ms * interval_ms].append(r)
    if not bars:
        return []
    out: list[list[Any]] = []
    close = Decimal(0)
    t0 = min(bars)
    while t0 <= max(bars):
        rs = bars.get(t0, [])
        prices = [Decimal(r[1]) for r in rs] or [close]
        vol = sum((Decimal(r[2]) for r in rs), Decimal(0))
        qv = sum((Decimal(r[3]) for r in rs), Decimal(0))
        buy = [r for r in rs if r[5] == "False"]
        bvol = sum((Decimal(r[2]) for r in buy), Decimal(0))
        bqv = sum((Decimal(r[3]) for r in buy), Decimal(0))
        close = prices[-1]
        out.append(
            [
                t0,
                _dec(prices[0]),
                _dec(max(prices)),
                _dec(min(prices)),
                _dec(close),
                _dec(vol),
                t0 + interval_ms - 1,
                _dec(qv),
                len(rs),
                _dec(bvol),
                _dec(bqv),
                "0",
            ]
        )
        t0 += interval_ms
    return out
