"""The fake exchange's HTTP side, control API and protocol edges."""

from __future__ import annotations

import asyncio
import contextlib
import json
import urllib.error
import urllib.request
from collections import Counter
from typing import Any

import pytest
from websockets.asyncio.client import connect

from tests.conftest import market_file, spawned
from tradewind.exchanges.common.fake_http import Request, Response
from tradewind.exchanges.common.rest import RateLimiter
from tradewind.exchanges.fake import FakeExchange

SPOT = "binance_spot_btcusdt_combined_20240808.jsonl"


def _http(method: str, url: str, body: dict[str, Any] | None = None) -> tuple[int, Any]:
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(url, data=data, method=method)
    try:
        with urllib.request.urlopen(req, timeout=5) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


async def call(method: str, url: str, body: dict[str, Any] | None = None) -> tuple[int, Any]:
    return await asyncio.to_thread(_http, method, url, body)


async def test_routes_registry_snapshot_and_control() -> None:
    fake = FakeExchange([market_file(SPOT)], speed=0, exchanges=["binance"], autostart=False)

    async def order(req: Request) -> Response:
        return Response.json({"echo": req.form(), "method": req.method}, 201)

    fake.router.add("POST", "/api/v3/order", order)
    async with fake:
        base = fake.rest_urls()["binance"]
        status, body = await call("POST", f"{base}/api/v3/order?symbol=BTCUSDT")
        assert status == 201
        assert body == {"echo": {"symbol": "BTCUSDT"}, "method": "POST"}
        assert (await call("GET", f"{base}/api/v3/order"))[0] == 405
        assert (await call("GET", f"{base}/nope"))[0] == 404

        status, snap = await call("GET", f"{base}/api/v3/depth?symbol=BTCUSDT&limit=5")
        assert status == 200
        assert snap["lastUpdateId"] == 50093239218
        assert len(snap["bids"]) == 5 and snap["bids"][0][0] == "61837.63000000"
        assert (await call("GET", f"{base}/api/v3/depth?symbol=NOPE"))[0] == 400

        status, res = await call("POST", f"{base}/_fake/control", {"action": "start"})
        assert status == 200 and res["ok"]
        await fake.wait_done("binance", timeout=20)
        status, snap = await call("GET", f"{base}/api/v3/depth?symbol=BTCUSDT&limit=5")
        assert snap["lastUpdateId"] > 50093239218
        status, trades = await call("GET", f"{base}/api/v3/trades?symbol=BTCUSDT&limit=3")
        assert [t["id"] for t in trades] == [3735684375, 3735684376, 3735684377]
        assert (await call("POST", f"{base}/_fake/control", {"action": "explode"}))[0] == 400
        status, st = await call("GET", f"{base}/_fake/status")
        assert st["binance"]["done"] is True


async def test_binance_subscribe_ack_and_raw_stream() -> None:
    fake = FakeExchange([market_file(SPOT)], speed=0, exchanges=["binance"], autostart=False)
    async with fake, connect(fake.ws_urls()["binance"] + "/ws", close_timeout=0.2) as ws:
        await ws.send(json.dumps({"method": "SUBSCRIBE", "params": ["btcusdt@trade"], "id": 7}))
        assert json.loads(await ws.recv()) == {"result": None, "id": 7}
        fake.start_replay("binance")
        first = json.loads(await asyncio.wait_for(ws.recv(), 5))
        assert first["e"] == "trade" and first["t"] == 3735683259
        await ws.send("{bad")
        reply = json.loads(await asyncio.wait_for(ws.recv(), 5))
        while "code" not in reply:
            reply = json.loads(await asyncio.wait_for(ws.recv(), 5))
        assert reply["code"] == 2


@pytest.mark.parametrize(
    ("exchange", "request_", "expect"),
    [
        (
            "kraken",
            {"method": "subscribe", "params": {"channel": "book", "symbol": ["X/Y"], "depth": 7}},
            "invalid depth",
        ),
        ("kraken", {"method": "ping", "req_id": 3}, "pong"),
        ("bybit-linear", {"op": "ping"}, "pong"),
        ("coinbase", {"type": "subscribe", "channel": "nope", "product_ids": []}, "unsupported"),
    ],
)
async def test_protocol_edges(exchange: str, request_: dict[str, Any], expect: str) -> None:
    files = {
        "kraken": "kraken_spot_ws_v1_20210417.jsonl",
        "bybit-linear": "bybit_v5_linear_ws_20260809.jsonl",
        "coinbase": "coinbase_advanced_ws_20260809.jsonl",
    }
    fake = FakeExchange(
        [market_file(files[exchange])], speed=0, exchanges=[exchange], autostart=False
    )
    async with fake, connect(fake.ws_urls()[exchange]) as ws:
        await ws.send(json.dumps(request_))
        texts: list[str] = []
        while not any(expect in t for t in texts):
            assert len(texts) < 3, texts
            texts.append(str(await asyncio.wait_for(ws.recv(), 5)))


async def test_rate_limiter_spaces_requests() -> None:
    limiter = RateLimiter(rate=20.0, burst=2)
    loop = asyncio.get_running_loop()
    t0 = loop.time()
    for _ in range(6):
        await limiter.acquire()
    assert loop.time() - t0 >= 4 / 20.0 * 0.9


async def test_fake_exchange_command_serves_and_stops_on_sigterm() -> None:
    import signal
    import sys

    async with spawned(
        sys.executable,
        "-c",
        "from tradewind.cli import main; main()",
        "fake-exchange",
        "--port",
        "0",
        "--data",
        str(market_file(SPOT)),
        "--exchange",
        "binance",
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.DEVNULL,
    ) as proc:
        assert proc.stdout is not None
        line = (await asyncio.wait_for(proc.stdout.readline(), 30)).decode()
        assert line.startswith("binance: ws ws://127.0.0.1:")
        rest = line.rsplit("rest ", 1)[1].strip()
        status, snap = await call("GET", f"{rest}/api/v3/depth?symbol=BTCUSDT&limit=1")
        assert status == 200 and snap["lastUpdateId"] == 50093239218
        proc.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(proc.wait(), 15) == 0


async def test_binance_serves_agg_trades_and_klines_by_exact_stream_name() -> None:
    """aggTrade and kline streams play from the recording that has them; the
    kline interval is case-sensitive (``1M`` is a month), the symbol is not."""
    fake = FakeExchange(
        [market_file("binance_spot_4sym_ws_20210814.jsonl")], speed=0, exchanges=["binance"]
    )
    streams = "FTMUSDT@aggTrade/ftmusdt@kline_1m/ftmusdt@kline_1M/sxpbtc@aggTrade"
    received: Counter[str] = Counter()
    async with fake, connect(f"{fake.ws_urls()['binance']}/stream?streams={streams}") as ws:
        await fake.wait_done("binance", timeout=20)
        with contextlib.suppress(TimeoutError):
            while True:
                msg = json.loads(await asyncio.wait_for(ws.recv(), 1.0))
                received[msg["stream"]] += 1
                assert msg["data"]["s"] in ("FTMUSDT", "SXPBTC")
    assert received == {
        "FTMUSDT@aggTrade": 13,
        "ftmusdt@kline_1m": 7,
        "sxpbtc@aggTrade": 12,
    }
