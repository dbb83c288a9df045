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

from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from tradewind.exchanges.common.fake_history import HistoryFaults, RecordedRestHistory
from tradewind.exchanges.common.fake_http import Request, Response, Router
from tradewind.exchanges.common.history import INTERVAL_MS
from tradewind.exchanges.okx.fake_instruments import spot_instrument

BAR_MS = {
    **{k: INTERVAL_MS[k] for k in ("1s", "1m", "3m", "5m", "15m", "30m")},
    **{k.upper(): INTERVAL_MS[k] for k in ("1h", "2h", "4h")},
    **{k.upper() + "utc": INTERVAL_MS[k] for k in ("6h", "12h", "1d")},
}
"""OKX's names for the common intervals: hours and days upper case, and
from six hours on the UTC-aligned bars (the unsuffixed ones follow Hong
Kong time)."""
MAX_LIMIT = 100


@dataclass
class _Faults(HistoryFaults):
    missing_trade_ids: set[int] = field(default_factory=set)


@dataclass
class OkxRestHistory(RecordedRestHistory):
    """Throttled: 429 with ``50011`` Too Many Requests."""

    trades: dict[str, list[dict[str, str]]] = field(default_factory=dict)
    """Per instId, every recorded trade, oldest first."""
    faults: _Faults = field(default_factory=_Faults)

    def routes(self, router: Router) -> None:
        router.add("GET", "/api/v5/public/instruments", self._serve)
        router.add("GET", "/api/v5/market/history-trades", self._serve)
        router.add("GET", "/api/v5/market/history-candles", self._serve)
        router.add("GET", "/api/v5/market/candles", self._serve)

    # --- faults -------------------------------------------------------------
    def leave_out_trade_ids(self, ids: range | set[int]) -> None:
        self.faults.missing_trade_ids |= set(ids)

    # --- data ---------------------------------------------------------------
    def _index(self, messages: Iterator[Any]) -> None:
        seen: dict[str, dict[str, dict[str, str]]] = defaultdict(dict)
        for msg in messages:
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
    def _answer(self, req: Request) -> tuple[Response, str]:
        if self.faults.throttled():
            return _error("50011", "Too Many Requests", 429)
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
        return self.faults.deliver(Response.json({"code": "0", "msg": "", "data": data})), ""


def _error(code: str, msg: str, status: int = 400) -> tuple[Response, str]:
    return Response.json({"code": code, "msg": msg, "data": []}, status), code


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
