"""The Binance venue against the fake Binance speaking today's API, over loopback:
server-time offset and clock skew, -1007, filters checked before sending, the
WebSocket API user data subscription and its endings, Ed25519 keys, the
checks at start, and the removed listenKey endpoints."""

from __future__ import annotations

import asyncio
import time
from decimal import Decimal as D
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import (
    Encoding,
    NoEncryption,
    PrivateFormat,
    PublicFormat,
)

from tradewind.events import OrderRequest, OrderStatus, OrderType, Side, client_order_id
from tradewind.exchanges.binance.fake_orders import FakeBinanceOrders, Faults
from tradewind.exchanges.binance.trade import BinanceSpotVenue
from tradewind.exchanges.common.http import HttpClient
from tradewind.exchanges.instruments import load_instruments
from tradewind.execution.venue import StartCheckFailed, VenueRejected, VenueUnknown


def venue(make_settings: Any, fake: FakeBinanceOrders, **kw: Any) -> BinanceSpotVenue:
    ex = {
        "venue": "binance",
        "api_key": fake.api_key,
        "api_secret": fake.api_secret,
        "rest_url": fake.rest_url,
        "ws_url": fake.ws_url,
        "recv_window_ms": 1000,
        "request_timeout_s": 2.0,
        "connect_timeout_s": 2.0,
        **kw,
    }
    return BinanceSpotVenue(make_settings(execution=ex).execution, load_instruments())


def order(tag: str, qty: str = "0.002", price: str | None = "99") -> OrderRequest:
    coid = client_order_id(tag)
    return OrderRequest(
        id=coid,
        ts_event=time.time_ns(),
        client_order_id=coid,
        signal_id=tag,
        strategy="t",
        exchange="binance",
        symbol="BTCUSDT",
        side=Side.BUY,
        order_type=OrderType.LIMIT if price else OrderType.MARKET,
        quantity=D(qty),
        price=D(price) if price else None,
    )


@pytest.fixture
async def fake() -> Any:
    f = FakeBinanceOrders()
    f.prices["BTCUSDT"] = D("100")
    await f.start()
    yield f
    await f.stop()


async def test_clock_skew_is_corrected_from_server_time(make_settings: Any, fake: Any) -> None:
    """The fake's clock 3 s ahead: unsynced orders get -1021 (and are not
    processed); after the offset is taken from /api/v3/time they pass."""
    fake.clock_skew_ms = 3000
    v = venue(make_settings, fake)
    try:
        with pytest.raises(VenueRejected, match="-1021"):
            await v.place(order("skew-1"))
        assert fake.orders == {}
        # the -1021 itself resynchronised the clock; start() does it too
        await v.start()
        assert 2500 < v.offset_ms < 3500
        placed = await v.place(order("skew-2"))
        assert placed.status is OrderStatus.ACCEPTED
    finally:
        await v.close()


@pytest.mark.parametrize("http_status", [400, 408, 503])
async def test_1007_is_unknown_whatever_the_http_status(
    make_settings: Any, fake: Any, http_status: int
) -> None:
    fake.faults["place"] = Faults(unknown=1.0, unknown_http=http_status)
    v = venue(make_settings, fake)
    try:
        o = order(f"unk-{http_status}")
        with pytest.raises(VenueUnknown, match="-1007"):
            await v.place(o)
        # Binance processed it; the answer only lost the outcome: look it up
        found = await v.query("BTCUSDT", o.client_order_id)
        assert found is not None and found.status is OrderStatus.ACCEPTED
        assert v.settle_window_s >= 10.0 + 1.0
    finally:
        await v.close()


async def test_filters_refuse_before_anything_is_sent(make_settings: Any, fake: Any) -> None:
    fake.min_notional = D(5)
    v = venue(make_settings, fake)
    try:
        await v.start()
        for tag, qty, price, why in [
            ("tick", "1", "99.005", "not a multiple of 0.01"),
            ("lot", "0.000015", "99", "quantity"),
            ("notional", "0.002", "99", "notional"),
        ]:
            with pytest.raises(VenueRejected, match=why):
                await v.place(order(tag, qty, price))
        unknown = msgspec_replace(order("sym", "1", "99"), symbol="DOGEUSDT")
        with pytest.raises(VenueRejected, match="does not list DOGEUSDT"):
            await v.place(unknown)
        assert fake.received == {}, "a refused order reached the exchange"
        fake.status["BTCUSDT"] = "BREAK"
        await v.load_rules()
        with pytest.raises(VenueRejected, match="BREAK"):
            await v.place(order("halted", "1", "99"))
        assert fake.received == {}
        # the fake applies the same filters itself (-1013) to an unchecked client
        v.rules.clear()
        fake.status.clear()
        with pytest.raises(VenueRejected, match="-1013"):
            await v.place(order("raw-tick", "1", "99.005"))
    finally:
        await v.close()


def msgspec_replace(o: OrderRequest, **kw: Any) -> OrderRequest:
    import msgspec

    return msgspec.structs.replace(o, **kw)


@pytest.mark.parametrize("ending", ["eventStreamTerminated", "serverShutdown"])
async def test_user_stream_resubscribes_when_binance_ends_it(
    make_settings: Any, fake: Any, ending: str
) -> None:
    v = venue(make_settings, fake)
    reports = v.reports()
    try:
        assert await asyncio.wait_for(anext(reports), 5) is None
        req = fake.ws_api_requests[-1]
        assert req["method"] == "userDataStream.subscribe.signature"
        assert set(req["params"]) == {"apiKey", "recvWindow", "timestamp", "signature"}
        if ending == "eventStreamTerminated":
            assert await fake.terminate_streams() == 1
        else:
            assert await fake.server_shutdown() == 1
        # a fresh subscription, announced by None (reconcile now) ...
        assert await asyncio.wait_for(anext(reports), 5) is None
        assert len(fake.ws_api_requests) == 2
        # ... that carries the next report
        o = order(f"after-{ending}")
        await v.place(o)
        got = await asyncio.wait_for(anext(reports), 5)
        assert got is not None and got.client_order_id == o.client_order_id
    finally:
        await reports.aclose()
        await v.close()


async def test_a_bad_subscription_signature_is_refused(make_settings: Any, fake: Any) -> None:
    v = venue(make_settings, fake, api_secret="wrong-secret")
    try:
        import websockets

        async with websockets.connect(v.ws_url) as ws:
            with pytest.raises(VenueRejected, match="-1022"):
                await v._subscribe(ws)
    finally:
        await v.close()


async def test_ed25519_keys_end_to_end(make_settings: Any) -> None:
    key = Ed25519PrivateKey.generate()
    pem = key.private_bytes(Encoding.PEM, PrivateFormat.PKCS8, NoEncryption()).decode()
    pub = key.public_key().public_bytes(Encoding.PEM, PublicFormat.SubjectPublicKeyInfo).decode()
    fake = FakeBinanceOrders(ed25519_public_key=pub)
    await fake.start()
    v = venue(make_settings, fake, api_secret=pem)
    other = venue(
        make_settings,
        fake,
        api_secret=Ed25519PrivateKey.generate()
        .private_bytes(Encoding.PEM, PrivateFormat.PKCS8, NoEncryption())
        .decode(),
    )
    reports = v.reports()
    try:
        assert v.signer.kind == "Ed25519"
        lines = await v.start_checks(["BTCUSDT"])
        assert "signing Ed25519" in lines[0]
        assert await asyncio.wait_for(anext(reports), 5) is None
        o = order("ed")
        await v.place(o)
        got = await asyncio.wait_for(anext(reports), 5)
        assert got is not None and got.client_order_id == o.client_order_id
        with pytest.raises(StartCheckFailed, match="rejected the API key"):
            await other.start_checks(["BTCUSDT"])
    finally:
        await reports.aclose()
        await v.close()
        await other.close()
        await fake.stop()


async def test_start_checks(make_settings: Any, fake: Any) -> None:
    good = venue(make_settings, fake)
    try:
        lines = await good.start_checks(["BTCUSDT", "ETHUSDT"])
        assert lines[0].startswith("binance mainnet at http://127.0.0.1")
        assert "BTC 100" in lines[2] and "USDT 1000000" in lines[2]
        with pytest.raises(StartCheckFailed, match="does not list symbol XRPUSDT"):
            await good.start_checks(["BTCUSDT", "XRPUSDT"])
        fake.status["ETHUSDT"] = "HALT"
        with pytest.raises(StartCheckFailed, match="ETHUSDT is HALT"):
            await good.start_checks(["ETHUSDT"])
        fake.clock_skew_ms = -5000
        with pytest.raises(StartCheckFailed, match=r"clock is -[0-9]+ ms off"):
            await good.start_checks(["BTCUSDT"])
    finally:
        await good.close()
    bad = venue(make_settings, fake, api_key="someone-else")
    try:
        fake.clock_skew_ms = 0
        with pytest.raises(StartCheckFailed, match="rejected the API key"):
            await bad.start_checks(["BTCUSDT"])
    finally:
        await bad.close()


async def test_the_removed_listen_key_endpoints_answer_gone(fake: Any) -> None:
    http = HttpClient(fake.rest_url, 2.0, 2.0)
    try:
        for method in ("POST", "PUT", "DELETE"):
            r = await http.request(method, "/api/v3/userDataStream", None, {"X-MBX-APIKEY": "k"})
            assert r.status == 410
    finally:
        await http.close()


async def test_fake_usdm_serves_the_split_paths_as_binance_does() -> None:
    """/public: books only; /market: aggTrade (and klines), never @trade."""
    import websockets

    from tests.conftest import market_file
    from tradewind.exchanges.fake import FakeExchange

    rec = market_file("binance_usdm_btcusdt_combined_20240808.jsonl")
    async with FakeExchange([rec], speed=50, exchanges=["binance-usdm"]) as fx:
        base = f"ws://127.0.0.1:{fx.port}/usdm"
        every = "btcusdt@trade/btcusdt@aggTrade/btcusdt@depth@0ms/btcusdt@kline_1m"
        urls = {
            "public": f"{base}/public/stream?streams={every}",
            "market": f"{base}/market/stream?streams={every}",
            "legacy": f"{base}/stream?streams={every}",
        }

        async def watch(url: str) -> set[str]:
            got: set[str] = set()
            async with websockets.connect(url) as ws:
                for _ in range(400):
                    try:
                        raw = await asyncio.wait_for(ws.recv(), 3)
                    except TimeoutError:
                        break
                    got.add(str(msgspec_decode(raw)["stream"]).split("@")[1])
            return got

        # all three connected before the replay runs far, so each sees the same frames
        found = await asyncio.gather(*(watch(u) for u in urls.values()))
        seen = dict(zip(urls, found, strict=True))
    assert seen["public"] == {"depth"}
    assert seen["market"] == {"aggTrade"}
    # the legacy URL still carries the rest (the recording has no klines to withhold)
    assert seen["legacy"] == {"trade", "aggTrade", "depth"}


def msgspec_decode(raw: str | bytes) -> dict[str, Any]:
    import msgspec

    out = msgspec.json.decode(raw)
    assert isinstance(out, dict)
    return out


async def _until(cond: Any, timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while not cond() and time.monotonic() < deadline:  # noqa: ASYNC110
        await asyncio.sleep(0.02)
    return bool(cond())


async def test_the_timer_refresh_picks_up_status_filters_and_clock(
    make_settings: Any, fake: Any
) -> None:
    """The hourly refresh on a 0.2 s timer (``exchange_info_refresh_s``),
    driven only by the fake changing what it answers: a symbol moved to BREAK
    and then HALT is refused before sending, new filters are applied, and a
    new server clock offset is taken, all without any order or -1021 asking."""
    v = venue(make_settings, fake, exchange_info_refresh_s=0.2)
    try:
        await v.start()
        assert abs(v.offset_ms) < 500
        first = v.rules_at
        ok = await v.place(order("timer-ok", "0.002", "99.01"))
        assert ok.status is OrderStatus.ACCEPTED

        # a refresh happened on the timer alone, not only at start
        assert await _until(lambda: v.rules_at > first)

        fake.status["BTCUSDT"] = "BREAK"
        assert await _until(lambda: v.rules["BTCUSDT"].status == "BREAK")
        with pytest.raises(VenueRejected, match="BTCUSDT is BREAK, not TRADING"):
            await v.place(order("timer-break", "0.002", "99"))
        fake.status["BTCUSDT"] = "HALT"
        assert await _until(lambda: v.rules["BTCUSDT"].status == "HALT")
        with pytest.raises(VenueRejected, match="BTCUSDT is HALT, not TRADING"):
            await v.place(order("timer-halt", "0.002", "99"))
        fake.status.clear()

        # the tick grows from 0.01 to 0.5: 99.01 was fine, now it is refused here
        fake.markets["BTCUSDT"] = ("BTC", "USDT", "0.5", "0.001")
        assert await _until(
            lambda: (
                v.rules["BTCUSDT"].status == "TRADING"
                and v.rules["BTCUSDT"].price is not None
                and v.rules["BTCUSDT"].price.step == D("0.5")
            )
        )
        with pytest.raises(VenueRejected, match=r"filter: price 99.01 is not a multiple of 0.5"):
            await v.place(order("timer-tick", "0.002", "99.01"))
        with pytest.raises(VenueRejected, match=r"filter: quantity 0.0015 is not a multiple"):
            await v.place(order("timer-lot", "0.0015", "99.5"))
        assert dict(fake.received) == {ok.client_order_id: 1}, "a refused order was sent"
        assert (await v.place(order("timer-new", "0.002", "99.5"))).status is OrderStatus.ACCEPTED

        # Binance's clock moves 3 s ahead: the offset follows on the timer, and
        # an order signed on it passes a 1 s recvWindow without a -1021 first
        fake.clock_skew_ms = 3000
        assert await _until(lambda: 2500 < v.offset_ms < 3500)
        placed = await v.place(order("timer-clock", "0.002", "99.5"))
        assert placed.status is OrderStatus.ACCEPTED
        assert fake.received[placed.client_order_id] == 1
    finally:
        await v.close()
