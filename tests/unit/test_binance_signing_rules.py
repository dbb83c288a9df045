"""Binance signing and symbol rules against Binance's own documented examples
(and RFC 8032 for Ed25519, whose Binance example key is not published), so
that our client and our fake cannot share a misreading unnoticed."""

from __future__ import annotations

import base64
import time
from decimal import Decimal as D

import msgspec
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import (
    Encoding,
    NoEncryption,
    PrivateFormat,
)

from tradewind.events import OrderRequest, OrderType, Side
from tradewind.exchanges.binance.rules import parse_exchange_info
from tradewind.exchanges.binance.signing import Signer, ws_payload

DOC_API_KEY = "vmPUZE6mv9SD5VNHk4HlWFsOr6aKE2zvsw0MuIgwCIPy6utIco14y7Ju91duEh8A"
DOC_SECRET = "NhqPtmdSJYdKjVHjA7PZj4Mge3R5YNiP1e3UZjInClVN65XAbvqqM6A7H5fATj0j"


def test_rest_hmac_reproduces_the_documented_signature() -> None:
    """Spot REST "SIGNED endpoint examples for POST /api/v3/order", HMAC keys."""
    qs = (
        "symbol=LTCBTC&side=BUY&type=LIMIT&timeInForce=GTC&quantity=1&price=0.1"
        "&recvWindow=5000&timestamp=1499827319559"
    )
    sig = "c8db56825ae71d6d79447849e617115f4a920fa2acdcab2b053c4b2838bd6b71"
    assert Signer(DOC_SECRET).sign(qs) == sig
    assert Signer(DOC_SECRET).query_param(qs) == f"signature={sig}"


def test_ws_api_hmac_signs_sorted_unencoded_params_as_documented() -> None:
    """Spot WebSocket API "SIGNED request example (HMAC)": order.place."""
    params = {
        "symbol": "BTCUSDT",
        "side": "SELL",
        "type": "LIMIT",
        "timeInForce": "GTC",
        "quantity": "0.01000000",
        "price": "52000.00",
        "newOrderRespType": "ACK",
        "recvWindow": "100",
        "timestamp": "1645423376532",
        "apiKey": DOC_API_KEY,
    }
    payload = ws_payload({**params, "signature": "ignored"})
    assert payload.startswith(f"apiKey={DOC_API_KEY}&newOrderRespType=ACK&price=52000.00")
    assert payload.endswith("&timeInForce=GTC&timestamp=1645423376532&type=LIMIT")
    assert Signer(DOC_SECRET).sign(payload) == (
        "cc15477742bd704c29492d96c7ead9414dfd8e0ec4a00f947bb5bb454ddbd08a"
    )


def _pem(raw: bytes) -> str:
    key = Ed25519PrivateKey.from_private_bytes(raw)
    return key.private_bytes(Encoding.PEM, PrivateFormat.PKCS8, NoEncryption()).decode()


def test_ed25519_reproduces_rfc8032_test_vector_1_in_base64() -> None:
    secret = bytes.fromhex("9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60")
    want = bytes.fromhex(
        "e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e065"
        "224901555fb8821590a33bacc61e39701cf9b46bd25bf5f0595bbe24655141438e7a100b"
    )
    s = Signer(_pem(secret))
    assert s.ed25519 and s.kind == "Ed25519"
    assert base64.b64decode(s.sign("")) == want


def test_ed25519_signature_is_percent_encoded_in_a_query() -> None:
    s = Signer(_pem(bytes(range(32))))
    for i in range(50):  # some base64 signature has + / or =, which must not reach REST raw
        q = s.query_param(f"symbol=BTCUSDT&timestamp={i}")
        assert not set(q.removeprefix("signature=")) & set("+/=")


def test_a_pem_that_is_not_ed25519_is_refused() -> None:
    with pytest.raises(ValueError, match=r"does not load|not an Ed25519"):
        Signer("-----BEGIN PRIVATE KEY-----\nnot a key\n-----END PRIVATE KEY-----\n")


# exchangeInfo: the documented shape of a spot symbol (trimmed to the filters we model)
INFO = {
    "timezone": "UTC",
    "serverTime": 1565246363776,
    "rateLimits": [],
    "exchangeFilters": [],
    "symbols": [
        {
            "symbol": "ETHBTC",
            "status": "TRADING",
            "baseAsset": "ETH",
            "baseAssetPrecision": 8,
            "quoteAsset": "BTC",
            "quotePrecision": 8,
            "orderTypes": ["LIMIT", "LIMIT_MAKER", "MARKET"],
            "filters": [
                {
                    "filterType": "PRICE_FILTER",
                    "minPrice": "0.00001000",
                    "maxPrice": "922327.00000000",
                    "tickSize": "0.00001000",
                },
                {
                    "filterType": "LOT_SIZE",
                    "minQty": "0.00010000",
                    "maxQty": "100000.00000000",
                    "stepSize": "0.00010000",
                },
                {"filterType": "ICEBERG_PARTS", "limit": 10},
                {
                    "filterType": "MARKET_LOT_SIZE",
                    "minQty": "0.00000000",
                    "maxQty": "1987.21874333",
                    "stepSize": "0.00000000",
                },
                {
                    "filterType": "NOTIONAL",
                    "minNotional": "0.00010000",
                    "applyMinToMarket": True,
                    "maxNotional": "9000000.00000000",
                    "applyMaxToMarket": False,
                    "avgPriceMins": 5,
                },
            ],
            "permissions": [],
            "permissionSets": [["SPOT", "MARGIN"]],
        },
        {
            "symbol": "BNBBTC",
            "status": "BREAK",
            "baseAsset": "BNB",
            "quoteAsset": "BTC",
            "filters": [],
        },
    ],
}


def order(
    qty: str, price: str | None, typ: OrderType = OrderType.LIMIT, sym: str = "ETHBTC"
) -> OrderRequest:
    return OrderRequest(
        id="x",
        ts_event=time.time_ns(),
        client_order_id="tw" + "0" * 24,
        signal_id="s",
        strategy="t",
        exchange="binance",
        symbol=sym,
        side=Side.BUY,
        order_type=typ,
        quantity=D(qty),
        price=None if price is None else D(price),
    )


def test_filters_from_the_documented_exchange_info() -> None:
    rules = parse_exchange_info(msgspec.json.encode(INFO))
    r = rules["ETHBTC"]
    assert r.problem(order("0.0100", "0.06001"), None) is None
    assert "not a multiple of 0.00001" in (r.problem(order("0.0100", "0.060015"), None) or "")
    assert "quantity 0.01005" in (r.problem(order("0.01005", "0.06"), None) or "")
    assert "below the minimum 0.00010000" in (r.problem(order("0.00005", "0.06"), None) or "")
    assert "notional" in (r.problem(order("0.0010", "0.00001"), None) or "")
    # a market order takes MARKET_LOT_SIZE (no step) and the notional on the last price
    assert r.problem(order("0.01005", None, OrderType.MARKET), D("0.06")) is None
    assert "notional" in (r.problem(order("0.0010", None, OrderType.MARKET), D("0.00001")) or "")
    assert r.problem(order("1", None, OrderType.MARKET), None) is None
    assert "BREAK, not TRADING" in (
        rules["BNBBTC"].problem(order("1", "1", sym="BNBBTC"), None) or ""
    )


def test_an_exchange_info_of_another_shape_is_refused_whole() -> None:
    bad = {**INFO, "symbols": [{"symbol": "X", "status": "TRADING"}]}
    with pytest.raises(ValueError, match="does not decode"):
        parse_exchange_info(msgspec.json.encode(bad))
    with pytest.raises(ValueError):
        parse_exchange_info(b"<html>")
