"""OKX v5 public REST history as the fake exchange serves it, enough for
ccxt's ``load_markets``, ``fetch_trades`` (``market/history-trades``) and
``fetch_ohlcv`` (``market/history-candles``, ``market/candles``): the
instruments and trades of the OKX recordings it replays, in OKX's documented
envelope (``{"code":"0","msg":"","data":[…]}``, newest first), with the
documented paging (``after``: records earlier than a trade id, or with
``type=2`` a time; ``before``: newer), ``limit`` at most 100, and the faults a
download must survive: 429 with OKX's ``50011``, a body cut short, trade ids
left out (a venue-side hole).

Candles are built per bar from the trades; a bar with no trade has no
candle here (a stretch the venue has no data for). Spot instruments only:
other ``instType`` answer an empty list.
"""

from __future__ import annotations

import json
from collections import defaultdict
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

from tradewind.exchanges.common.fake_http import Request, Response, Router
from tradewind.exchanges.common.fake_venue import read_lines
from tradewind.exchanges.okx.fake_instruments import spot_instrument

BAR_MS = {
    "1s": 1_000,
    "1m": 60_000,
    "3m": 180_000,
    "5m": 300_000,
    "15m": 900_000,
    "30m": 1_800_000,
    "1H": 3_600_000,
    "2H": 7_200_000,
    "4H": 14_400_000,
    "6Hutc": 21_600_000,
    "12Hutc": 43_200_000,
    "1Dutc": 86_400_000,
}
MAX_LIMIT = 100


@dataclass
class OkxRequest:
    path: str
    query: dict[str, str]
    status: int


@dataclass
class _Faults:
    throttle: int = 0
    cut_after: int = 0
    cut: int = 0
    missing_trade_ids: set[int] = field(default_factory=set)


@dataclass
class OkxRestHistory:
    files: list[Path] = field(default_factory=list)
    trades: dict[str, list[dict[str, str]]] = field(default_factory=dict)
    """Per instId, every recorded trade, oldest first."""
    requests: list[OkxRequest] = field(default_factory=list)
    faults: _Faults = field(default_factory=_Faults)
    _loaded: bool = False

    def routes(self, router: Router) -> None:
        router.add("GET", "/api/v5/public/instruments", self._serve)
        router.add("GET", "/api/v5/market/history-trades", self._serve)
        router.add("GET", "/api/v5/market/history-candles", self._serve)
        router.add("GET", "/api/v5/market/candles", self._serve)

    # --- faults -------------------------------------------------------------
    def throttle(self, n: int) -> None:
        """The next ``n`` requests get 429 ``50011`` Too Many Requests."""
        self.faults.throttle = n

    def cut(self, n: int, after: int = 0) -> None:
        """After ``after`` more whole answers, the next ``n`` bodies stop halfway."""
        self.faults.cut, self.faults.cut_after = n, after

    def leave_out_trade_ids(self, ids: range | set[int]) -> None:
        self.faults.missing_trade_ids |= set(ids)

    # --- data ---------------------------------------------------------------
    def load(self) -> None:
        if self._loaded:
            return
        self._loaded = True
        seen: dict[str, dict[str, dict[str, str]]] = defaultdict(dict)
        for f in self.files:
            for line in read_lines(f):
                try:
                    msg = json.loads(line)
                except ValueError:
                    continue
                arg = msg.get("arg") if isinstance(msg, dict) else None
                if not isinstance(arg, dict) or arg.get("channel") != "trades":
                    continue
                for t in msg.get("data", []):
                    keys = ("instId", "tradeId", "px", "sz", "side", "ts")
                    seen[t["instId"]][t["tradeId"]] = {k: t[k] for k in keys}
        for inst, by_id in seen.items():
            self.trades[inst] = sorted(by_id.values(), key=lambda t: int(t["tradeId"]))

    def spot(self) -> list[str]:
        return sorted(i for i in self.trades if i.count("-") == 1)

    def served_trades(self, inst: str) -> list[dict[str, str]]:
        miss = self.faults.missing_trade_ids
        return [t for t in self.trades.get(inst, []) if int(t["tradeId"]) not in miss]

    def candles(self, inst: str, bar_ms: int) -> list[list[str]]:
        """``[ts, o, h, l, c, vol, volCcy, volCcyQuote, confirm]``, oldest first."""
        bars: dict[int, list[dict[str, str]]] = defaultdict(list)
        for t in self.trades.get(inst, []):
            bars[int(t["ts"]) // bar_ms * bar_ms].append(t)
        out = []
        for t0, ts in sorted(bars.items()):
            px = [Decimal(t["px"]) for t in ts]
            vol = sum((Decimal(t["sz"]) for t in ts), Decimal(0))
            quote = sum((Decimal(t["sz"]) * Decimal(t["px"]) for t in ts), Decimal(0))
            cols = [px[0], max(px), min(px), px[-1], vol, vol, quote]
            out.append([str(t0), *(f"{c.normalize():f}" for c in cols), "1"])
        return out

    # --- serving ------------------------------------------------------------
    async def _serve(self, req: Request) -> Response:
        self.load()
        resp = self._answer(req)
        self.requests.append(OkxRequest(req.path, dict(req.query), resp.status))
        return resp

    def _answer(self, req: Request) -> Response:
        f = self.faults
        if f.throttle > 0:
            f.throttle -= 1
            return Response.json({"code": "50011", "msg": "Too Many Requests", "data": []}, 429)
        q = req.query
        if req.path.endswith("/instruments"):
            data: list[Any] = (
                [spot_instrument(i) for i in self.spot()] if q.get("instType") == "SPOT" else []
            )
        else:
            inst = q.get("instId", "")
            if inst not in self.trades:
                return _error("51001", "Instrument ID does not exist")
            try:
                limit = int(q.get("limit", str(MAX_LIMIT)))
            except ValueError:
                return _error("50014", "Parameter limit error")
            limit = max(1, min(limit, MAX_LIMIT if "history" in req.path else 300))
            if req.path.endswith("/history-trades"):
                data = _page_trades(self.served_trades(inst), q, limit)
            else:
                bar = q.get("bar", "1m")
                if bar not in BAR_MS:
                    return _error("51000", "Parameter bar error")
                data = _page_candles(self.candles(inst, BAR_MS[bar]), q, limit)
        resp = Response.json({"code": "0", "msg": "", "data": data})
        if f.cut > 0:
            if f.cut_after > 0:
                f.cut_after -= 1
            else:
                f.cut -= 1
                head = {"Content-Length": str(len(resp.body))}
                return Response(200, resp.body[: len(resp.body) // 2], head, close=True)
        return resp


def _error(code: str, msg: str) -> Response:
    return Response.json({"code": code, "msg": msg, "data": []}, 400)


def _page_trades(
    trades: list[dict[str, str]], q: dict[str, str], limit: int
) -> list[dict[str, str]]:
    """Newest first. ``type`` 1 (default): ``after``/``before`` are trade ids;
    2: ``after`` is a time (``before`` is not supported for times)."""
    by_time = q.get("type") == "2"
    rows = trades
    if "after" in q:
        after = int(q["after"])
        rows = [t for t in rows if (int(t["ts"]) if by_time else int(t["tradeId"])) < after]
    if "before" in q and not by_time:
        before = int(q["before"])
        rows = [t for t in rows if int(t["tradeId"]) > before]
    return list(reversed(rows[-limit:]))


def _page_candles(candles: list[list[str]], q: dict[str, str], limit: int) -> list[list[str]]:
    """Newest first; ``after``: candles before this time, ``before``: after it."""
    rows = candles
    if "after" in q:
        rows = [c for c in rows if int(c[0]) < int(q["after"])]
    if "before" in q:
        rows = [c for c in rows if int(c[0]) > int(q["before"])]
    return list(reversed(rows[-limit:]))
