"""Kraken spot public REST history as the fake exchange serves it, enough
for ccxt's ``load_markets`` (``/0/public/Assets``, ``/0/public/AssetPairs``)
and ``fetch_trades`` (``/0/public/Trades``), in Kraken's documented envelope
(``{"error":[],"result":{…}}``, errors as ``["EGeneral:…"]``).

Trades are those of the WS v1 recordings, oldest first, each numbered by
pair from 1 (``trade_id``, which WS v1 does not carry) and answered as the
Trades endpoint documents them: ``[price, volume, time, side, type, misc,
trade_id]`` under the pair's REST id, with ``last`` (a nanosecond time to
poll on with ``since``). ``since`` is seconds, or nanoseconds when that
large (as ``last`` is); trades after it are answered, at most ``count``
(1000 by default and at most).

Only the recorded pairs that traded are listed (``PAIRS``: their REST ids
and asset codes as Kraken names them). OHLC is not served: Kraken's OHLC
gives only the latest 720 bars, so the downloader refuses Kraken klines.

Faults: ``EAPI:Rate limit exceeded`` (HTTP 200, as Kraken sends it), a body
cut short.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from tradewind.exchanges.common.fake_history import RecordedRestHistory
from tradewind.exchanges.common.fake_http import Request, Response, Router

PAIRS = {
    # wsname: (REST pair id, base asset, quote asset, pair_decimals, lot_decimals)
    "XMR/USD": ("XXMRZUSD", "XXMR", "ZUSD", 2, 8),
    "SC/EUR": ("SCEUR", "SC", "ZEUR", 6, 8),
}
ASSETS = {
    # asset: (altname, decimals, display_decimals)
    "XXMR": ("XMR", 10, 6),
    "ZUSD": ("USD", 4, 2),
    "SC": ("SC", 10, 5),
    "ZEUR": ("EUR", 4, 2),
}
MAX_COUNT = 1000


@dataclass
class KrakenRestHistory(RecordedRestHistory):
    """Throttled: ``EAPI:Rate limit exceeded`` (HTTP 200)."""

    trades: dict[str, list[list[Any]]] = field(default_factory=dict)
    """Per REST pair id, the documented trade arrays, oldest first."""

    def routes(self, router: Router) -> None:
        for name in ("Assets", "AssetPairs", "Trades"):
            router.add("GET", f"/0/public/{name}", self._serve)

    # --- data ---------------------------------------------------------------
    def _index(self, messages: Iterator[Any]) -> None:
        raw: dict[str, list[list[str]]] = {}
        for msg in messages:
            trade = isinstance(msg, list) and len(msg) == 4 and msg[2] == "trade"
            if trade and msg[3] in PAIRS:
                raw.setdefault(PAIRS[msg[3]][0], []).extend(msg[1])
        for pair, rows in raw.items():
            rows.sort(key=lambda t: Decimal(t[2]))
            self.trades[pair] = [
                [t[0], t[1], float(t[2]), t[3], t[4], t[5], n] for n, t in enumerate(rows, start=1)
            ]

    # --- serving ------------------------------------------------------------
    def _answer(self, req: Request) -> tuple[Response, str]:
        if self.faults.throttled():
            return _error("EAPI:Rate limit exceeded")
        name = req.path.rsplit("/", 1)[1]
        q = req.query
        if name == "Assets":
            result: dict[str, Any] = {
                a: {
                    "aclass": "currency",
                    "altname": alt,
                    "decimals": dec,
                    "display_decimals": shown,
                    "status": "enabled",
                }
                for a, (alt, dec, shown) in ASSETS.items()
            }
        elif name == "AssetPairs":
            result = {p[0]: _pair(ws, *p) for ws, p in PAIRS.items()}
        else:
            pair = next((p[0] for ws, p in PAIRS.items() if q.get("pair") in (p[0], ws)), None)
            if pair is None or pair not in self.trades:
                return _error("EQuery:Unknown asset pair")
            try:
                count = max(1, min(int(q.get("count", str(MAX_COUNT))), MAX_COUNT))
                since = int(q.get("since", "0"))
            except ValueError:
                return _error("EGeneral:Invalid arguments")
            since_ns = since if since >= 10**12 else since * 10**9 - 1
            after = [t for t in self.trades[pair] if _ns(t[2]) > since_ns][:count]
            last = _ns(after[-1][2]) if after else max(since_ns, 0)
            result = {pair: after, "last": str(last)}
        return self.faults.deliver(Response.json({"error": [], "result": result})), ""


def _ns(t: float) -> int:
    return int(Decimal(repr(t)) * 10**9)


def _error(text: str) -> tuple[Response, str]:
    return Response.json({"error": [text]}), text


def _pair(
    ws: str, pair: str, base: str, quote: str, price_dec: int, lot_dec: int
) -> dict[str, Any]:
    """One pair with the fields of Kraken's ``AssetPairs`` schema (and ``lot``,
    which ccxt's quoted example still has)."""
    return {
        "altname": ws.replace("/", ""),
        "wsname": ws,
        "aclass_base": "currency",
        "base": base,
        "aclass_quote": "currency",
        "quote": quote,
        "lot": "unit",
        "pair_decimals": price_dec,
        "lot_decimals": lot_dec,
        "lot_multiplier": 1,
        "leverage_buy": [],
        "leverage_sell": [],
        "fees": [[0, 0.26], [50000, 0.24]],
        "fees_maker": [[0, 0.16], [50000, 0.14]],
        "fee_volume_currency": "ZUSD",
        "margin_call": 80,
        "margin_stop": 40,
        "ordermin": "0.1",
        "costmin": "0.5",
        "tick_size": f"{Decimal(1).scaleb(-price_dec):f}",
        "status": "online",
    }
