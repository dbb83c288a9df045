"""data.binance.vision as the fake exchange serves it: daily zips of trades,
aggTrades and 1m klines with their ``.CHECKSUM`` files, built from the spot
trades of the recordings it replays, with ``Range`` requests and the faults a
download must survive (429 with ``Retry-After``, a body cut short, a corrupted
archive).

Archives follow the public layout: ``/data/spot/daily/<kind>/<SYMBOL>/…zip``
(klines under ``<SYMBOL>/<interval>/``); each holds one header-less CSV, as
the older archives do.
"""

from __future__ import annotations

import hashlib
import io
import json
import zipfile
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

from tradewind.exchanges.common.fake_http import Request, Response, Router

PREFIX = "/data/spot/daily/"


@dataclass
class _Faults:
    throttle: int = 0
    retry_after_s: float = 1.0
    cut: int = 0
    cut_at: float = 0.5
    corrupt: int = 0


@dataclass
class HistoryRequest:
    path: str
    range: str | None
    status: int


@dataclass
class BinanceHistory:
    """Loaded lazily from the recordings on the first request."""

    files: list[Path] = field(default_factory=list)
    archives: dict[str, bytes] = field(default_factory=dict)
    requests: list[HistoryRequest] = field(default_factory=list)
    faults: _Faults = field(default_factory=_Faults)
    trades: dict[str, list[list[str]]] = field(default_factory=dict)
    """Per symbol, every recorded spot trade in the archive's trades columns, by id."""
    _loaded: bool = False

    def routes(self, router: Router) -> None:
        router.add_prefix("GET", PREFIX, self._serve)

    # --- faults -------------------------------------------------------------
    def throttle(self, n: int, retry_after_s: float = 1.0) -> None:
        """The next ``n`` requests get 429 with ``Retry-After``."""
        self.faults.throttle, self.faults.retry_after_s = n, retry_after_s

    def cut(self, n: int, at: float = 0.5) -> None:
        """The next ``n`` archive bodies stop at this fraction and the connection closes."""
        self.faults.cut, self.faults.cut_at = n, at

    def corrupt(self, n: int) -> None:
        """The next ``n`` archive bodies have one byte flipped (the checksum stays right)."""
        self.faults.corrupt = n

    # --- data ---------------------------------------------------------------
    def add(self, path: str, csv_rows: list[str]) -> None:
        """One archive at ``path`` (``…/NAME.zip``) holding ``NAME.csv``."""
        name = path.rsplit("/", 1)[1].removesuffix(".zip")
        buf = io.BytesIO()
        with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
            z.writestr(f"{name}.csv", "".join(r + "\n" for r in csv_rows))
        data = buf.getvalue()
        self.archives[path] = data
        digest = hashlib.sha256(data).hexdigest()
        self.archives[path + ".CHECKSUM"] = f"{digest}  {name}.zip\n".encode()

    def load(self) -> None:
        if not self._loaded:
            self._load()

    def _load(self) -> None:
        self._loaded = True
        trades: dict[tuple[str, str], list[list[str]]] = defaultdict(list)
        for f in self.files:
            for line in f.read_bytes().splitlines():
                try:
                    msg = json.loads(line)
                except ValueError:
                    continue
                d = msg.get("data", msg) if isinstance(msg, dict) else None
                if not isinstance(d, dict) or d.get("e") != "trade":
                    continue
                day = datetime.fromtimestamp(d["T"] / 1000, UTC).date().isoformat()
                quote = Decimal(d["p"]) * Decimal(d["q"])
                row = [str(d["t"]), d["p"], d["q"], f"{quote.normalize():f}", str(d["T"])]
                row += [str(d["m"]), str(d.get("M", True))]
                trades[(d["s"], day)].append(row)
        for (sym, day), rows in sorted(trades.items()):
            rows.sort(key=lambda r: int(r[0]))
            self.trades.setdefault(sym, []).extend(rows)
            self.add(f"{PREFIX}trades/{sym}/{sym}-trades-{day}.zip", [",".join(r) for r in rows])
            agg = [",".join([r[0], r[1], r[2], r[0], r[0], r[4], r[5], r[6]]) for r in rows]
            self.add(f"{PREFIX}aggTrades/{sym}/{sym}-aggTrades-{day}.zip", agg)
            self.add(f"{PREFIX}klines/{sym}/1m/{sym}-1m-{day}.zip", _klines(rows))

    async def _serve(self, req: Request) -> Response:
        self.load()
        status, resp = self._answer(req)
        self.requests.append(HistoryRequest(req.path, req.headers.get("range"), status))
        return resp

    def _answer(self, req: Request) -> tuple[int, Response]:
        f = self.faults
        if f.throttle > 0:
            f.throttle -= 1
            retry = {"Retry-After": f"{f.retry_after_s:g}"}
            return 429, Response.json({"code": -1003, "msg": "Too many requests"}, 429, retry)
        data = self.archives.get(req.path)
        if data is None:
            return 404, Response(404, b"<Error><Code>NoSuchKey</Code></Error>", {}, "text/xml")
        if req.path.endswith(".CHECKSUM"):
            return 200, Response(200, data, {}, "text/plain")
        if f.corrupt > 0:
            f.corrupt -= 1
            data = data[:-30] + bytes([data[-30] ^ 0xFF]) + data[-29:]
        start = 0
        rng = req.headers.get("range")
        if rng is not None:
            start = int(rng.removeprefix("bytes=").split("-")[0])
            if start >= len(data):
                head = {"Content-Range": f"bytes */{len(data)}"}
                return 416, Response(416, b"", head, "application/xml")
        body = data[start:]
        head = {"Accept-Ranges": "bytes"}
        status = 200
        if start:
            status = 206
            head["Content-Range"] = f"bytes {start}-{len(data) - 1}/{len(data)}"
        if f.cut > 0:
            f.cut -= 1
            head["Content-Length"] = str(len(body))
            cut = body[: int(len(body) * f.cut_at)]
            return status, Response(status, cut, head, "application/zip", close=True)
        return status, Response(status, body, head, "application/zip")


def _klines(trades: list[list[str]]) -> list[str]:
    """1m klines in data.binance.vision's 12 columns, from the trade rows."""
    bars: dict[int, list[list[str]]] = defaultdict(list)
    for r in trades:
        bars[int(r[4]) // 60_000 * 60_000].append(r)
    out = []
    for t0, rs in sorted(bars.items()):
        prices = [Decimal(r[1]) for r in rs]
        vol = sum((Decimal(r[2]) for r in rs), Decimal(0))
        qv = sum((Decimal(r[3]) for r in rs), Decimal(0))
        buy = [r for r in rs if r[5] == "False"]
        bvol = sum((Decimal(r[2]) for r in buy), Decimal(0))
        bqv = sum((Decimal(r[3]) for r in buy), Decimal(0))
        cols = [t0, rs[0][1], max(prices), min(prices), rs[-1][1], vol, t0 + 59_999, qv]
        cols += [len(rs), bvol, bqv, 0]
        out.append(
            ",".join(f"{c.normalize():f}" if isinstance(c, Decimal) else str(c) for c in cols)
        )
    return out
