"""Format detection accepts only a clear winner and says so in one line otherwise."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from typer.testing import CliRunner

from tests.conftest import market_file
from tradewind.cli import app
from tradewind.events import BookDelta
from tradewind.exchanges.formats import FormatError, check_readable, detect_format, detect_lines
from tradewind.exchanges.replay import ReplaySource

VENUES = Path(__file__).resolve().parents[1] / "data" / "venues"

# Coinbase Exchange ws-feed message shapes, as its documentation shows them.
LEGACY_COINBASE = [
    b'{"type":"subscriptions","channels":[{"name":"level2","product_ids":["BTC-USD"]}]}',
    b'{"type":"l2update","product_id":"BTC-USD","changes":[["sell","30862.60","0.00000000"]],'
    b'"time":"2023-07-04T18:14:39.123456Z"}',
    b'{"type":"match","trade_id":10,"sequence":50,"maker_order_id":"ac928c66",'
    b'"taker_order_id":"132fb6ae","time":"2014-11-07T08:19:27.028459Z","product_id":"BTC-USD",'
    b'"size":"5.23512","price":"400.23","side":"sell"}',
]


def _write(tmp_path: Path, name: str, lines: list[bytes]) -> Path:
    path = tmp_path / name
    path.write_bytes(b"\n".join(lines) + b"\n")
    return path


def test_coinm_recording_is_not_read_as_usdm() -> None:
    assert detect_format(VENUES / "binance_coinm_ws_20210722.jsonl") == "binance-coinm"


def test_okx_recording_is_not_read_as_kraken() -> None:
    assert detect_format(VENUES / "okx_v5_ws_20220513.jsonl") == "okx"


@pytest.mark.parametrize("channel", [b"orderbook", b"publicTrade", b"tickers"])
def test_bybit_linear_is_recognised_from_each_channel(channel: bytes) -> None:
    lines = market_file("bybit_v5_linear_ws_20260809.jsonl").read_bytes().splitlines()
    assert detect_lines([ln for ln in lines if b'"topic":"' + channel in ln]) == "bybit-linear"


def test_bybit_linear_orderbook_500_is_linear() -> None:
    line = (
        b'{"topic":"orderbook.500.BTCUSDT","type":"delta","ts":1,"data":{"s":"BTCUSDT",'
        b'"b":[["65093","0.5"]],"a":[],"u":2,"seq":3},"cts":1}'
    )
    assert detect_lines([line]) == "bybit-linear"


def test_unknown_file_is_refused_naming_the_known_formats(tmp_path: Path) -> None:
    path = _write(tmp_path, "x.jsonl", [b'{"hello":"world"}', b"plain text"])
    with pytest.raises(FormatError) as err:
        detect_format(path)
    msg = str(err.value)
    assert "not a recording format" in msg and "binance-coinm" in msg and "--format" in msg
    assert "\n" not in msg


def test_ambiguous_file_is_refused_naming_the_candidates(tmp_path: Path) -> None:
    coinbase = market_file("coinbase_advanced_ws_20260809.jsonl").read_bytes().splitlines()[:3]
    bybit = market_file("bybit_v5_spot_ws_20260809.jsonl").read_bytes().splitlines()[1:4]
    path = _write(tmp_path, "mixed.jsonl", coinbase + bybit)
    with pytest.raises(FormatError, match=r"could be any of (coinbase, bybit|bybit, coinbase)"):
        detect_format(path)


def test_legacy_coinbase_exchange_is_named_and_refused(tmp_path: Path) -> None:
    path = _write(tmp_path, "cb.jsonl", LEGACY_COINBASE)
    with pytest.raises(FormatError, match=r"Coinbase Exchange ws-feed.*does not read"):
        detect_format(path)
    with pytest.raises(FormatError, match="does not read"):
        check_readable("coinbase-exchange")
    with pytest.raises(FormatError, match="unknown format 'nope'"):
        check_readable("nope")


def test_run_refuses_in_one_line_with_exit_2(tmp_path: Path) -> None:
    path = _write(tmp_path, "cb.jsonl", LEGACY_COINBASE)
    res = CliRunner().invoke(app, ["run", "--data", str(path), "--db", str(tmp_path / "t.db")])
    assert res.exit_code == 2, res.output
    assert "Traceback" not in res.output
    assert res.output.strip().startswith("tradewind:") and "Coinbase Exchange" in res.output


def test_kline_only_bybit_is_refused_as_ambiguous_and_format_decides(tmp_path: Path) -> None:
    """Klines look the same on spot and linear: detection names both and
    points to --format, which then reads the file as the market named."""
    lines = market_file("bybit_v5_linear_ws_20260809.jsonl").read_bytes().splitlines()
    kline = _write(tmp_path, "k.jsonl", [ln for ln in lines if b'"topic":"kline' in ln])
    with pytest.raises(FormatError) as err:
        detect_format(kline)
    msg = str(err.value)
    assert "could be any of" in msg and "--format" in msg and "\n" not in msg
    assert set(msg.split("could be any of ")[1].split(";")[0].split(", ")) == {
        "bybit",
        "bybit-linear",
    }
    assert ReplaySource([kline], fmt="bybit-linear").formats == ["bybit-linear"]
    res = CliRunner().invoke(app, ["run", "--data", str(kline), "--db", str(tmp_path / "t.db")])
    assert res.exit_code == 2, res.output
    assert res.output.strip().startswith("tradewind:") and "--format" in res.output
    assert "bybit-linear" in res.output and "Traceback" not in res.output


def test_kline_with_market_evidence_beside_it_decides(tmp_path: Path) -> None:
    """One line only a market sends is enough: a spot trade (no tick direction)
    beside spot klines, a linear ticker beside linear ones."""
    for name, fmt in (
        ("bybit_v5_spot_ws_20260809.jsonl", "bybit"),
        ("bybit_v5_linear_ws_20260809.jsonl", "bybit-linear"),
    ):
        lines = market_file(name).read_bytes().splitlines()
        klines = [ln for ln in lines if b'"topic":"kline' in ln]
        channel = b'"topic":"publicTrade' if fmt == "bybit" else b'"topic":"tickers'
        evidence = next(ln for ln in lines if channel in ln)
        path = _write(tmp_path, f"{fmt}.jsonl", [*klines, evidence])
        assert detect_format(path) == fmt


async def _events(src: ReplaySource) -> list[object]:
    return [e async for b in src.batches(256) for e in b]


def test_depth_snapshots_pair_with_the_stream_beside_them() -> None:
    snaps = market_file("binance_spot_rest_depth_20210814.jsonl")
    stream = market_file("binance_spot_4sym_ws_20210814.jsonl")
    src = ReplaySource([snaps, stream])
    events = asyncio.run(_events(src))
    paired = [
        (i, e.symbol, e.last_update_id)
        for i, e in enumerate(events)
        if isinstance(e, BookDelta) and e.snapshot
    ]
    assert sorted(s for _, s, _ in paired) == ["BADGERBTC", "FTMUSDT", "SXPBTC", "XMRBTC"]
    for i, symbol, last in paired:
        nxt = events[i + 1]
        assert isinstance(nxt, BookDelta) and nxt.symbol == symbol
        assert nxt.first_update_id <= last + 1 and nxt.last_update_id >= last
    assert src.stats.ignored == {"kline_open": 15}, "snapshots paired; only open klines left"


def test_depth_snapshots_alone_are_reported_ignored_or_take_the_symbol() -> None:
    snaps = market_file("binance_spot_rest_depth_20210814.jsonl")
    alone = ReplaySource([snaps])
    assert asyncio.run(_events(alone)) == []
    assert alone.stats.ignored == {"depth_snapshot_without_symbol": 4}
    named = ReplaySource([snaps], symbol="XMRBTC")
    events = asyncio.run(_events(named))
    assert len(events) == 4 and all(getattr(e, "symbol", "") == "XMRBTC" for e in events)
