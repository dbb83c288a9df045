"""OKX v5 private REST for spot orders, for the fake exchange: what ccxt's
``okx`` calls to load markets, read the clock and balances, and place, look
up, list and cancel orders by ``clOrdId``, and read their fills.

Every private request is checked as OKX documents it: ``OK-ACCESS-KEY``,
``OK-ACCESS-PASSPHRASE``, ``OK-ACCESS-TIMESTAMP`` (ISO 8601 with ms, refused
when more than 30 s off the fake's clock, ``clock_skew_ms`` moving that clock)
and ``OK-ACCESS-SIGN``, base64 HMAC-SHA256 of timestamp + method +
requestPath (with the query string of a GET) + body (``prehash``). With
``demo`` set, the request must carry ``x-simulated-trading: 1`` (OKX's demo
trading) and without it must not, as a demo key and a live key are refused in
the other environment (50101). Answers use OKX's envelope
(``{"code":"0","msg":"","data":[…]}``); an order refused is ``code`` 1 with the
reason in ``sCode``/``sMsg``, HTTP 200, as OKX answers.

Matching is deliberately simple: one price per instrument (``prices``,
``set_price``); a market order fills at once in two fills at that price, a
limit order that crosses it fills at that price, others rest until
``set_price`` crosses them; a ``post_only`` (or ``ioc``/``fok``) order that
cannot rest or fill is accepted and canceled at once. Every ``clOrdId`` that
reaches ``POST /api/v5/trade/order`` is counted in ``received``, so a test can
prove none arrived twice. ``drop_every`` = n loses the answer to every n-th
placement it processed (the connection closes unanswered), the fault the
router settles by looking the order up.

Its ``instruments`` route answers with the same documented fields as the
public history fake (``fake_instruments.py``); mounted after it, this one's
instruments (with their tick, lot and state) are the ones served.
"""

from __future__ import annotations

import base64
import hmac
import json
import re
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import ROUND_DOWN, Decimal
from typing import Any

from tradewind.exchanges.common.fake_http import Request, Response, Router
from tradewind.exchanges.okx.fake_instruments import spot_instrument

MAX_SKEW_MS = 30_000
"""OKX refuses a request whose timestamp is more than 30 s off its clock (50102)."""
CLORDID = re.compile(r"^[A-Za-z0-9]{1,32}$")
"""OKX's ``clOrdId``: case-sensitive alphanumerics, up to 32 characters."""
LIVE_STATES = ("live", "partially_filled")


def prehash(timestamp: str, method: str, request_path: str, body: str = "") -> str:
    """What OKX signs: timestamp + METHOD + requestPath (a GET's query
    included) + body."""
    return timestamp + method.upper() + request_path + body


def okx_sign(secret: str, timestamp: str, method: str, request_path: str, body: str = "") -> str:
    mac = hmac.new(
        secret.encode(), prehash(timestamp, method, request_path, body).encode(), "sha256"
    )
    return base64.b64encode(mac.digest()).decode()


def _ok(data: list[Any]) -> Response:
    return Response.json({"code": "0", "msg": "", "data": data})


def _err(code: str, msg: str, status: int = 400) -> Response:
    return Response.json({"code": code, "msg": msg, "data": []}, status)


def _s(d: Decimal) -> str:
    return f"{d.normalize():f}"


@dataclass
class OkxOrder:
    inst_id: str
    ord_id: str
    cl_ord_id: str
    side: str
    ord_type: str
    sz: Decimal
    px: Decimal | None
    state: str = "live"
    filled: Decimal = Decimal(0)
    quote: Decimal = Decimal(0)
    fee: Decimal = Decimal(0)
    c_time: int = 0
    u_time: int = 0

    def view(self) -> dict[str, Any]:
        avg = self.quote / self.filled if self.filled else Decimal(0)
        return {
            "instType": "SPOT",
            "instId": self.inst_id,
            "ccy": "",
            "ordId": self.ord_id,
            "clOrdId": self.cl_ord_id,
            "tag": "",
            "px": "" if self.px is None else _s(self.px),
            "sz": _s(self.sz),
            "pnl": "0",
            "ordType": self.ord_type,
            "side": self.side,
            "posSide": "net",
            "tdMode": "cash",
            "tgtCcy": "base_ccy" if self.ord_type == "market" else "",
            "accFillSz": _s(self.filled),
            "avgPx": _s(avg) if self.filled else "",
            "state": self.state,
            "feeCcy": self.inst_id.split("-")[1],
            "fee": _s(-self.fee),
            "category": "normal",
            "uTime": str(self.u_time),
            "cTime": str(self.c_time),
        }


@dataclass
class OkxFill:
    trade_id: str
    bill_id: str
    order: OkxOrder
    px: Decimal
    sz: Decimal
    fee: Decimal
    maker: bool
    ts: int

    def view(self) -> dict[str, Any]:
        o = self.order
        return {
            "instType": "SPOT",
            "instId": o.inst_id,
            "tradeId": self.trade_id,
            "ordId": o.ord_id,
            "clOrdId": o.cl_ord_id,
            "billId": self.bill_id,
            "tag": "",
            "fillPx": _s(self.px),
            "fillSz": _s(self.sz),
            "side": o.side,
            "posSide": "net",
            "execType": "M" if self.maker else "T",
            "feeCcy": o.inst_id.split("-")[1],
            "fee": _s(-self.fee),
            "ts": str(self.ts),
            "fillTime": str(self.ts),
        }


@dataclass
class FakeOkxOrders:
    api_key: str = "test-key"
    api_secret: str = "test-secret"
    passphrase: str = "test-passphrase"
    demo: bool | None = None
    """True: only demo-trading requests (``x-simulated-trading: 1``); False:
    only live ones; None: either."""
    fee_rate: Decimal = Decimal("0.001")
    prices: dict[str, Decimal] = field(default_factory=dict)
    instruments: dict[str, tuple[str, str]] = field(
        default_factory=lambda: {
            "BTC-USDT": ("0.1", "0.00000001"),
            "ETH-USDT": ("0.01", "0.000001"),
        }
    )
    """instId → (tickSz, lotSz)."""
    min_sz: Decimal = Decimal("0.00001")
    state: dict[str, str] = field(default_factory=dict)
    """instId → state when not ``live`` (``suspend``, ``preopen``)."""
    clock_skew_ms: int = 0
    balances: dict[str, Decimal] = field(
        default_factory=lambda: {"USDT": Decimal(1_000_000), "BTC": Decimal(100)}
    )
    orders: dict[str, OkxOrder] = field(default_factory=dict)
    """By clOrdId."""
    fills: list[OkxFill] = field(default_factory=list)
    received: Counter[str] = field(default_factory=Counter)
    refused: list[tuple[str, str, str]] = field(default_factory=list)
    """(method, path, OKX code) of every request refused for its credentials."""
    demo_headers: Counter[str] = field(default_factory=Counter)
    """Private requests by the ``x-simulated-trading`` header they carried."""
    drop_every: int = 0
    dropped: int = 0

    def __post_init__(self) -> None:
        self._ord_ids = 600_000_000
        self._trade_ids = 100_000

    def routes(self, router: Router) -> None:
        router.add("GET", "/api/v5/public/time", self._time)
        router.add("GET", "/api/v5/public/instruments", self._instruments)
        router.add("GET", "/api/v5/account/balance", self._balance)
        router.add("POST", "/api/v5/trade/order", self._place)
        router.add("GET", "/api/v5/trade/order", self._query)
        router.add("POST", "/api/v5/trade/cancel-order", self._cancel)
        router.add("GET", "/api/v5/trade/orders-pending", self._pending)
        router.add("GET", "/api/v5/trade/fills-history", self._fills)
        router.add("GET", "/api/v5/trade/fills", self._fills)

    def mount(self, exchange: Any) -> None:
        """Plug into ``tradewind.exchanges.fake.server.FakeExchange``."""
        self.routes(exchange.router)

    # --- what tests look at -------------------------------------------------------
    def duplicates(self) -> dict[str, int]:
        return {k: n for k, n in self.received.items() if n > 1}

    def fills_of(self, cl_ord_id: str) -> list[OkxFill]:
        return [f for f in self.fills if f.order.cl_ord_id == cl_ord_id]

    def now(self) -> int:
        return time.time_ns() // 1_000_000 + self.clock_skew_ms

    # --- checks -------------------------------------------------------------------
    def _auth(self, req: Request) -> Response | None:
        h = req.headers
        bad = self._credentials(req)
        if bad is not None:
            body = json.loads(bad.body)
            self.refused.append((req.method, req.path, str(body["code"])))
            return bad
        self.demo_headers[h.get("x-simulated-trading", "")] += 1
        return None

    def _credentials(self, req: Request) -> Response | None:
        h = req.headers
        key, sign = h.get("ok-access-key", ""), h.get("ok-access-sign", "")
        ts, phrase = h.get("ok-access-timestamp", ""), h.get("ok-access-passphrase", "")
        if not key:
            return _err("50103", 'Request header "OK-ACCESS-KEY" cannot be empty.', 401)
        if not phrase:
            return _err("50104", 'Request header "OK-ACCESS-PASSPHRASE" cannot be empty.', 401)
        if not sign:
            return _err("50106", 'Request header "OK-ACCESS-SIGN" cannot be empty.', 401)
        if not ts:
            return _err("50107", 'Request header "OK-ACCESS-TIMESTAMP" cannot be empty.', 401)
        if key != self.api_key:
            return _err("50111", "Invalid OK-ACCESS-KEY.", 401)
        try:
            when = datetime.strptime(ts, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC)
        except ValueError:
            return _err("50112", "Invalid OK-ACCESS-TIMESTAMP.", 401)
        if abs(self.now() - int(when.timestamp() * 1000)) > MAX_SKEW_MS:
            return _err("50102", "Timestamp request expired.", 401)
        simulated = h.get("x-simulated-trading") == "1"
        if self.demo is not None and simulated != self.demo:
            return _err("50101", "APIKey does not match current environment.", 401)
        if not hmac.compare_digest(phrase, self.passphrase):
            return _err("50105", 'Request header "OK-ACCESS-PASSPHRASE" incorrect.', 401)
        want = okx_sign(self.api_secret, ts, req.method, req.target, req.body.decode("utf-8"))
        if not hmac.compare_digest(want, sign):
            return _err("50113", "Invalid Sign.", 401)
        return None

    # --- public -------------------------------------------------------------------
    async def _time(self, req: Request) -> Response:
        return _ok([{"ts": str(self.now())}])

    async def _instruments(self, req: Request) -> Response:
        if req.query.get("instType") != "SPOT":
            return _ok([])
        return _ok([self._instrument(i) for i in sorted(self.instruments)])

    def _instrument(self, inst: str) -> dict[str, str]:
        tick, lot = self.instruments[inst]
        return spot_instrument(inst, tick, lot, _s(self.min_sz), self.state.get(inst, "live"))

    # --- private ------------------------------------------------------------------
    async def _balance(self, req: Request) -> Response:
        bad = self._auth(req)
        if bad is not None:
            return bad
        now = str(self.now())
        details = [
            {
                "ccy": ccy,
                "eq": _s(v),
                "cashBal": _s(v),
                "availBal": _s(v),
                "frozenBal": "0",
                "uTime": now,
            }
            for ccy, v in sorted(self.balances.items())
        ]
        return _ok([{"totalEq": "", "uTime": now, "details": details}])

    def _refuse(self, cl_ord_id: str, code: str, msg: str) -> Response:
        row = {"clOrdId": cl_ord_id, "ordId": "", "sCode": code, "sMsg": msg, "tag": ""}
        return Response.json({"code": "1", "msg": "All operations failed", "data": [row]})

    def _check(self, p: dict[str, Any]) -> tuple[str, str] | None:
        inst = str(p.get("instId", ""))
        if inst not in self.instruments:
            return "51001", "Instrument ID does not exist."
        if self.state.get(inst, "live") != "live":
            return "51001", f"Instrument ID {inst} is {self.state[inst]}, not tradable."
        if p.get("tdMode") != "cash":
            return "51000", "Parameter tdMode error"
        if p.get("ordType") == "market" and p.get("tgtCcy", "base_ccy") != "base_ccy":
            return "51000", "Parameter tgtCcy error"
        tick, lot = (Decimal(x) for x in self.instruments[inst])
        try:
            sz = Decimal(str(p.get("sz", "")))
            px = Decimal(str(p["px"])) if p.get("px") not in (None, "") else None
        except ArithmeticError:
            return "51000", "Parameter sz error"
        if sz < self.min_sz or sz % lot != 0:
            return "51121", "Order quantity must be a multiple of the lot size."
        if p.get("ordType") != "market" and (px is None or px <= 0 or px % tick != 0):
            return "51000", "Parameter px error"
        return None

    async def _place(self, req: Request) -> Response:
        bad = self._auth(req)
        if bad is not None:
            return bad
        try:
            p = json.loads(req.body or b"{}")
        except ValueError:
            return _err("50002", "JSON syntax error")
        cl = str(p.get("clOrdId", ""))
        if cl:
            self.received[cl] += 1
        if cl and not CLORDID.match(cl):
            return self._refuse(cl, "51000", "Parameter clOrdId error")
        if cl and cl in self.orders:
            return self._refuse(cl, "51016", "Duplicated clOrdId")
        refused = self._check(p)
        if refused is not None:
            return self._refuse(cl, *refused)
        inst = p["instId"]
        ord_type = str(p.get("ordType"))
        side = str(p.get("side"))
        px = Decimal(str(p["px"])) if ord_type != "market" else None
        mid = self.prices.get(inst, Decimal(100))
        crosses = px is None or (px >= mid if side == "buy" else px <= mid)
        self._ord_ids += 1
        now = self.now()
        o = OkxOrder(
            inst_id=inst,
            ord_id=str(self._ord_ids),
            cl_ord_id=cl,
            side=side,
            ord_type=ord_type,
            sz=Decimal(str(p["sz"])),
            px=px,
            c_time=now,
            u_time=now,
        )
        if cl:
            self.orders[cl] = o
        if ord_type == "market":
            lot = Decimal(self.instruments[inst][1])
            half = (o.sz / 2).quantize(lot, ROUND_DOWN)
            for q in (half, o.sz - half):
                if q > 0:
                    self._fill(o, mid, q, maker=False)
        elif ord_type == "post_only" and crosses:
            o.state = "canceled"
        elif crosses:
            self._fill(o, mid, o.sz, maker=False)
        elif ord_type in ("ioc", "fok"):
            o.state = "canceled"
        if self.drop_every and (self._ord_ids % self.drop_every) == 0:
            self.dropped += 1
            raise ConnectionResetError("answer dropped")
        row = {"clOrdId": cl, "ordId": o.ord_id, "sCode": "0", "sMsg": "Order placed", "tag": ""}
        return Response.json({"code": "0", "msg": "", "data": [{**row, "ts": str(now)}]})

    def _find(self, q: dict[str, Any]) -> OkxOrder | None:
        cl, oid = str(q.get("clOrdId") or ""), str(q.get("ordId") or "")
        o = (
            self.orders.get(cl)
            if cl
            else next((x for x in self.orders.values() if x.ord_id == oid), None)
        )
        if o is None or o.inst_id != q.get("instId"):
            return None
        return o

    async def _query(self, req: Request) -> Response:
        bad = self._auth(req)
        if bad is not None:
            return bad
        o = self._find(req.query)
        if o is None:
            return _err("51603", "Order does not exist.", 200)
        return _ok([o.view()])

    async def _cancel(self, req: Request) -> Response:
        bad = self._auth(req)
        if bad is not None:
            return bad
        try:
            p = json.loads(req.body or b"{}")
        except ValueError:
            return _err("50002", "JSON syntax error")
        o = self._find(p)
        cl = str(p.get("clOrdId", ""))
        if o is None:
            return self._refuse(cl, "51400", "Cancellation failed as the order does not exist.")
        if o.state == "canceled":
            return self._refuse(cl, "51401", "Cancellation failed as the order is canceled.")
        if o.state == "filled":
            return self._refuse(cl, "51402", "Cancellation failed as the order is completed.")
        o.state = "canceled"
        o.u_time = self.now()
        row = {"clOrdId": o.cl_ord_id, "ordId": o.ord_id, "sCode": "0", "sMsg": ""}
        return _ok([{**row, "ts": str(o.u_time)}])

    async def _pending(self, req: Request) -> Response:
        bad = self._auth(req)
        if bad is not None:
            return bad
        inst = req.query.get("instId")
        rows = [
            o.view()
            for o in self.orders.values()
            if o.state in LIVE_STATES and (inst is None or o.inst_id == inst)
        ]
        return _ok(list(reversed(rows)))

    async def _fills(self, req: Request) -> Response:
        bad = self._auth(req)
        if bad is not None:
            return bad
        q = req.query
        rows = [
            f.view()
            for f in self.fills
            if ("instId" not in q or f.order.inst_id == q["instId"])
            and ("ordId" not in q or f.order.ord_id == q["ordId"])
        ]
        limit = max(1, min(int(q.get("limit", "100") or 100), 100))
        return _ok(list(reversed(rows))[:limit])

    # --- matching -----------------------------------------------------------------
    def _fill(self, o: OkxOrder, px: Decimal, sz: Decimal, maker: bool) -> OkxFill:
        self._trade_ids += 1
        fee = (px * sz * self.fee_rate).quantize(Decimal("1e-8"))
        f = OkxFill(
            trade_id=str(self._trade_ids),
            bill_id=str(self._trade_ids * 10),
            order=o,
            px=px,
            sz=sz,
            fee=fee,
            maker=maker,
            ts=self.now(),
        )
        self.fills.append(f)
        o.filled += sz
        o.quote += px * sz
        o.fee += fee
        o.u_time = f.ts
        o.state = "filled" if o.filled >= o.sz else "partially_filled"
        base, quote = o.inst_id.split("-")
        sign = 1 if o.side == "buy" else -1
        self.balances[base] = self.balances.get(base, Decimal(0)) + sign * sz
        self.balances[quote] = self.balances.get(quote, Decimal(0)) - sign * px * sz - fee
        return f

    def set_price(self, inst: str, price: Decimal) -> None:
        """Move the market; resting limit orders it crosses fill at their price."""
        self.prices[inst] = price
        for o in list(self.orders.values()):
            if o.inst_id != inst or o.state not in LIVE_STATES or o.px is None:
                continue
            if (o.side == "buy" and price <= o.px) or (o.side == "sell" and price >= o.px):
                self._fill(o, o.px, o.sz - o.filled, maker=True)
